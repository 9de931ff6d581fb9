import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseArgv } from "../../agent/config/argv.ts";
import { flagKinds, flagUsage, SETTINGS } from "../../agent/config/flags.ts";
import { splitCommand } from "../../agent/config/routes.ts";
import {
  parseCommandEntry,
  parseGoBool,
  parseHarpoonTarget,
  parseRawSetting,
  parseServerUrlEntry,
} from "../../agent/config/values.ts";

const fail = (message: string) => new Error(message);
const setting = (path: string) => SETTINGS.find((s) => s.path === path)!;

describe("argv", () => {
  const kinds = flagKinds();

  test("--name value, --name=value, bare booleans and repeats", () => {
    const parsed = parseArgv(
      ["--mcp.command", "a b", "--mcp.command=c", "--allow-remote-ui", "--log.level=", "--", "--not-a-flag"],
      kinds,
    );
    assert.deepEqual(parsed.values.get("mcp.command"), ["a b", "c"]);
    assert.deepEqual(parsed.values.get("allow-remote-ui"), ["true"]);
    assert.deepEqual(parsed.values.get("log.level"), [""]);
    assert.deepEqual(parsed.positionals, ["--not-a-flag"]);
    assert.deepEqual(parsed.unknown, []);
  });

  test("unknown flags carry suggestions; a value-less flag is a problem; -h is help", () => {
    const parsed = parseArgv(["--health.listen-adr", "x", "-h", "--log.level"], kinds);
    assert.deepEqual(parsed.unknown, [{ flag: "--health.listen-adr", suggestion: "--health.listen-addr" }]);
    assert.equal(parsed.help, true);
    assert.match(parsed.problems[0]!, /--log\.level needs a value/);
    assert.deepEqual(parseArgv(["--log.level", "--allow-remote-ui"], kinds).problems.length, 1);
    assert.deepEqual(parseArgv(["-log.level=info"], kinds).unknown, [
      { flag: "-log.level", suggestion: "--log.level" },
    ]);
  });

  test("every row's flag and aliases are known, and usage lists them with their variables", () => {
    const usage = flagUsage();
    for (const row of SETTINGS) {
      if (!row.flag) continue;
      assert.ok(kinds.has(row.flag), row.flag);
      assert.ok(usage.includes(`--${row.flag}`), row.flag);
      for (const name of row.env ?? []) assert.ok(usage.includes(name), name);
    }
    assert.match(usage, /--control-plane\.poll-timeout VALUE .*\(default 30s\) \[CONTROL_PLANE_POLL_TIMEOUT\]/);
    assert.equal(new Set(SETTINGS.map((s) => s.path)).size, SETTINGS.length, "a YAML path appears twice in the table");
  });
});

describe("tunnel-client value syntaxes", () => {
  test("MCP command entries: bare, channel-first, command-first (commas kept)", () => {
    assert.deepEqual(parseCommandEntry("npx -y @org/main-mcp", fail), { command: "npx -y @org/main-mcp" });
    assert.deepEqual(parseCommandEntry("channel=bar,command=npx -y @org/bar-mcp", fail), {
      channel: "bar",
      command: "npx -y @org/bar-mcp",
    });
    assert.deepEqual(parseCommandEntry("command=node -e 'a,b',channel=tools", fail), {
      channel: "tools",
      command: "node -e 'a,b'",
    });
    assert.throws(
      () => parseCommandEntry("channel=x,command=y,url=http://h", fail),
      /url does not apply to a stdio command/,
    );
    assert.throws(() => parseCommandEntry("channel=x", fail), /command= is missing/);
  });

  test("MCP server URL entries: bare or qualified", () => {
    assert.deepEqual(parseServerUrlEntry("https://main.example.com/mcp", fail), {
      url: "https://main.example.com/mcp",
    });
    assert.deepEqual(
      parseServerUrlEntry("channel=foo,url=https://foo/mcp,unix-socket=env:SOCK,http-proxy=http://p:1", fail),
      { channel: "foo", url: "https://foo/mcp", unix_socket: "env:SOCK", http_proxy: "http://p:1" },
    );
    assert.throws(() => parseServerUrlEntry("channel=foo", fail), /url= is missing/);
    assert.throws(() => parseServerUrlEntry("channel=foo,url=https://x,command=y", fail), /unsupported key "command"/);
  });

  test("Harpoon targets, headers, lists and booleans from the environment", () => {
    assert.deepEqual(parseHarpoonTarget("label=auth,url=https://auth.example.com,desc='Auth server'", fail), {
      label: "auth",
      url: "https://auth.example.com",
      description: "Auth server",
    });
    assert.throws(() => parseHarpoonTarget("label=auth", fail), /label= and url= are required/);
    assert.deepEqual(
      parseRawSetting(
        setting("control_plane.extra_headers"),
        ["extra-header: env:EXTRA_HEADER, debug: 1"],
        "CONTROL_PLANE_EXTRA_HEADERS",
        true,
      ),
      { "extra-header": "env:EXTRA_HEADER", debug: "1" },
    );
    assert.deepEqual(
      parseRawSetting(
        setting("mcp.commands"),
        ["python a.py; echo\nchannel=b,command=node b.js\n"],
        "MCP_COMMAND",
        true,
      ),
      [{ command: "python a.py; echo" }, { channel: "b", command: "node b.js" }],
    );
    assert.deepEqual(
      parseRawSetting(
        setting("harpoon.targets"),
        ["label=a,url=https://a;label=b,url=https://b"],
        "HARPOON_TARGETS",
        true,
      ),
      [
        { label: "a", url: "https://a" },
        { label: "b", url: "https://b" },
      ],
    );
    assert.deepEqual(
      parseRawSetting(setting("control_plane.poll_channels"), ["main,harpoon"], "CONTROL_PLANE_POLL_CHANNELS", true),
      ["main", "harpoon"],
    );
    assert.equal(parseGoBool("T"), true);
    assert.equal(parseGoBool("yes"), undefined);
    assert.throws(
      () => parseRawSetting(setting("log.http_raw_unsafe"), ["yes"], "LOG_HTTP_RAW_UNSAFE", true),
      /LOG_HTTP_RAW_UNSAFE: expected true or false/,
    );
    assert.throws(
      () => parseRawSetting(setting("mcp.max_concurrent_requests"), ["1.5"], "--mcp.max-concurrent-requests", false),
      /expected a whole number/,
    );
  });

  test("command lines split like a shell but never need one", () => {
    assert.deepEqual(splitCommand(`python -m "my server" --opt='a b' c\\ d $HOME`, "p"), [
      "python",
      "-m",
      "my server",
      "--opt=a b",
      "c d",
      "$HOME",
    ]);
    assert.deepEqual(splitCommand("npx *.ts", "p"), ["npx", "*.ts"]);
    assert.throws(() => splitCommand("a > out.txt", "p"), /shell operator '>'/);
    assert.throws(() => splitCommand("a # comment", "p"), /'#' comments/);
    assert.throws(() => splitCommand("   ", "p"), /empty/);
  });
});
