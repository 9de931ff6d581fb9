/**
 * Harpoon's `http-streamable` additional transport: the MCP SDK client talks to
 * `/harpoon/mcp` on a real listener (the agent's serving seam, so Node, Deno and Bun each
 * serve it their own way) and calls a loopback target through it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Hono } from "hono";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createHarpoonBackend } from "../../agent/backends/harpoon.ts";
import { createHarpoonHttpApp, HARPOON_HTTP_PATH } from "../../agent/harpoon/http-transport.ts";
import { serve, type ServedApp } from "../../agent/runtime/serve.ts";
import { silentLogger } from "../../shared/log.ts";

describe("Harpoon over http-streamable at /harpoon/mcp", () => {
  let target: http.Server;
  let served: ServedApp;
  let harpoon: ReturnType<typeof createHarpoonBackend>;

  before(async () => {
    target = http.createServer((_req, res) => {
      res.setHeader("Content-Type", "text/plain");
      res.end("pong");
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    harpoon = createHarpoonBackend({
      targets: [{ label: "ping", url: `http://127.0.0.1:${(target.address() as AddressInfo).port}/ping` }],
      allowPlaintextHttp: true,
      maxResponseBytes: 102_400,
      maxRedirects: 5,
      log: silentLogger,
    });
    const ops = new Hono();
    ops.route(HARPOON_HTTP_PATH, createHarpoonHttpApp(harpoon, { allowRemote: false, allowedHosts: [] }));
    served = await serve(ops.fetch, { hostname: "127.0.0.1", port: 0 });
  });
  after(async () => {
    await harpoon.close();
    await served.close();
    target.closeAllConnections();
    await new Promise((resolve) => target.close(resolve));
  });

  test("the SDK client initializes, lists the tools and calls a target", async () => {
    const client = new Client({ name: "harpoon-http-test", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${served.url}${HARPOON_HTTP_PATH}`)));
    try {
      assert.equal(client.getServerVersion()?.name, "harpoon");
      const { tools } = await client.listTools();
      assert.deepEqual(
        tools.map((tool) => tool.name),
        ["list_targets", "call_target", "get_oauth_target_audience"],
      );
      const result = await client.callTool({ name: "call_target", arguments: { label: "ping", method: "GET" } });
      const structured = result.structuredContent as { status_code: number; body_base64: string };
      assert.equal(structured.status_code, 200);
      assert.equal(Buffer.from(structured.body_base64, "base64").toString("utf8"), "pong");
    } finally {
      await client.close();
    }
  });

  test("GET and DELETE are 405 (sessionless); a non-JSON body is a parse error", async () => {
    const url = `${served.url}${HARPOON_HTTP_PATH}`;
    for (const method of ["GET", "DELETE"]) {
      const response = await fetch(url, { method });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "POST");
      await response.body?.cancel();
    }
    const bad = await fetch(url, { method: "POST", body: "{", headers: { "Content-Type": "application/json" } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: number } }).error.code, -32700);
  });

  test("a client that is not on loopback is refused unless admin_ui.allow_remote", async () => {
    const ping = { jsonrpc: "2.0", id: 1, method: "ping" };
    const init = { method: "POST", body: JSON.stringify(ping), headers: { "Content-Type": "application/json" } };
    const remote = () => "10.1.2.3";
    const closed = createHarpoonHttpApp(harpoon, { allowRemote: false, allowedHosts: [], remoteAddress: remote });
    const refused = await closed.request("/", init);
    assert.equal(refused.status, 403);
    assert.match(
      await refused.text(),
      /only on loopback: this request came from 10\.1\.2\.3, not from this host.*admin_ui\.allow_remote/,
    );
    const open = createHarpoonHttpApp(harpoon, {
      allowRemote: true,
      allowedHosts: ["agent.internal"],
      remoteAddress: remote,
    });
    const answered = await open.request("/", { ...init, headers: { ...init.headers, Host: "agent.internal:8080" } });
    assert.equal(answered.status, 200);
    assert.deepEqual(await answered.json(), { jsonrpc: "2.0", id: 1, result: {} });
    // Widening the peer keeps the Host check (attack: DNS rebinding with --allow-remote-ui).
    const rebound = await open.request("/", { ...init, headers: { ...init.headers, Host: "attacker.example:8080" } });
    assert.equal(rebound.status, 403);
  });

  test("from loopback, a web page cannot drive it: foreign Host (DNS rebinding), foreign Origin, or a non-JSON body are refused", async () => {
    const local = createHarpoonHttpApp(harpoon, {
      allowRemote: false,
      allowedHosts: [],
      remoteAddress: () => "127.0.0.1",
    });
    const ping = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" });
    const post = (headers: Record<string, string>) =>
      local.request("http://127.0.0.1:8080/", {
        method: "POST",
        body: ping,
        headers: { "Content-Type": "application/json", Host: "127.0.0.1:8080", ...headers },
      });
    const rebound = await post({ Host: "attacker.example:8080" });
    assert.equal(rebound.status, 403);
    assert.match(
      ((await rebound.json()) as { error: { message: string } }).error.message,
      /host "attacker\.example:8080"/,
    );
    const crossSite = await post({ Origin: "https://attacker.example" });
    assert.equal(crossSite.status, 403);
    assert.match(
      ((await crossSite.json()) as { error: { message: string } }).error.message,
      /web page from https:\/\/attacker\.example/,
    );
    const plain = await post({ "Content-Type": "text/plain" });
    assert.equal(plain.status, 415);
    assert.equal((await post({ Origin: "http://127.0.0.1:8080" })).status, 200, "the operator's own page may");
    assert.equal((await post({})).status, 200, "a non-browser client sends no Origin");
  });
});
