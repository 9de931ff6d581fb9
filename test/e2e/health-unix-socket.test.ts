/**
 * `health.unix_socket` as tunnel-client serves it: a real agent process replaces a stale
 * socket file, answers `/healthz`, `/readyz` and `/metrics` on the socket, publishes
 * `http+unix://…` in its url file (which `airlock health --url-file` follows), and removes the
 * socket on exit; a path that is not a socket is a start error.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { airlockCommand, REPO } from "../support/agent-process.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import { eventually } from "../support/manual-clock.ts";
import { startMcpStub } from "../../agent/demo/mcp-stub.ts";
import { unixBaseUrl } from "../../agent/runtime/serve.ts";

const KEY = "sk-unix-socket-0123456789";

/** GET `path` over the Unix socket. */
function getOverSocket(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET", headers: { Host: "localhost" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A socket file nobody listens on: a process binds it and is killed before it can unlink it. */
function staleSocket(path: string): void {
  const script = `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`;
  spawnSync(process.execPath, ["-e", script]);
  assert.ok(lstatSync(path).isSocket(), "the stale socket is there before the agent starts");
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

describe("health.unix_socket", () => {
  test("serves the operator surface on the socket, replacing a stale one, and removes it on exit", async (t) => {
    const cp = await startFakeControlPlane({ apiKey: KEY });
    t.after(() => cp.close());
    const stub = await startMcpStub();
    t.after(() => stub.close());
    const dir = mkdtempSync(join(tmpdir(), "airlock-unix-"));
    const socket = join(dir, "run", "health.sock");
    const urlFile = join(dir, "health.url");
    mkdirSync(join(dir, "run"));
    staleSocket(socket);

    const [cmd, ...argv] = airlockCommand("node", [
      "run",
      "--health.unix-socket",
      socket,
      "--health.url-file",
      urlFile,
      "--mcp.server-url",
      stub.url,
      "--log.format",
      "json",
    ]);
    const child = spawn(cmd!, argv, {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        CONTROL_PLANE_API_KEY: KEY,
        CONTROL_PLANE_TUNNEL_ID: cp.tunnelId,
        CONTROL_PLANE_BASE_URL: cp.baseUrl,
      },
    });
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    t.after(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });

    const published = await eventually(
      () => (existsSync(urlFile) ? readFileSync(urlFile, "utf8").trim() : undefined),
      20_000,
      `the url file: ${out}`,
    );
    assert.equal(published, unixBaseUrl(socket), "tunnel-client's http+unix://<base64url(path)>");
    assert.ok(lstatSync(socket).isSocket());
    assert.deepEqual(await getOverSocket(socket, "/healthz"), { status: 200, body: "live" });
    // Readiness follows the MCP startup probe; bounded so a hang names what did not happen.
    let ready = await getOverSocket(socket, "/readyz");
    for (const until = Date.now() + 20_000; ready.status !== 200; ready = await getOverSocket(socket, "/readyz")) {
      assert.ok(Date.now() < until, `/readyz over the socket stayed ${ready.status} ${ready.body}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.match(ready.body, /^ready/);
    assert.match((await getOverSocket(socket, "/metrics")).body, /^readiness 1$/m);
    assert.match(out, /"msg":"health server listening".*"addr":"[^"]*health\.sock"/);

    const [hc, ...hargs] = airlockCommand("node", ["health", "--url-file", urlFile, "--json"]);
    const health = spawnSync(hc!, hargs, { cwd: REPO, encoding: "utf8", timeout: 30_000 });
    assert.equal(health.status, 0, health.stdout + health.stderr);
    const report = JSON.parse(health.stdout) as { result: string; healthz: { body: string } };
    assert.deepEqual([report.result, report.healthz.body], ["ok", "live"]);

    child.kill("SIGTERM");
    assert.equal(await exited(child), 0, out);
    assert.equal(existsSync(socket), false, "the socket is removed on exit");
    assert.equal(existsSync(urlFile), false, "and so is the url file");
  });

  test("a path that is not a socket is a start error naming it (exit 1)", () => {
    const dir = mkdtempSync(join(tmpdir(), "airlock-unix-"));
    const notSocket = join(dir, "plain-file");
    writeFileSync(notSocket, "keep me\n");
    const [cmd, ...argv] = airlockCommand("node", [
      "run",
      "--health.unix-socket",
      notSocket,
      "--mcp.server-url",
      "http://127.0.0.1:9/mcp",
    ]);
    const result = spawnSync(cmd!, argv, {
      cwd: REPO,
      encoding: "utf8",
      timeout: 30_000,
      env: {
        ...process.env,
        CONTROL_PLANE_API_KEY: KEY,
        CONTROL_PLANE_TUNNEL_ID: "tunnel_0123456789abcdef0123456789abcdef",
        CONTROL_PLANE_BASE_URL: "http://127.0.0.1:9",
      },
    });
    assert.equal(result.status, 1, result.stdout + result.stderr);
    assert.match(result.stdout + result.stderr, /plain-file exists and is not a unix socket/);
    assert.equal(readFileSync(notSocket, "utf8"), "keep me\n", "the file is left alone");
  });
});
