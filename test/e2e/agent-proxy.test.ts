/**
 * Behind an egress proxy: `control_plane.http_proxy` (tunnel-client's
 * `--control-plane.http-proxy`) carries every control-plane call, under each runtime.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, request, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { startAgentProcess, type RuntimeName } from "../support/agent-process.ts";

/** A forward proxy on loopback that speaks CONNECT and absolute-form, and records what it carried. */
async function startProxy(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    // Absolute-form (`GET http://host:port/path`): forward it as is.
    const target = new URL(req.url ?? "");
    seen.push(`${req.method} ${target.host}`);
    const upstream = request(target, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connect", (req, socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? "").split(":");
    if (host !== "127.0.0.1") return socket.destroy();
    const upstream = connect(Number(port), host, () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

for (const runtime of ["node", "deno", "bun"] as RuntimeName[]) {
  describe(`control plane through a proxy (${runtime})`, () => {
    let cp: FakeControlPlane;
    let proxy: Awaited<ReturnType<typeof startProxy>>;
    before(async () => {
      [cp, proxy] = await Promise.all([startFakeControlPlane({ apiKey: "sk-proxy-e2e-0123456789" }), startProxy()]);
    });
    after(async () => {
      await Promise.all([cp?.close(), proxy?.close()]);
    });

    test("polls and responses travel through the proxy", async () => {
      const agent = await startAgentProcess(runtime, [
        "--control-plane.base-url", cp.baseUrl, "--control-plane.tunnel-id", cp.tunnelId, "--control-plane.api-key", "env:KEY",
        "--control-plane.http-proxy", proxy.url, "--control-plane.poll-timeout", "1s", "--mcp.command", "true",
      ], { KEY: "sk-proxy-e2e-0123456789" });
      try {
        const [ping] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" } });
        await cp.waitForFinal(ping!.request_id, 15_000);
        const host = new URL(cp.baseUrl).host;
        assert.ok(proxy.seen.some((line) => line.endsWith(host)), `the proxy carried the control-plane calls: ${proxy.seen.join("; ")}`);
      } finally {
        await agent.stop();
      }
    });
  });
}
