import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../agent/config/load.ts";
import { findSample, readSample, renderSample, SampleError, SAMPLES } from "../../agent/samples/catalog.ts";
import type { SampleValues } from "../../agent/samples/catalog.ts";
import { main as initMain } from "../../agent/cli/init.ts";
import { main as profilesMain } from "../../agent/cli/profiles.ts";
import type { CliIo } from "../../agent/cli/options.ts";

const TUNNEL = "tunnel_abcdefghijklmnopqrstuvwxyz012345";
/** Every variable a sample references, so loading does not depend on the shell. */
const SAMPLE_ENV = {
  CONTROL_PLANE_API_KEY: "sk-test-key-1234",
  HTTPS_PROXY: "http://proxy.test:3128",
  ENTERPRISE_CA_BUNDLE: "/etc/ssl/test-root.pem",
  WIKI_TOKEN: "wiki-secret-9876",
};

/** Load a profile text as `run --config` would. */
async function load(text: string, env: Record<string, string> = SAMPLE_ENV) {
  return loadConfig({
    argv: ["--config", "/profiles/p.yaml"],
    env,
    cwd: "/",
    readFile: async (path) => {
      if (path === "/profiles/p.yaml") return text;
      throw Object.assign(new Error("no"), { code: "ENOENT" });
    },
  });
}

function capture(env: Record<string, string | undefined>, cwd = "/"): CliIo & { out: string; err: string } {
  const io = {
    out: "",
    err: "",
    env,
    cwd,
    stdout(text: string) {
      io.out += text;
    },
    stderr(text: string) {
      io.err += text;
    },
  };
  return io;
}

describe("built-in samples", () => {
  test("there are tunnel-client's four and Airlock's two", () => {
    assert.deepEqual(
      SAMPLES.map((s) => s.name),
      [
        "sample_mcp_stdio_local",
        "sample_mcp_remote_no_auth",
        "sample_mcp_with_dcr",
        "sample_mcp_enterprise_proxy",
        "sample_routing_table",
        "sample_self_hosted_hub",
      ],
    );
  });

  for (const sample of SAMPLES) {
    test(`${sample.name}: loads as shipped, and after init fills it with each target it takes`, async () => {
      const text = await readSample(sample.name);
      const shipped = await load(text);
      assert.equal(shipped.config.controlPlane.apiKey, SAMPLE_ENV.CONTROL_PLANE_API_KEY);
      assert.ok(shipped.config.routes.some((r) => r.channel === "main"));

      const targets: SampleValues[] = [];
      if (sample.target !== "url")
        targets.push({ tunnelId: TUNNEL, mcpCommand: "node /srv/mcp/server.js --name 'my server'" });
      if (sample.target !== "command") targets.push({ tunnelId: TUNNEL, mcpServerUrl: "http://10.0.0.5:3001/mcp" });
      for (const values of targets) {
        const rendered = renderSample(sample, text, {
          ...values,
          listenAddr: "127.0.0.1:0",
          urlPath: "/gateway/eu",
          baseUrl: "https://cp.test",
        });
        const { config } = await load(rendered);
        assert.equal(config.controlPlane.tunnelId, TUNNEL);
        assert.equal(config.controlPlane.baseUrl, "https://cp.test");
        assert.equal(config.controlPlane.urlPath, "/gateway/eu");
        assert.equal(config.health.listenAddr, "127.0.0.1:0");
        const main = config.routes.find((r) => r.channel === "main")!.backends[0]!;
        if (values.mcpCommand)
          assert.deepEqual(main.transport === "stdio" && main.command, [
            "node",
            "/srv/mcp/server.js",
            "--name",
            "my server",
          ]);
        else assert.equal(main.transport === "http" && main.url, "http://10.0.0.5:3001/mcp");
        // The comments operators read survive rendering.
        assert.match(rendered, new RegExp(`^# ${sample.name}:`));
        assert.doesNotMatch(rendered, /sk-test-key/);
      }
    });
  }

  test("routing table: the first backend is replaced, the others stay", async () => {
    const info = findSample("sample_routing_table")!;
    const { config } = await load(
      renderSample(info, await readSample(info.name), { tunnelId: TUNNEL, mcpServerUrl: "https://a.test/mcp" }),
    );
    const main = config.routes.find((r) => r.channel === "main")!;
    assert.deepEqual(
      main.backends.map((b) => [b.name, b.transport]),
      [
        ["local", "http"],
        ["wiki", "http"],
      ],
    );
    assert.deepEqual(
      config.routes.map((r) => r.channel),
      ["main", "files"],
    );
  });

  test("values a sample cannot take are refused with the flag to change", async () => {
    const stdio = findSample("sample_mcp_stdio_local")!;
    const remote = findSample("sample_mcp_remote_no_auth")!;
    const text = await readSample(stdio.name);
    assert.throws(
      () => renderSample(stdio, text, { tunnelId: "tunnel_123", mcpCommand: "x" }),
      (e: Error) => e instanceof SampleError && /--tunnel-id "tunnel_123" is not a tunnel id/.test(e.message),
    );
    assert.throws(
      () => renderSample(stdio, text, { tunnelId: TUNNEL, mcpServerUrl: "http://a.test/mcp" }),
      /pass --mcp-command.*sample_mcp_remote_no_auth/,
    );
    assert.throws(
      () => renderSample(remote, text, { tunnelId: TUNNEL, mcpCommand: "x" }),
      /pass --mcp-server-url.*sample_mcp_stdio_local/,
    );
    assert.throws(
      () => renderSample(stdio, text, { tunnelId: TUNNEL, mcpCommand: "x", apiKeyRef: "sk-literal-key" }),
      /takes a reference/,
    );
    assert.throws(
      () => renderSample(remote, text, { tunnelId: TUNNEL, mcpServerUrl: "ftp://a.test" }),
      /not an http\(s\) URL/,
    );
    await assert.rejects(readSample("sample_nope"), /unknown sample "sample_nope"/);
  });
});

