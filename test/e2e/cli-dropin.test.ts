/**
 * tunnel-client's remaining commands as an operator runs them, each `airlock` a real child
 * process: `dev proxy` (a local control plane and agent giving an MCP URL an SDK client uses),
 * `cloudflared version` / `cloudflared config`.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { airlockCommand, REPO } from "../support/agent-process.ts";
import { startMcpStub } from "../../agent/demo/mcp-stub.ts";

function airlock(args: string[], env: Record<string, string> = {}) {
  const [cmd, ...argv] = airlockCommand("node", args);
  return spawnSync(cmd!, argv, { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 });
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
