/**
 * tunnel-client's remaining commands as an operator runs them, each `airlock` a real child
 * process: `dev proxy` (a local control plane and agent giving an MCP URL an SDK client uses),
 * `cloudflared version` / `cloudflared config`, and `runtimes` supervising a real agent that a
 * fake control plane sends work to.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { airlockCommand, REPO } from "../support/agent-process.ts";
import { startMcpStub } from "../../agent/demo/mcp-stub.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import { FAKE_ADMIN_KEY, startFakeAdminApi } from "../support/fake-admin-api.ts";
import { eventually } from "../support/manual-clock.ts";

function airlock(args: string[], env: Record<string, string> = {}) {
  const [cmd, ...argv] = airlockCommand("node", args);
  return spawnSync(cmd!, argv, { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 });
}

/** `airlock <args>` without blocking the event loop, for commands that call a server this process serves. */
function airlockAsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const [cmd, ...argv] = airlockCommand("node", args);
  const child = spawn(cmd!, argv, { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

/** Start `airlock <args>`; resolves with the child once `ready` matches its stdout. */
function startAirlock(
  args: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; out: () => string; match: RegExpExecArray }> {
  const [cmd, ...argv] = airlockCommand("node", args);
  const child = spawn(cmd!, argv, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    err += chunk;
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (chunk: string) => {
      out += chunk;
      const match = ready.exec(out);
      if (match) resolve({ child, out: () => out, match });
    });
    child.once("exit", (code) => reject(new Error(`airlock ${args.join(" ")} exited ${code}:\n${out}\n${err}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

describe("airlock dev proxy (tunnel-client's local control plane + client)", () => {
  test("prints the connection JSON, serves an MCP URL without a client token, writes --url-file, exits 0 on SIGTERM", async (t) => {
    const stub = await startMcpStub({ serverName: "proxied" });
    t.after(() => stub.close());
    const dir = mkdtempSync(join(tmpdir(), "airlock-dev-proxy-"));
    const urlFile = join(dir, "proxy.json");
    const { child, match } = await startAirlock(
      ["dev", "proxy", "--mcp-server-url", stub.url, "--print-json", "--url-file", urlFile],
      /(\{[\s\S]*\})\n/,
    );
    t.after(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const info = JSON.parse(match[1]!) as Record<string, string>;
    assert.equal(info.tunnel_id, "tunnel_22222222222222222222222222222222", "tunnel-client's default tunnel id");
    assert.match(info.mcp_url!, /^http:\/\/127\.0\.0\.1:\d+\/v1\/mcp\/tunnel_2{32}$/);
    assert.equal(info.mcp_transport, "http");
    assert.equal(info.control_plane_transport, "http");
    assert.match(info.health_url!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(JSON.parse(readFileSync(urlFile, "utf8")), info);
    assert.equal(statSync(urlFile).mode & 0o777, 0o600);

    const client = new Client({ name: "dev-proxy", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(info.mcp_url!)));
    assert.equal(client.getServerVersion()?.name, "proxied", "the MCP server behind the proxy answered");
    const echoed = await client.callTool({ name: "echo", arguments: { text: "through the local proxy" } });
    assert.deepEqual(echoed.content, [{ type: "text", text: "through the local proxy" }]);
    await client.close();
    const healthz = await fetch(`${info.health_url}/healthz`);
    assert.equal(await healthz.text(), "live");

    child.kill("SIGTERM");
    assert.equal(await exited(child), 0);
  });

  test("without --print-json it prints `MCP URL: …`", async (t) => {
    const stub = await startMcpStub();
    t.after(() => stub.close());
    const { child, match } = await startAirlock(
      ["dev", "proxy", "--mcp-server-url", stub.url, "--tunnel-id", "tunnel_0123456789abcdef0123456789abcdef"],
      /MCP URL: (\S+)\n/,
    );
    t.after(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    assert.match(match[1]!, /\/v1\/mcp\/tunnel_0123456789abcdef0123456789abcdef$/);
    child.kill("SIGINT");
    assert.equal(await exited(child), 0);
  });

  test("engines Airlock does not have, a Unix-socket ingress and a bad profile exit 1 saying why", () => {
    const rust = airlock(["dev", "proxy", "--backend", "rust", "--mcp-server-url", "http://127.0.0.1:9/mcp"]);
    assert.equal(rust.status, 1);
    assert.match(
      rust.stderr,
      /--backend rust is not available: Airlock's local control plane is the hub Worker in workerd/,
    );
    const redis = airlock(["dev", "proxy", "--engine-queue-backend", "redis"]);
    assert.equal(redis.status, 1);
    assert.match(redis.stderr, /--engine-queue-backend redis and --engine-redis-url are not supported/);
    const socket = airlock(["dev", "proxy", "--listen-unix-socket", "/tmp/x.sock"]);
    assert.equal(socket.status, 1);
    assert.match(socket.stderr, /--listen-unix-socket is not supported/);
    const missing = airlock(["dev", "proxy", "--profile", "no-such-profile-here"], {
      HOME: mkdtempSync(join(tmpdir(), "home-")),
    });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no-such-profile-here/);
  });
});

describe("airlock cloudflared (tunnel-client's companion commands)", () => {
  test("version says Airlock bundles no cloudflared and what it does instead; exit 1", () => {
    const result = airlock(["cloudflared", "version"]);
    assert.equal(result.status, 1);
    assert.match(result.stdout, /airlock bundles no cloudflared/);
    assert.match(result.stdout, /outbound HTTPS long polls/);
  });

  test("config --token-file renders tunnel-client's token-free standalone config", () => {
    const result = airlock([
      "cloudflared",
      "config",
      "--token-file",
      "/etc/cloudflared/token",
      "--grace-period",
      "90s",
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(
      result.stdout,
      [
        "# Generated by airlock cloudflared config.",
        "# Token-free by design: the file references a token path but never embeds the token.",
        "# Run directly with: TUNNEL_MANAGEMENT_DIAGNOSTICS=false cloudflared tunnel --config /etc/cloudflared/config.yml run",
        'token-file: "/etc/cloudflared/token"',
        "no-autoupdate: true",
        'metrics: "127.0.0.1:20241"',
        'loglevel: "info"',
        'transport-loglevel: "warn"',
        'protocol: "auto"',
        'edge-ip-version: "auto"',
        "retries: 5",
        'grace-period: "1m30s"',
        "",
      ].join("\n"),
    );
  });

  test("config without --token-file, or with a bad choice, exits 1 naming the flag", () => {
    const missing = airlock(["cloudflared", "config"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /--token-file is required/);
    const bad = airlock(["cloudflared", "config", "--token-file", "/t", "--protocol", "udp"]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /invalid --protocol "udp"; expected one of auto, http2, quic/);
  });
});

describe("airlock runtimes (tunnel-client's supervised runtimes)", () => {
  const KEY = "sk-runtimes-e2e-0123456789";

  /** A private state root and profile directory; every runtime still running at the end is killed. */
  function sandbox(t: { after(fn: () => void): void }, key: Record<string, string> = { CONTROL_PLANE_API_KEY: KEY }) {
    const dir = mkdtempSync(join(tmpdir(), "airlock-runtimes-"));
    const env = {
      AIRLOCK_STATE_DIR: join(dir, "state"),
      // Admin profiles live in tunnel-client's state directory: keep it in the sandbox too.
      TUNNEL_CLIENT_STATE_DIR: join(dir, "tunnel-client-state"),
      XDG_CONFIG_HOME: join(dir, "config"),
      ...key,
    };
    t.after(() => {
      const file = join(env.AIRLOCK_STATE_DIR, "processes.yaml");
      if (!existsSync(file)) return;
      for (const record of Object.values(JSON.parse(readFileSync(file, "utf8")) as Record<string, { pid?: number }>))
        if (record.pid)
          try {
            process.kill(record.pid, "SIGKILL");
          } catch {
            // Already gone.
          }
    });
    return { dir, env, run: (args: string[]) => airlock(["runtimes", ...args], env) };
  }

  test("connect starts a real agent that serves the tunnel; status, list, stop and rm follow it", async (t) => {
    const cp = await startFakeControlPlane({ apiKey: KEY });
    t.after(() => cp.close());
    const stub = await startMcpStub({ serverName: "supervised" });
    t.after(() => stub.close());
    const { env, run } = sandbox(t);
    const connect = (alias: string, ...extra: string[]) =>
      run([
        "connect",
        "--alias",
        alias,
        "--tunnel-id",
        cp.tunnelId,
        "--mcp-server-url",
        stub.url,
        "--control-plane-base-url",
        cp.baseUrl,
        ...extra,
      ]);

    const connected = connect("My_Demo");
    assert.equal(connected.status, 0, connected.stderr);
    assert.equal(
      connected.stdout,
      "Connected my-demo using process mode\n",
      "the alias is normalised as tunnel-client's",
    );
    const profile = join(env.XDG_CONFIG_HOME, "airlock", "profiles", "my-demo.yaml");
    assert.equal(statSync(profile).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(profile, "utf8")).control_plane.api_key, "env:CONTROL_PLANE_API_KEY");

    // The supervised agent polls the control plane and answers through the MCP server.
    const [command] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", id: 1, method: "tools/list" } });
    const answer = await cp.waitForFinal(command!.request_id, 20_000);
    const tools = (answer.payload.resp_json as { result: { tools: Array<{ name: string }> } }).result.tools;
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ["echo", "server_info", "uppercase"]);

    const ready = await eventually(
      () => {
        const result = run(["status", "my-demo"]);
        return result.stdout === `my-demo\tready\t${cp.tunnelId}\n` ? result : undefined;
      },
      20_000,
      "status to say ready",
    );
    assert.equal(ready.status, 0);
    const json = JSON.parse(run(["status", "my-demo", "--json"]).stdout) as {
      process: { pid: number };
      health_url: string;
    };
    const pid = json.process.pid;
    assert.equal(await (await fetch(`${json.health_url}/healthz`)).text(), "live");
    assert.equal(run(["list"]).stdout, `my-demo\t${cp.tunnelId}\n`);

    const again = connect("my-demo", "--json");
    assert.equal(again.status, 0, again.stderr);
    const reused = JSON.parse(again.stdout) as { pid: number; started: boolean };
    assert.deepEqual([reused.pid, reused.started], [pid, false], "a runtime already serving the tunnel is reused");

    const busy = run(["rm", "my-demo"]);
    assert.equal(busy.status, 1);
    assert.match(busy.stderr, /still has a managed runtime; run `airlock runtimes stop my-demo` first/);

    const stopped = run(["stop", "my-demo"]);
    assert.equal(stopped.status, 0, stopped.stderr);
    assert.equal(stopped.stdout, "Stopped my-demo\n");
    assert.throws(() => process.kill(pid, 0), /ESRCH/, "the agent is gone");
    assert.equal(run(["status", "my-demo"]).stdout, `my-demo\tstopped\t${cp.tunnelId}\n`);

    const removed = run(["rm", "my-demo"]);
    assert.equal(removed.status, 0, removed.stderr);
    assert.equal(removed.stdout, "Removed local runtime metadata for my-demo\n");
    assert.equal(existsSync(profile), false, "its profile went with it");
    assert.match(run(["list"]).stdout, /^No runtime aliases found in /);
  });

  test("a runtime that cannot start: connect exits 2 with its log; cleanup classifies and removes stale aliases", async (t) => {
    // No CONTROL_PLANE_API_KEY in the environment (it would win over the profile's reference).
    const { env, run } = sandbox(t, {});
    const broken = run([
      "connect",
      "--alias",
      "broken",
      "--tunnel-id",
      "tunnel_0123456789abcdef0123456789abcdef",
      "--mcp-server-url",
      "http://127.0.0.1:9/mcp",
      "--runtime-api-key",
      "env:NOT_SET_ANYWHERE",
    ]);
    assert.equal(broken.status, 2, broken.stdout + broken.stderr);
    assert.match(broken.stderr, /the runtime exited during start; last lines of .*broken\.log/);
    assert.match(broken.stderr, /NOT_SET_ANYWHERE/, "the agent's own error is shown");

    assert.equal(
      run(["create", "--alias", "orphan", "--tunnel-id", "tunnel_abcdefabcdefabcdefabcdefabcdefab"]).status,
      0,
    );
    const dry = run(["cleanup"]);
    assert.equal(
      dry.stdout,
      "broken\tvalid_profile\ttunnel_0123456789abcdef0123456789abcdef\n" +
        "orphan\tstale_alias\ttunnel_abcdefabcdefabcdefabcdefabcdefab\n" +
        "Dry run only. Re-run with --apply to remove entries classified as stale_alias.\n",
    );
    const applied = JSON.parse(run(["cleanup", "--apply", "--json"]).stdout) as { removed: string[] };
    assert.deepEqual(applied.removed, ["orphan"]);
    assert.equal(run(["list"]).stdout, "broken\ttunnel_0123456789abcdef0123456789abcdef\n");
    assert.ok(existsSync(join(env.AIRLOCK_STATE_DIR, "history.md")));
  });

  test("create/connect without --tunnel-id find or create the tunnel at the admin API; list adds a scope's tunnels", async (t) => {
    const api = await startFakeAdminApi();
    t.after(() => api.close());
    const { env } = sandbox(t, { OPENAI_ADMIN_KEY: FAKE_ADMIN_KEY });
    const run = (args: string[]) => airlockAsync(["runtimes", ...args], env);
    const at = ["--control-plane-base-url", api.baseUrl];
    const created = await run(["create", "--alias", "demo", "--organization-id", "org_1", ...at, "--json"]);
    assert.equal(created.status, 0, created.stderr);
    const payload = JSON.parse(created.stdout) as {
      alias: string;
      tunnel: { id: string; name: string; description: string };
    };
    assert.equal(payload.alias, "demo");
    assert.match(payload.tunnel.id, /^tunnel_[0-9a-f]{32}$/);
    assert.deepEqual(
      [...api.tunnels.values()].map((x) => [x.name, x.description, x.organization_ids]),
      [["demo", "MCP tunnel for demo", ["org_1"]]],
    );
    // Known alias: its tunnel is read back, nothing new is made.
    const again = await run(["create", "--alias", "demo", ...at]);
    assert.equal(again.stdout, `Created alias demo for tunnel ${payload.tunnel.id}\n`, again.stderr);
    // Another alias asking for the same name in the same scope reuses that tunnel (tunnel-client's lookup).
    const named = await run(["create", "--alias", "second", "--name", "demo", "--workspace-id", "ws_none", ...at]);
    assert.equal(named.status, 0, named.stderr);
    assert.equal(api.tunnels.size, 2, "a workspace with no tunnel named demo gets a new one");
    const reused = await run(["create", "--alias", "third", "--name", "demo", "--organization-id", "org_1", ...at]);
    assert.equal(reused.stdout, `Created alias third for tunnel ${payload.tunnel.id}\n`, reused.stderr);
    assert.equal(api.tunnels.size, 2);
    assert.equal(api.seen.filter((r) => r.method === "POST").length, 2);

    // The first call saved tunnel-client's implicit `default` admin profile (the API's URL and
    // env:OPENAI_ADMIN_KEY), so later calls need no --control-plane-base-url.
    const saved0 = JSON.parse(readFileSync(join(env.TUNNEL_CLIENT_STATE_DIR, "admin_profiles.yaml"), "utf8")) as {
      active_profile: string;
      profiles: Record<string, { control_plane_base_url: string; admin_key: string }>;
    };
    assert.equal(saved0.active_profile, "default");
    assert.deepEqual(
      [saved0.profiles.default?.control_plane_base_url, saved0.profiles.default?.admin_key],
      [api.baseUrl, "env:OPENAI_ADMIN_KEY"],
    );
    const listed = await run(["list", "--organization-id", "org_1", "--json"]);
    assert.equal(listed.status, 0, listed.stderr);
    const list = JSON.parse(listed.stdout) as { remote_tunnels: Array<{ id: string; local_alias: string }> };
    assert.deepEqual(
      list.remote_tunnels.map((x) => [x.id, x.local_alias]),
      [[payload.tunnel.id, "third"]],
    );
    // The admin key from a reference; a wrong one is the admin API's 401, exit 1.
    const wrong = await airlockAsync(
      ["runtimes", "list", "--organization-id", "org_1", ...at, "--admin-key", "env:OTHER"],
      {
        AIRLOCK_STATE_DIR: join(env.AIRLOCK_STATE_DIR, "elsewhere"),
        TUNNEL_CLIENT_STATE_DIR: join(env.AIRLOCK_STATE_DIR, "elsewhere-tc"),
        OTHER: "sk-not-the-admin-key",
      },
    );
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /401/);
    // --admin-profile: a profile saved with `airlock admin-profiles set` names the API and the key.
    const profiles = {
      AIRLOCK_STATE_DIR: env.AIRLOCK_STATE_DIR,
      TUNNEL_CLIENT_STATE_DIR: join(env.AIRLOCK_STATE_DIR, "tc"),
      CORP_ADMIN_KEY: FAKE_ADMIN_KEY,
    };
    const saved = await airlockAsync(
      ["admin-profiles", "set", "corp", "--control-plane-base-url", api.baseUrl, "--admin-key", "env:CORP_ADMIN_KEY"],
      profiles,
    );
    assert.equal(saved.status, 0, saved.stderr);
    const viaProfile = await airlockAsync(
      ["runtimes", "list", "--organization-id", "org_1", "--admin-profile", "corp", "--json"],
      profiles,
    );
    assert.equal(viaProfile.status, 0, viaProfile.stderr);
    assert.equal((JSON.parse(viaProfile.stdout) as { remote_tunnels: unknown[] }).remote_tunnels.length, 1);
    api.assertNoViolations();
  });

  test("what needs the admin API, or a key written inline, exits 1 saying what to do", (t) => {
    const { run } = sandbox(t);
    const noTunnel = run(["connect", "--alias", "x", "--mcp-server-url", "http://127.0.0.1:9/mcp"]);
    assert.equal(noTunnel.status, 1);
    assert.match(noTunnel.stderr, /creating a tunnel requires --organization-id or --workspace-id/);
    const inline = run([
      "connect",
      "--alias",
      "x",
      "--tunnel-id",
      "tunnel_0123456789abcdef0123456789abcdef",
      "--mcp-command",
      "true",
      "--runtime-api-key",
      "sk-live-abc",
    ]);
    assert.equal(inline.status, 1);
    assert.match(inline.stderr, /takes a reference \(env:NAME or file:PATH\), never the key itself/);
    const remote = run(["list", "--organization-id", "org_1", "--tenant-id", "t_1"]);
    assert.equal(remote.status, 1);
    assert.match(
      remote.stderr,
      /accepts exactly one remote scope family: --organization-id, --workspace-id, or --tenant-id/,
    );
    const unknown = run(["status", "ghost"]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /alias ghost is not known; run create or connect first/);
  });
});
