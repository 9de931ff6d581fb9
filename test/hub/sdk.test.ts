/**
 * A real MCP SDK client through the hub (workerd) to a real server-everything
 * (Streamable HTTP) behind an agent loop using the agent's HTTP backend: the calls,
 * progress streaming, a server→client sampling request answered by the client,
 * cancellation and session termination all make the round trip.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { createHttpBackend } from "../../agent/backends/http.ts";
import type { Backend } from "../../agent/backends/types.ts";
import { silentLogger } from "../../shared/log.ts";
import { startEverythingHttp, type RunningServer } from "../support/everything.ts";
import { CLIENT_TOKEN, serveTunnel, startTestHub, type ServedTunnel, type TestHub } from "../support/hub.ts";

let everything: RunningServer;
let hub: TestHub;
let backend: Backend;
let served: ServedTunnel;
let mcpUrl: URL;

before(async () => {
  [everything, hub] = await Promise.all([
    startEverythingHttp(),
    startTestHub({ tunnels: 1, settings: { livenessMs: 5000 } }),
  ]);
  backend = createHttpBackend({ name: "everything", url: everything.url, log: silentLogger });
  await backend.start();
  const tunnel = hub.tunnel();
  served = serveTunnel(hub.agent(tunnel, { capabilities: ["cancel", "server-requests"] }), backend);
  mcpUrl = hub.mcpUrl(tunnel);
});

after(async () => {
  await served?.stop();
  await backend?.close();
  await hub?.close();
  await everything?.close();
});

async function connect(
  url: URL,
  options: { sampling?: boolean; token?: string } = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client(
    { name: "hub-test", version: "0.0.0" },
    { capabilities: options.sampling ? { sampling: {} } : {} },
  );
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

describe("MCP SDK client through the hub", () => {
  test("initialize and tools/list give the same answers as the server directly", async () => {
    const direct = await connect(new URL(everything.url));
    const tunneled = await connect(mcpUrl, { token: CLIENT_TOKEN });
    try {
      assert.deepEqual(tunneled.client.getServerVersion(), direct.client.getServerVersion());
      assert.deepEqual(tunneled.client.getServerCapabilities(), direct.client.getServerCapabilities());
      assert.deepEqual(await tunneled.client.listTools(), await direct.client.listTools());
      const echo = await tunneled.client.callTool({ name: "echo", arguments: { message: "through the hub" } });
      assert.deepEqual(echo, await direct.client.callTool({ name: "echo", arguments: { message: "through the hub" } }));
    } finally {
      await direct.client.close();
      await tunneled.client.close();
    }
  });

  test("progress notifications stream to the client before the result", async () => {
    const { client } = await connect(mcpUrl, { token: CLIENT_TOKEN });
    try {
      const progress: number[] = [];
      const result = await client.callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
        undefined,
        { onprogress: (p) => progress.push(p.progress) },
      );
      assert.deepEqual(progress, [1, 2, 3]);
      assert.match(JSON.stringify(result), /Long running operation completed/);
    } finally {
      await client.close();
    }
  });

  test("a sampling request from the server reaches the client, and the client's answer reaches the server", async () => {
    const { client } = await connect(mcpUrl, { token: CLIENT_TOKEN, sampling: true });
    try {
      client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
        model: "test-model",
        role: "assistant",
        content: { type: "text", text: `sampled: ${(request.params.messages[0]!.content as { text: string }).text}` },
      }));
      const result = await client.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: "hello", maxTokens: 10 },
      });
      assert.match(JSON.stringify(result), /sampled: .*hello/);
      assert.ok(
        served.seen.some((c) => c.type === "jsonrpc" && c.method === undefined),
        "the client's JSON-RPC response travelled as a command",
      );
    } finally {
      await client.close();
    }
  });

  test("cancelling a call sends notifications/cancelled through the tunnel", async () => {
    const { client } = await connect(mcpUrl, { token: CLIENT_TOKEN });
    try {
      const controller = new AbortController();
      const call = client.callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 5, steps: 50 } },
        undefined,
        { signal: controller.signal, onprogress: () => controller.abort("enough") },
      );
      await assert.rejects(call);
      const deadline = Date.now() + 3000;
      while (!served.seen.some((c) => c.method === "notifications/cancelled") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(served.seen.some((c) => c.method === "notifications/cancelled"));
    } finally {
      await client.close();
    }
  });

  test("terminating the session becomes session_termination and reaches the server", async () => {
    const { client, transport } = await connect(mcpUrl, { token: CLIENT_TOKEN });
    assert.ok(transport.sessionId);
    await transport.terminateSession();
    assert.equal(transport.sessionId, undefined);
    assert.ok(served.seen.some((c) => c.type === "session_termination"));
    await client.close();
  });
});
