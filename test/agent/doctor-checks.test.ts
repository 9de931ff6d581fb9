/**
 * `airlock doctor` against real things: the contract-checking fake control plane,
 * server-everything over stdio and Streamable HTTP, real ports. Each mistake the issue
 * lists (wrong key, wrong tunnel id, command not found, port taken, unreachable URL) must
 * come out as a FAIL that says how to fix it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quote } from "shell-quote";
import { runDoctor } from "../../agent/doctor/index.ts";
import type { Check, DoctorOptions, DoctorReport } from "../../agent/doctor/index.ts";
import { protectedResourceUrls } from "../../agent/doctor/backends.ts";
import { declaredChannels } from "../../agent/doctor/control-plane.ts";
import { loadConfig } from "../../agent/config/load.ts";
import { formatReport } from "../../agent/doctor/report.ts";
import { main as doctorMain } from "../../agent/cli/doctor.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import type { FakeControlPlane } from "../support/fake-control-plane.ts";
import { everythingStdioCommand, modernStdioCommand, startEverythingHttp } from "../support/everything.ts";
import type { RunningServer } from "../support/everything.ts";

const TIMEOUT = 15_000;

let cp: FakeControlPlane;
let everything: RunningServer;
let oauthServer: Server;
let oauthUrl: string;
let dir: string;

before(async () => {
  [cp, everything] = await Promise.all([startFakeControlPlane(), startEverythingHttp()]);
  dir = await mkdtemp(join(tmpdir(), "airlock-doctor-"));
  // An MCP server that does its own OAuth: 401 with a challenge, and RFC 9728 metadata.
  oauthServer = createServer((req, res) => {
    if (req.url === "/.well-known/oauth-protected-resource/mcp") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ resource: `${oauthUrl}`, authorization_servers: ["https://login.example.test"] }));
      return;
    }
    req.resume();
    res.writeHead(401, { "WWW-Authenticate": `Bearer resource_metadata="${oauthUrl}"`, "Content-Type": "text/plain" });
    res.end("sign in first");
  });
  await new Promise<void>((resolve) => oauthServer.listen(0, "127.0.0.1", resolve));
  oauthUrl = `http://127.0.0.1:${(oauthServer.address() as AddressInfo).port}/mcp`;
});

after(async () => {
  // Keep-alive connections from doctor's fetches would hold close() open.
  oauthServer.closeAllConnections();
  await Promise.all([
    cp.close(),
    everything.close(),
    new Promise((resolve) => oauthServer.close(resolve)),
    rm(dir, { recursive: true, force: true }),
  ]);
});

/** Doctor over flags and environment only, pointed at the fake control plane. */
function options(flags: string[], env: Record<string, string> = {}, extra: Partial<DoctorOptions> = {}): DoctorOptions {
  return {
    argv: [
      "--control-plane.base-url",
      cp.baseUrl,
      "--control-plane.tunnel-id",
      cp.tunnelId,
      "--health.listen-addr",
      "127.0.0.1:0",
      ...flags,
    ],
    env: { PATH: process.env.PATH ?? "", CONTROL_PLANE_API_KEY: cp.apiKey, ...env },
    cwd: dir,
    homeDir: dir,
    timeoutMs: TIMEOUT,
    ...extra,
  };
}

function find(report: DoctorReport, id: string): Check {
  const found = report.checks.find((c) => c.id === id);
  assert.ok(found, `no check ${id} in ${report.checks.map((c) => c.id).join(", ")}`);
  return found;
}

function statuses(report: DoctorReport): Record<string, string> {
  return Object.fromEntries(report.checks.map((c) => [c.id, c.status]));
}

