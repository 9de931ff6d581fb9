/**
 * Behind an egress proxy: `control_plane.http_proxy` (tunnel-client's
 * `--control-plane.http-proxy`) carries every control-plane call, under each runtime.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { startAgentProcess, type RuntimeName } from "../support/agent-process.ts";
import { startForwardProxy, type ForwardProxy } from "../support/forward-proxy.ts";

for (const runtime of ["node", "deno", "bun"] as RuntimeName[]) {
  describe(`control plane through a proxy (${runtime})`, () => {
    let cp: FakeControlPlane;
    let proxy: ForwardProxy;
    before(async () => {
      [cp, proxy] = await Promise.all([
        startFakeControlPlane({ apiKey: "sk-proxy-e2e-0123456789" }),
        startForwardProxy(),
      ]);
    });
    after(async () => {
      await Promise.all([cp?.close(), proxy?.close()]);
    });

    test("polls and responses travel through the proxy", async () => {
      const agent = await startAgentProcess(
        runtime,
        [
          "--control-plane.base-url",
          cp.baseUrl,
          "--control-plane.tunnel-id",
          cp.tunnelId,
          "--control-plane.api-key",
          "env:KEY",
          "--control-plane.http-proxy",
          proxy.url,
          "--control-plane.poll-timeout",
          "1s",
          "--mcp.command",
          "true",
        ],
        { KEY: "sk-proxy-e2e-0123456789" },
      );
      try {
        const [ping] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" } });
        await cp.waitForFinal(ping!.request_id, 15_000);
        const host = new URL(cp.baseUrl).host;
        assert.ok(
          proxy.seen.some((line) => line === `CONNECT ${host}` || line.includes(`//${host}/`)),
          `the proxy carried the control-plane calls: ${proxy.seen.join("; ")}`,
        );
      } finally {
        await agent.stop();
      }
    });
  });
}
