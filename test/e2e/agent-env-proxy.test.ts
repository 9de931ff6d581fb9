/**
 * The standard proxy variables, as tunnel-client honours them (Go's ProxyFromEnvironment):
 * with `HTTP_PROXY` set and no explicit proxy, the control plane and the MCP server are reached
 * through the proxy under Node, Deno and Bun; `NO_PROXY` exempts a host. The hosts are names
 * only the proxy can resolve (it maps every name to loopback), so a direct attempt fails and a
 * success proves the proxy carried the call.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { startEverythingHttp, type RunningServer } from "../support/everything.ts";
import { startAgentProcess, type RuntimeName } from "../support/agent-process.ts";
import { startForwardProxy, type ForwardProxy } from "../support/forward-proxy.ts";

const KEY = "sk-env-proxy-e2e-0123456789";

function viaName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.hostname = name;
  return parsed.href.replace(/\/$/, "");
}

for (const runtime of ["node", "deno", "bun"] as RuntimeName[]) {
  describe(`HTTP_PROXY / NO_PROXY from the environment (${runtime})`, { concurrency: false }, () => {
    let cp: FakeControlPlane;
    let mcp: RunningServer;
    let proxy: ForwardProxy;
    before(async () => {
      [cp, mcp, proxy] = await Promise.all([
        startFakeControlPlane({ apiKey: KEY }),
        startEverythingHttp(),
        startForwardProxy(),
      ]);
    });
    after(async () => {
      await Promise.all([cp?.close(), mcp?.close(), proxy?.close()]);
    });

    test("the control plane and the MCP server are reached through HTTP_PROXY", async () => {
      const agent = await startAgentProcess(
        runtime,
        [
          "--control-plane.base-url",
          viaName(cp.baseUrl, "control-plane.airlock.test"),
          "--control-plane.tunnel-id",
          cp.tunnelId,
          "--control-plane.api-key",
          "env:KEY",
          "--control-plane.poll-timeout",
          "1s",
          "--mcp.server-url",
          viaName(mcp.url, "mcp.airlock.test"),
        ],
        { KEY, HTTP_PROXY: proxy.url, http_proxy: proxy.url, NO_PROXY: "", no_proxy: "" },
      );
      try {
        const [list] = cp.enqueue({
          jsonrpc: {
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } },
          },
        });
        const answer = await cp.waitForFinal(list!.request_id, 20_000);
        assert.equal(answer.payload.resp_code, 200, JSON.stringify(answer.payload));
        assert.ok(
          proxy.seen.some((line) => line.includes("control-plane.airlock.test")),
          `control plane via the proxy: ${proxy.seen.join("; ")}`,
        );
        assert.ok(
          proxy.seen.some((line) => line.includes("mcp.airlock.test")),
          `MCP server via the proxy: ${proxy.seen.join("; ")}`,
        );
      } finally {
        await agent.stop();
      }
    });

    test("NO_PROXY exempts a host: it is dialled directly (and here cannot be resolved)", async () => {
      const before = proxy.seen.length;
      const agent = await startAgentProcess(
        runtime,
        [
          "--control-plane.base-url",
          viaName(cp.baseUrl, "control-plane.airlock.test"),
          "--control-plane.tunnel-id",
          cp.tunnelId,
          "--control-plane.api-key",
          "env:KEY",
          "--control-plane.poll-timeout",
          "1s",
          "--mcp.command",
          "true",
        ],
        {
          KEY,
          HTTP_PROXY: proxy.url,
          http_proxy: proxy.url,
          NO_PROXY: "control-plane.airlock.test",
          no_proxy: "control-plane.airlock.test",
        },
      );
      try {
        const deadline = Date.now() + 20_000;
        while (!agent.logs().some((record) => record.msg === "poll failed; backing off")) {
          assert.ok(Date.now() < deadline, `no failed poll logged:\n${agent.stderr()}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.deepEqual(
          proxy.seen.slice(before).filter((line) => line.includes("control-plane.airlock.test")),
          [],
        );
      } finally {
        await agent.stop();
      }
    });
  });
}