describe("doctor", () => {
  test("by default doctor takes no work: the key is proven by the metadata read, no poll, no stdio server started", async () => {
    const pollsBefore = cp.polls.length;
    const script = join(dir, "marks.sh");
    const marker = join(dir, "started.marker");
    await writeFile(script, `#!/bin/sh\ntouch ${marker}\nexec ${quote(everythingStdioCommand())}\n`, { mode: 0o755 });
    const report = await runDoctor(options(["--mcp.command", script]));
    assert.deepEqual(
      statuses(report),
      {
        config_source: "PASS",
        config_validation: "PASS",
        tunnel_id: "PASS",
        control_plane_api_key: "PASS",
        mcp_target: "PASS",
        mcp_command_executable: "PASS",
        "mcp_initialize main": "SKIP",
        // tunnel-client's ids for a stdio main server: not probed over the network.
        mcp_server_reachable: "SKIP",
        oauth_metadata: "SKIP",
        health_listener: "PASS",
        control_plane_reachable: "PASS",
        control_plane_api_key_accepted: "PASS",
        control_plane_poll: "SKIP",
        clock: "PASS",
      },
      formatReport(report, true),
    );
    assert.equal(cp.polls.length, pollsBefore, "no poll");
    await assert.rejects(stat(marker), "the stdio server was not started");
    assert.match(
      find(report, "control_plane_api_key_accepted").summary,
      /the key read tunnel "Fake tunnel" \(GET .* → 200\): proves tunnel read permission/,
    );
    assert.match(find(report, "control_plane_poll").summary, /add --poll/);
    assert.match(find(report, "mcp_initialize main").summary, /only with --probe-mcp/);
    assert.equal(report.result, "ok");
  });

  test("--poll and --probe-mcp: a healthy stdio setup passes every check, and the key is proven by a real poll", async () => {
    const pollsBefore = cp.polls.length;
    const report = await runDoctor(
      options(["--mcp.command", quote(everythingStdioCommand())], {}, { poll: true, probeMcp: true }),
    );
    assert.deepEqual(
      statuses(report),
      {
        config_source: "PASS",
        config_validation: "PASS",
        tunnel_id: "PASS",
        control_plane_api_key: "PASS",
        mcp_target: "PASS",
        mcp_command_executable: "PASS",
        "mcp_initialize main": "PASS",
        // tunnel-client's ids for a stdio main server: not probed over the network.
        mcp_server_reachable: "SKIP",
        oauth_metadata: "SKIP",
        health_listener: "PASS",
        control_plane_reachable: "PASS",
        control_plane_api_key_accepted: "PASS",
        control_plane_poll: "PASS",
        clock: "PASS",
      },
      formatReport(report, true),
    );
    assert.equal(report.result, "ok");
    assert.match(
      find(report, "mcp_initialize main").summary,
      /a 2025-era server; 2026-07-28 clients are bridged; \d+ tool\(s\): .*echo/,
    );
    assert.match(find(report, "control_plane_reachable").summary, /answered HTTP 200 tunnel "Fake tunnel"/);
    // The poll holds nothing and asks for one command at most.
    const poll = cp.polls.slice(pollsBefore).at(-1)!;
    assert.deepEqual([poll.limit, poll.timeoutMs], [1, 1]);
    assert.equal(
      poll.headers["x-tunnel-mcp-server-info"],
      '{"version":1,"channels":[{"name":"main","proc_affinity":true}]}',
    );
    // Each doctor run in this file is a new client instance against one fake.
    assert.deepEqual(
      cp.violations.filter((v) => !v.includes("Instance-Id changed")),
      [],
    );
    assert.deepEqual(report.next, [
      "airlock run",
      "then find the admin UI through health.url_file: airlock health --url-file FILE",
    ]);
  });

  test("wrong key: the poll FAILs naming the refusal and what to do", async () => {
    const report = await runDoctor(
      options(["--mcp.server-url", everything.url], { CONTROL_PLANE_API_KEY: "sk-wrong-key-0000" }, { poll: true }),
    );
    const poll = find(report, "control_plane_poll");
    assert.equal(poll.status, "FAIL");
    assert.match(poll.summary, /refused the poll: HTTP 401 invalid_api_key — Incorrect API key provided/);
    assert.match(poll.fix!.join("\n"), /runtime API key/);
    assert.equal(report.result, "fail");
    assert.deepEqual(report.failed, ["control_plane_api_key_accepted", "control_plane_poll"]);
    assert.match(find(report, "control_plane_api_key_accepted").summary, /refused reading the tunnel: HTTP 401/);
    assert.doesNotMatch(JSON.stringify(report), /sk-wrong-key-0000/);
  });

  test("wrong tunnel id (well-formed, not this key's): FAIL naming the missing permission", async () => {
    const other = "tunnel_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
    const report = await runDoctor(
      options(["--mcp.server-url", everything.url, "--control-plane.tunnel-id", other], {}, { poll: true }),
    );
    const poll = find(report, "control_plane_poll");
    assert.equal(poll.status, "FAIL");
    assert.match(poll.summary, /HTTP 403 tunnel_use_forbidden/);
    assert.match(poll.fix![0]!, /no tunnel use permission for this tunnel/);
    assert.match(poll.fix![1]!, new RegExp(other));
  });

  test("malformed tunnel id: FAIL with the format, the control plane is not asked, the rest is still checked", async () => {
    const requests = cp.requests.length;
    const report = await runDoctor(
      options(["--mcp.server-url", everything.url, "--control-plane.tunnel-id", "tunnel_ABC"]),
    );
    assert.equal(find(report, "tunnel_id").status, "FAIL");
    assert.match(
      find(report, "tunnel_id").summary,
      /"tunnel_ABC" is not a tunnel id; expected tunnel_ followed by 32 lowercase letters or digits/,
    );
    assert.equal(find(report, "control_plane").status, "SKIP");
    assert.equal(find(report, "mcp_initialize main").status, "PASS");
    assert.equal(cp.requests.length, requests);
  });

  test("backend command not found: FAIL saying so, initialize SKIPped", async () => {
    const report = await runDoctor(options(["--mcp.command", "airlock-no-such-server --stdio"]));
    const command = find(report, "mcp_command_executable");
    assert.equal(command.status, "FAIL");
    assert.match(command.summary, /"airlock-no-such-server" was not found on PATH/);
    assert.match(command.fix![0]!, /install airlock-no-such-server/);
    assert.equal(find(report, "mcp_initialize main").status, "SKIP");
  });

  test("--probe-mcp: a 2026-only stdio server (refusing 2025 clients) passes, named as modern", async () => {
    const report = await runDoctor(options(["--mcp.command", quote(modernStdioCommand(true))], {}, { probeMcp: true }));
    const init = find(report, "mcp_initialize main");
    assert.equal(init.status, "PASS", formatReport(report, true));
    assert.match(
      init.summary,
      /airlock-modern-fixture 2\.0\.0, .*a 2026-07-28 server; 2025-era clients are bridged.*echo/,
    );
  });

  test("a command that starts and dies: initialize FAILs with its stderr", async () => {
    const script = join(dir, "dies.sh");
    await writeFile(script, "#!/bin/sh\necho 'cannot open database /var/db/x' >&2\nexit 3\n", { mode: 0o755 });
    const report = await runDoctor(options(["--mcp.command", script], {}, { probeMcp: true }));
    const init = find(report, "mcp_initialize main");
    assert.equal(init.status, "FAIL");
    assert.match(init.summary, /cannot open database \/var\/db\/x/);
  });

  test("health listener port taken: FAIL saying so", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const report = await runDoctor(
        options(["--mcp.server-url", everything.url, "--health.listen-addr", `127.0.0.1:${port}`]),
      );
      const listener = find(report, "health_listener");
      assert.equal(listener.status, "FAIL");
      assert.equal(listener.summary, `127.0.0.1:${port} is already in use by another process`);
      assert.match(listener.fix!.join("\n"), new RegExp(`airlock health --port ${port}`));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test("unreachable MCP URL: FAIL, and initialize and metadata are SKIPped", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const url = `http://127.0.0.1:${port}/mcp`;
    const report = await runDoctor(options(["--mcp.server-url", url]));
    const reach = find(report, "mcp_server_reachable");
    assert.equal(reach.status, "FAIL");
    assert.match(reach.summary, new RegExp(`${url}: the connection failed`));
    assert.match(reach.fix![0]!, /start the MCP server, or fix the host, port and path/);
    assert.equal(find(report, "mcp_initialize main").status, "SKIP");
    assert.equal(find(report, "oauth_metadata").status, "SKIP");
  });

  test("HTTP backends: initialize over Streamable HTTP; OAuth metadata reported, never failed", async () => {
    const report = await runDoctor(
      options(["--mcp.server-url", everything.url, "--mcp.server-url", `channel=docs,url=${oauthUrl}`]),
    );
    assert.equal(find(report, "mcp_server_reachable").status, "PASS");
    assert.equal(find(report, "mcp_initialize main").status, "PASS");
    assert.equal(find(report, "oauth_metadata").status, "SKIP");
    assert.match(find(report, "oauth_metadata").summary, /none advertised/);
    const auth = find(report, "mcp_initialize docs");
    assert.equal(auth.status, "WARN");
    assert.match(auth.summary, /requires authorization \(HTTP 401, WWW-Authenticate: Bearer resource_metadata=/);
    assert.equal(find(report, "oauth_metadata docs").status, "PASS");
    assert.match(
      find(report, "oauth_metadata docs").summary,
      /authorization server\(s\): https:\/\/login\.example\.test/,
    );
    assert.equal(report.result, "ok");
  });

  test("X-Tunnel-MCP-Server-Info declares only polled channels when poll_channels is set (as tunnel-client)", async () => {
    const load = (extra: string[]) =>
      loadConfig({
        argv: [
          "--control-plane.tunnel-id",
          cp.tunnelId,
          "--mcp.command",
          "cat",
          "--mcp.server-url",
          `channel=docs,url=${everything.url}`,
          ...extra,
        ],
        env: { CONTROL_PLANE_API_KEY: cp.apiKey },
        cwd: dir,
      });
    assert.deepEqual(
      declaredChannels((await load([])).config)
        .map((c) => c.name)
        .sort(),
      ["docs", "main"],
    );
    assert.deepEqual(declaredChannels((await load(["--control-plane.poll-channel", "docs"])).config), [
      { name: "docs", procAffinity: false },
    ]);
  });

  test("protected-resource metadata URLs follow RFC 9728", () => {
    assert.deepEqual(protectedResourceUrls("https://h.test/mcp/"), [
      "https://h.test/.well-known/oauth-protected-resource/mcp",
      "https://h.test/.well-known/oauth-protected-resource",
    ]);
    assert.deepEqual(protectedResourceUrls("https://h.test"), ["https://h.test/.well-known/oauth-protected-resource"]);
  });

  test("a literal API key in a profile is a WARN; a reference is not", async () => {
    const literal = join(dir, "literal.yaml");
    const reference = join(dir, "reference.yaml");
    const body = (key: string) =>
      `control_plane:\n  base_url: "${cp.baseUrl}"\n  tunnel_id: "${cp.tunnelId}"\n  api_key: "${key}"\nhealth:\n  listen_addr: "127.0.0.1:0"\nmcp:\n  server_urls:\n    - url: "${everything.url}"\n`;
    await writeFile(literal, body(cp.apiKey));
    await writeFile(reference, body("env:MY_TUNNEL_KEY"));
    const env = { PATH: process.env.PATH ?? "", MY_TUNNEL_KEY: cp.apiKey };
    const warned = await runDoctor({ argv: ["--config", literal], env, cwd: dir, homeDir: dir, timeoutMs: TIMEOUT });
    assert.equal(find(warned, "control_plane_api_key").status, "WARN");
    assert.match(find(warned, "control_plane_api_key").summary, /a literal key is written in .*literal\.yaml/);
    assert.equal(warned.result, "ok");
    assert.doesNotMatch(formatReport(warned, true), new RegExp(cp.apiKey));
    const fine = await runDoctor({ argv: ["--config", reference], env, cwd: dir, homeDir: dir, timeoutMs: TIMEOUT });
    assert.equal(find(fine, "control_plane_api_key").status, "PASS");
    assert.match(find(fine, "control_plane_api_key").summary, /env:MY_TUNNEL_KEY in .*reference\.yaml/);
    assert.deepEqual(fine.next[0], `airlock run --config ${reference}`);
  });

  test("missing key and missing profile are FAILs, not crashes", async () => {
    const noKey = await runDoctor(options(["--mcp.server-url", everything.url], { CONTROL_PLANE_API_KEY: "" }));
    assert.equal(find(noKey, "control_plane_api_key").status, "FAIL");
    assert.match(find(noKey, "control_plane_api_key").summary, /an API key is required/);
    const noProfile = await runDoctor({
      argv: ["--profile", "ghost"],
      env: { XDG_CONFIG_HOME: dir },
      cwd: dir,
      homeDir: dir,
    });
    assert.deepEqual(statuses(noProfile), { config_source: "FAIL" });
    assert.match(find(noProfile, "config_source").summary, /profile "ghost" not found/);
    const badKey = await runDoctor(
      options(["--mcp.server-url", everything.url, "--control-plane.poll-timeout", "soon"]),
    );
    assert.equal(find(badKey, "config_validation").status, "FAIL");
  });

  test("clock: a local clock minutes off the control plane's is a WARN", async () => {
    const report = await runDoctor(
      options(["--mcp.server-url", everything.url], {}, { now: () => Date.now() + 5 * 60_000 }),
    );
    const clock = find(report, "clock");
    assert.equal(clock.status, "WARN");
    assert.match(clock.summary, /the local clock is 30\ds ahead of the control plane's/);
    assert.match(clock.fix![0]!, /time synchronisation/);
  });

  test("a command waiting on the tunnel is taken by the poll, reported, and answered with an error — never run", async () => {
    const [command, note] = cp.enqueue(
      { jsonrpc: { jsonrpc: "2.0", id: 7, method: "tools/list" }, response_timeout: "30s" },
      { jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" } },
    );
    // limit=1 is a hint: the fake hands out both, as a real control plane may.
    cp.scriptPoll({ status: 200, commands: [command!, note!] });
    const report = await runDoctor(options(["--mcp.server-url", everything.url], {}, { poll: true }));
    const poll = find(report, "control_plane_poll");
    assert.equal(poll.status, "WARN");
    assert.match(
      poll.summary,
      new RegExp(
        `took 2 waiting command\\(s\\) \\(${command!.request_id}, ${note!.request_id}\\); doctor answered them with an error`,
      ),
    );
    const [answer] = cp.responsesFor(command!.request_id);
    assert.equal(answer?.respType, "jsonrpc_response");
    assert.equal((answer!.payload.resp_json as { id: number; error: { code: number } }).id, 7);
    assert.equal((answer!.payload.resp_json as { error: { code: number } }).error.code, -32603);
    assert.equal(cp.responsesFor(note!.request_id)[0]?.respType, "notify_ack");
    // Each doctor run in this file is a new client instance against one fake; only the answers' contract matters here.
    assert.deepEqual(
      cp.violations.filter((v) => v.includes("/response") && !v.includes("Instance-Id changed")),
      [],
    );
    assert.equal(report.result, "ok");
  });

  test("the CLI: --explain says what and how, --json is machine-readable, exit 2 on FAIL", async () => {
    const io = {
      out: "",
      err: "",
      env: { PATH: process.env.PATH ?? "", CONTROL_PLANE_API_KEY: cp.apiKey },
      cwd: dir,
      homeDir: dir,
      stdout(t: string) {
        io.out += t;
      },
      stderr(t: string) {
        io.err += t;
      },
    };
    const base = [
      "--control-plane.base-url",
      cp.baseUrl,
      "--control-plane.tunnel-id",
      cp.tunnelId,
      "--health.listen-addr",
      "127.0.0.1:0",
      "--mcp.command",
      "airlock-no-such-server",
    ];
    assert.equal(await doctorMain([...base, "--explain", "--timeout", "5s"], io), 2);
    // tunnel-client's layout: scripts grep CHECK, RESULT, FAILED_CHECKS and EXIT_CODE.
    assert.match(io.out, /^CHECK mcp_command_executable +FAIL "airlock-no-such-server" was not found on PATH/m);
    assert.match(io.out, /^RESULT fail\nFAILED_CHECKS mcp_command_executable\nEXIT_CODE 2$/m);
    assert.match(
      io.out,
      /^CHECK mcp_command_executable {3}FAIL\nWhy this matters:\n {2}A stdio backend is a program Airlock starts itself/m,
    );
    assert.match(io.out, /^What to do next:\n {2}1\. install airlock-no-such-server/m);
    io.out = "";
    assert.equal(await doctorMain([...base, "--json", "--offline"], io), 2);
    const json = JSON.parse(io.out) as {
      result: string;
      failed_checks: string[];
      next?: string;
      checks: Array<{ id: string; status: string; next?: string[] }>;
    };
    assert.equal(json.result, "fail");
    assert.deepEqual(json.failed_checks, ["mcp_command_executable"]);
    // tunnel-client's check ids, each once (Airlock-only checks such as mcp_initialize keep their own).
    const ids = json.checks.map((c) => c.id);
    for (const id of [
      "config_source",
      "tunnel_id",
      "control_plane_api_key",
      "mcp_target",
      "mcp_command_executable",
      "mcp_server_reachable",
      "oauth_metadata",
      "health_listener",
    ])
      assert.equal(ids.filter((x) => x === id).length, 1, `${id} in ${ids.join(",")}`);
    assert.equal(json.next, undefined, "no next command on failure, as tunnel-client");
    assert.equal(json.checks.find((c) => c.id === "control_plane")?.status, "SKIP");
    assert.match(
      json.checks.find((c) => c.id === "mcp_command_executable")?.next?.[0] ?? "",
      /install airlock-no-such-server/,
    );
    io.out = "";
    assert.equal(await doctorMain(["--timeout", "never"], io), 2);
    assert.match(io.err, /--timeout takes a duration/);
  });
});
