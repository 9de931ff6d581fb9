/**
 * tunnel-client's proxy health check: TCP to the proxy, then CONNECT to the route's target,
 * reported as `proxy_*` metrics labelled by proxy_id (sha256 of scheme://host:port).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer } from "node:net";
import { Registry } from "prom-client";
import { effectiveProxy, proxyId, startProxyChecker } from "../../agent/ops/proxy-check.ts";
import { startForwardProxy } from "../support/forward-proxy.ts";
import { silentLogger } from "../../shared/log.ts";
import { freePort } from "../support/free-port.ts";

describe("proxy check", () => {
  test("a working proxy is healthy; a dead one is unhealthy with a tcp dial_error; both under tunnel-client's names", async (t) => {
    const proxy = await startForwardProxy();
    t.after(() => proxy.close());
    const dead = `http://127.0.0.1:${await freePort()}`;
    // The target the proxy tunnels to must accept the connection for CONNECT to succeed.
    const target = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    t.after(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const targetPort = (target.address() as { port: number }).port;
    const registry = new Registry();
    const checker = await startProxyChecker({
      routes: [
        { name: "control_plane", target: `http://cp.example.test:${targetPort}`, proxy: proxy.url },
        { name: "mcp main", target: "https://mcp.example.test", proxy: dead },
      ],
      env: {},
      intervalMs: 3_600_000,
      registry,
      log: silentLogger,
      now: () => 1_767_225_600_000,
    });
    t.after(() => checker.stop());
    await checker.checkAll();
    const good = createHash("sha256").update(new URL(proxy.url).origin).digest("hex");
    const bad = createHash("sha256").update(dead).digest("hex");
    assert.equal(await proxyId(proxy.url), good);
    const text = await registry.metrics();
    for (const line of [
      `proxy_health_state{proxy_id="${good}"} 1`,
      `proxy_health_state{proxy_id="${bad}"} 0`,
      `proxy_last_check_timestamp{proxy_id="${good}"} 1767225600`,
      `proxy_last_success_timestamp{proxy_id="${good}"} 1767225600`,
      `proxy_check_failures_total{proxy_id="${bad}",phase="tcp",reason="dial_error"}`,
      `proxy_check_phase_duration_seconds_count{proxy_id="${good}",phase="connect"}`,
    ])
      assert.ok(text.includes(line), `missing ${line}\n${text}`);
    assert.ok(!text.includes(`proxy_last_success_timestamp{proxy_id="${bad}"}`));
    assert.ok(proxy.seen.includes(`CONNECT cp.example.test:${targetPort}`), proxy.seen.join("; "));
  });

  test("without an explicit proxy the standard variables apply, NO_PROXY exempting hosts", () => {
    const env = {
      HTTPS_PROXY: "http://secure:3128",
      HTTP_PROXY: "http://plain:3128",
      NO_PROXY: "internal.example,.corp",
    };
    assert.equal(effectiveProxy({ name: "a", target: "https://api.openai.com" }, env), "http://secure:3128");
    assert.equal(effectiveProxy({ name: "a", target: "http://mcp.example:3000" }, env), "http://plain:3128");
    assert.equal(effectiveProxy({ name: "a", target: "https://internal.example/mcp" }, env), undefined);
    assert.equal(effectiveProxy({ name: "a", target: "https://x.corp/mcp" }, env), undefined);
    assert.equal(
      effectiveProxy({ name: "a", target: "https://x.corp/mcp", proxy: "http://explicit:1" }, env),
      "http://explicit:1",
    );
    assert.equal(effectiveProxy({ name: "a", target: "https://api.openai.com" }, {}), undefined);
  });
});