describe("airlock init and profiles", () => {
  let home: string;
  let env: Record<string, string>;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), "airlock-init-"));
    env = { XDG_CONFIG_HOME: join(home, "config"), HOME: home, PATH: process.env.PATH ?? "" };
  });
  after(() => rm(home, { recursive: true, force: true }));

  test("writes a validated profile (mode 0600) that `run --profile` loads, and prints the next commands", async () => {
    const io = capture(env);
    const code = await initMain(["--tunnel-id", TUNNEL, "--mcp-command", "node server.js", "--profile", "first"], io);
    assert.equal(code, 0, io.err);
    const path = join(home, "config", "airlock", "profiles", "first.yaml");
    assert.match(
      io.out,
      new RegExp(`Created profile first at ${path.replace(/[.]/g, "\\.")} \\(from sample_mcp_stdio_local\\)`),
    );
    assert.match(io.out, /export CONTROL_PLANE_API_KEY=/);
    assert.match(io.out, /airlock doctor --profile first --explain\n {2}airlock run --profile first\n/);
    assert.match(io.out, /http:\/\/127\.0\.0\.1:8080\/ui/);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const { config } = await loadConfig({
      argv: ["--profile", "first"],
      env: { ...env, CONTROL_PLANE_API_KEY: "sk-later-1234" },
      cwd: home,
    });
    assert.equal(config.controlPlane.tunnelId, TUNNEL);
    assert.equal(config.file?.path, path);
  });

  test("never overwrites without --force", async () => {
    const dir = join(home, "own");
    const first = capture(env);
    assert.equal(
      await initMain(
        [
          "--tunnel-id",
          TUNNEL,
          "--mcp-server-url",
          "http://127.0.0.1:3001/mcp",
          "--profile",
          "p",
          "--profile-dir",
          dir,
        ],
        first,
      ),
      0,
      first.err,
    );
    const path = join(dir, "p.yaml");
    await writeFile(path, `# hand edited\n${await readFile(path, "utf8")}`);
    const again = capture(env);
    assert.equal(
      await initMain(
        [
          "--tunnel-id",
          TUNNEL,
          "--mcp-server-url",
          "http://127.0.0.1:3002/mcp",
          "--profile",
          "p",
          "--profile-dir",
          dir,
        ],
        again,
      ),
      2,
    );
    assert.match(again.err, /profile "p" already exists at .*p\.yaml; pass --force/);
    assert.match(await readFile(path, "utf8"), /^# hand edited/);
    const forced = capture(env);
    assert.equal(
      await initMain(
        [
          "--tunnel-id",
          TUNNEL,
          "--mcp-server-url",
          "http://127.0.0.1:3002/mcp",
          "--profile",
          "p",
          "--profile-dir",
          dir,
          "--force",
        ],
        forced,
      ),
      0,
      forced.err,
    );
    assert.match(await readFile(path, "utf8"), /3002/);
    assert.match(forced.out, /airlock run --profile p --profile-dir /);
  });

  test("mistakes are usage errors (exit 2) that say what to write", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--mcp-command", "x"], /--tunnel-id is required/],
      [["--tunnel-id", "tunnel_XYZ", "--mcp-command", "x"], /is not a tunnel id/],
      [["--tunnel-id", TUNNEL], /needs the MCP server: pass --mcp-command/],
      [
        ["--tunnel-id", TUNNEL, "--mcp-command", "x", "--mcp-server-url", "http://a.test"],
        /either --mcp-command or --mcp-server-url/,
      ],
      [["--tunnel-id", TUNNEL, "--mcp-command", "x", "--sample", "sample_other"], /unknown sample "sample_other"/],
      [["--tunnel-id", TUNNEL, "--mcp-command", "x", "--profile", "../escape"], /invalid profile name/],
      [["--tunnel-id", TUNNEL, "--mcp-comand", "x"], /unknown flag --mcp-comand; did you mean --mcp-command\?/],
      [["--tunnel-id", TUNNEL, "--mcp-command", "x", "--control-plane-api-key-ref", "sk-123"], /takes a reference/],
      [["--tunnel-id", TUNNEL, "--mcp-command", "x", "--health-listen-addr", "nope"], /health\.listen_addr/],
    ];
    for (const [argv, expected] of cases) {
      const io = capture(env);
      assert.equal(await initMain(argv, io), 2, argv.join(" "));
      assert.match(io.err, expected, argv.join(" "));
      assert.match(io.err, /^airlock init: /);
    }
  });

  test("a command that is not on PATH is written anyway, with a note", async () => {
    const io = capture(env);
    assert.equal(
      await initMain(
        ["--tunnel-id", TUNNEL, "--mcp-command", "no-such-mcp-server --flag", "--profile", "missing-cmd"],
        io,
      ),
      0,
      io.err,
    );
    assert.match(io.out, /note: "no-such-mcp-server" was not found on PATH/);
  });

  test("profiles list shows what `run --profile` finds, in lookup order", async () => {
    const legacy = join(home, "config", "tunnel-client");
    await initMain(
      ["--tunnel-id", TUNNEL, "--mcp-command", "x", "--profile", "first", "--profile-dir", legacy],
      capture(env),
    );
    await initMain(
      ["--tunnel-id", TUNNEL, "--mcp-command", "x", "--profile", "old", "--profile-dir", legacy],
      capture(env),
    );
    const io = capture(env);
    assert.equal(await profilesMain(["list"], io), 0);
    const lines = io.out.trim().split("\n");
    assert.match(lines[0]!, /^first\s+.*airlock\/profiles\/first\.yaml$/);
    assert.ok(
      lines.some((l) => /^first\s+.*tunnel-client\/first\.yaml\s+\(shadowed by the one above\)$/.test(l)),
      io.out,
    );
    assert.ok(
      lines.some((l) => /^old\s+.*tunnel-client\/old\.yaml$/.test(l)),
      io.out,
    );
    const json = capture(env);
    await profilesMain(["list", "--json"], json);
    assert.deepEqual(JSON.parse(json.out).directories, [join(home, "config", "airlock", "profiles"), legacy]);
  });

  test("profiles samples list and show", async () => {
    const list = capture(env);
    assert.equal(await profilesMain(["samples", "list"], list), 0);
    for (const sample of SAMPLES) assert.match(list.out, new RegExp(`^${sample.name}\\s`, "m"));
    const show = capture(env);
    assert.equal(await profilesMain(["samples", "show", "sample_routing_table"], show), 0);
    assert.equal(show.out, await readSample("sample_routing_table"));
    const bad = capture(env);
    assert.equal(await profilesMain(["samples", "show", "nope"], bad), 2);
    assert.match(bad.err, /unknown sample "nope"/);
    const wrong = capture(env);
    assert.equal(await profilesMain(["remove", "x"], wrong), 2);
    assert.match(wrong.err, /usage: airlock profiles list/);
  });
});
