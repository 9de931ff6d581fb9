/**
 * tunnel-client's MCP startup probe behind `/readyz` and `mcp.startup_wait_timeout`, against
 * real loopback servers: the demo MCP server, one that demands auth, and nothing at all.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { probeReadiness, startStartupProbe } from "../../agent/ops/startup-probe.ts";
import { startMcpStub } from "../../agent/demo/mcp-stub.ts";
import { silentLogger } from "../../shared/log.ts";
import { startModernHttp } from "../support/everything.ts";
import { freePort } from "../support/free-port.ts";

const backend = (url: string) => ({ name: "main", transport: "http" as const, url, headers: { "X-Static": "s" } });

async function until(what: string, ok: () => boolean) {
  const deadline = Date.now() + 10_000;
  while (!ok()) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("MCP startup probe", () => {
  test("a server that answers initialize makes /readyz `ready`", async (t) => {
    const stub = await startMcpStub();
    t.after(() => stub.close());
    const probe = startStartupProbe({ backend: backend(stub.url), headers: {}, waitMs: 0, log: silentLogger });
    t.after(() => probe.close());
    assert.deepEqual(probeReadiness(probe.state()), [false, "mcp startup probe pending"]);
    await probe.done;
    assert.deepEqual(probeReadiness(probe.state()), [true, "ready"]);
  });

  test("a 2026-only server refusing the 2025 initialize (-32022, HTTP 400) is ready: the era bridge serves it", async (t) => {
    const server = await startModernHttp(true);
    t.after(() => server.close());
    const probe = startStartupProbe({ backend: backend(server.url), headers: {}, waitMs: 0, log: silentLogger });
    t.after(() => probe.close());
    await probe.done;
    assert.deepEqual(probeReadiness(probe.state()), [true, "ready"]);
  });

  test("401 is ready with the auth note; the static and discovery headers are sent on the probe", async (t) => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      res.writeHead(401, { "WWW-Authenticate": "Bearer" }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    const probe = startStartupProbe({
      backend: backend(url),
      headers: { "X-Static": "s", "X-Discovery-Auth": "d" },
      waitMs: 0,
      log: silentLogger,
    });
    t.after(() => probe.close());
    await probe.done;
    assert.deepEqual(probeReadiness(probe.state()), [true, "ready (mcp initialize requires auth: HTTP 401)"]);
    assert.equal(seen[0]?.["x-discovery-auth"], "d");
    assert.equal(seen[0]?.["x-static"], "s");
  });

  test("nothing listening: `mcp probe failed`, then ready once the server comes up (re-probed in the background)", async (t) => {
    const port = await freePort();
    const probe = startStartupProbe({
      backend: backend(`http://127.0.0.1:${port}/mcp`),
      headers: {},
      waitMs: 0,
      recheckMs: 20,
      log: silentLogger,
    });
    t.after(() => probe.close());
    await probe.done;
    const [ready, text] = probeReadiness(probe.state());
    assert.equal(ready, false);
    assert.match(text, /^mcp probe failed: /);
    const stub = await startMcpStub({ listenAddr: `127.0.0.1:${port}` });
    t.after(() => stub.close());
    await until("the re-probe to see the server", () => probe.state().kind === "ok");
  });

  test("with a startup wait, retries until the wait runs out: `mcp startup wait failed`", async (t) => {
    const port = await freePort();
    const probe = startStartupProbe({
      backend: backend(`http://127.0.0.1:${port}/mcp`),
      headers: {},
      waitMs: 300,
      recheckMs: 60_000,
      log: silentLogger,
    });
    t.after(() => probe.close());
    await probe.done;
    assert.match(
      probeReadiness(probe.state())[1],
      /^mcp startup wait failed: the main MCP server did not answer within 300 ms/,
    );
  });
});
