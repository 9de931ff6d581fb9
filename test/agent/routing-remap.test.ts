/**
 * The aggregate's translation of messages a backend sends on its own initiative — the
 * cases real servers produce only by timing (resource updates, a server cancelling its own
 * request, a request with no client call to carry it, a notification while only a client
 * notification is in flight). Scripted in-process backends make each one happen on cue;
 * the servers themselves are not the point here.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAggregateBackend } from "../../agent/routing/aggregate.ts";
import type { ExchangeResult, McpExchange } from "../../agent/backends/types.ts";
import { silentLogger } from "../../shared/log.ts";
import { createGate, createTestBackend, type TestBackend } from "../support/test-backend.ts";
import { testClient } from "../support/routing.ts";

const JSON_HEADERS = { "Content-Type": ["application/json"] };

function reply(exchange: McpExchange, result: unknown, status = 200): ExchangeResult {
  return { kind: "response", status, headers: JSON_HEADERS, message: { jsonrpc: "2.0", id: exchange.message.id as number, result } };
}

/** A backend that initialises, lists one tool and one resource, and hands other requests to `handle`. */
function scripted(name: string, handle: (exchange: McpExchange) => Promise<ExchangeResult | undefined> = async () => undefined): TestBackend {
  const backend = createTestBackend(name);
  backend.onExchange = async (exchange) => {
    const message = exchange.message;
    const custom = await handle(exchange);
    if (custom) return custom;
    if (!("id" in message)) return { kind: "ack", status: 202, headers: {} };
    switch (message.method) {
      case "initialize":
        return { ...reply(exchange, { protocolVersion: "2025-06-18", capabilities: { tools: {}, resources: { subscribe: true } }, serverInfo: { name, version: "1" } }), headers: { ...JSON_HEADERS, "Mcp-Session-Id": [`${name}-session`] } };
      case "tools/list":
        return reply(exchange, { tools: [{ name: "work", inputSchema: { type: "object" } }] });
      default:
        return reply(exchange, { handled: message.method, params: message.params });
    }
  };
  return backend;
}

describe("messages backends send on their own", () => {
  test("a resource update carries the mapped URI; a backend cancelling its own request reaches the client under the alias", async () => {
    const release = createGate();
    let serverRequestId: unknown;
    const a = scripted("a", async (exchange) => {
      if (exchange.message.method !== "tools/call") return undefined;
      exchange.notify({ jsonrpc: "2.0", id: 41, method: "roots/list" }, {});
      exchange.notify({ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "file:///watched.txt" } }, {});
      exchange.notify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 41, reason: "no longer needed" } }, {});
      exchange.notify({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: "not-ours", progress: 1 } }, {});
      await release.promise;
      return reply(exchange, { content: [{ type: "resource_link", uri: "file:///watched.txt", name: "w" }] });
    });
    const aggregate = createAggregateBackend({ channel: "main", log: silentLogger, members: [{ backend: a }, { backend: scripted("b") }] });
    const client = testClient(aggregate);
    await client.initialize();
    const call = client.request("tools/call", { name: "a__work", arguments: {} }, {
      onNotify: (message) => {
        if (message.method === "roots/list") serverRequestId = message.id;
        if (message.method === "notifications/cancelled") release.open();
      },
    });
    const { notified, message } = await call;
    assert.deepEqual(notified, [
      { jsonrpc: "2.0", id: serverRequestId, method: "roots/list" },
      { jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "airlock://a/file:///watched.txt" } },
      { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: serverRequestId, reason: "no longer needed" } },
    ], "the stray progress token was dropped");
    assert.equal(typeof serverRequestId, "string");
    assert.notEqual(serverRequestId, 41);
    assert.deepEqual(message.result, { content: [{ type: "resource_link", uri: "airlock://a/file:///watched.txt", name: "w" }] });

    // The cancelled request is forgotten: a late answer goes nowhere.
    const before = a.exchanges.length;
    assert.deepEqual(await client.respond(serverRequestId, { roots: [] }), { kind: "ack", status: 202, headers: {} });
    assert.equal(a.exchanges.length, before);
  });

  test("a server request with no client call to carry it is answered with an error at once", async () => {
    const a = scripted("a", async (exchange) => {
      if (exchange.message.method !== "notifications/initialized") return undefined;
      exchange.notify({ jsonrpc: "2.0", id: 7, method: "sampling/createMessage", params: {} }, {});
      return { kind: "ack", status: 202, headers: {} };
    });
    const aggregate = createAggregateBackend({ channel: "main", log: silentLogger, members: [{ backend: a }, { backend: scripted("b") }] });
    await testClient(aggregate).initialize();
    await new Promise((resolve) => setImmediate(resolve));
    const answer = a.exchanges.find((e) => e.message.id === 7 && "error" in e.message);
    assert.ok(answer, "the backend got an error answer for its request");
    assert.equal((answer.message.error as { code: number }).code, -32603);
    assert.deepEqual(answer.headers["Mcp-Session-Id"], ["a-session"], "sent within the backend's session");
  });

  test("a list_changed that arrives while only a notification is in flight waits for the session's next request", async () => {
    const a = scripted("a", async (exchange) => {
      if (exchange.message.method !== "notifications/roots/list_changed") return undefined;
      exchange.notify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }, {});
      return { kind: "ack", status: 202, headers: {} };
    });
    const aggregate = createAggregateBackend({ channel: "main", log: silentLogger, members: [{ backend: a }, { backend: scripted("b") }] });
    const client = testClient(aggregate);
    await client.initialize();
    const other = testClient(aggregate);
    await other.initialize();
    assert.deepEqual(await client.notify("notifications/roots/list_changed"), { kind: "ack", status: 202, headers: {} });
    assert.deepEqual((await other.request("ping")).notified, [], "not another session's");
    assert.deepEqual((await client.request("ping")).notified, [{ jsonrpc: "2.0", method: "notifications/tools/list_changed" }]);
    assert.deepEqual((await client.request("ping")).notified, [], "delivered once");
  });
});

describe("answers the client gets", () => {
  test("backend HTTP statuses do not leak: a 401 JSON-RPC error reaches the client as a 200 answer under its id", async () => {
    const a = scripted("a", async (exchange) => exchange.message.method === "tools/call"
      ? { kind: "response", status: 401, headers: { ...JSON_HEADERS, "WWW-Authenticate": ["Bearer"] }, message: { jsonrpc: "2.0", id: exchange.message.id as number, error: { code: -32001, message: "needs a token" } } }
      : undefined);
    const aggregate = createAggregateBackend({ channel: "main", log: silentLogger, members: [{ backend: a }, { backend: scripted("b") }] });
    const client = testClient(aggregate);
    await client.initialize();
    const { result } = await client.request("tools/call", { name: "a__work", arguments: {} }, { id: "mine" });
    assert.deepEqual(result, { kind: "response", status: 200, headers: JSON_HEADERS, message: { jsonrpc: "2.0", id: "mine", error: { code: -32001, message: "needs a token" } } });
  });

  test("the client's session id, protocol version and Authorization stay with the aggregate; each backend gets its own", async () => {
    const a = scripted("a");
    const aggregate = createAggregateBackend({ channel: "main", log: silentLogger, members: [{ backend: a }, { backend: scripted("b") }] });
    const client = testClient(aggregate);
    await client.initialize();
    const headers = { ...client.headers(), "Mcp-Protocol-Version": ["2025-06-18"], Authorization: ["Bearer client-secret"], "X-Trace": ["t-1"] };
    await aggregate.exchange({ message: { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "a__work" } }, headers, signal: new AbortController().signal, notify: () => {} });
    const sent = a.exchanges.at(-1)!;
    assert.deepEqual(sent.headers, { "X-Trace": ["t-1"], "Mcp-Session-Id": ["a-session"], "Mcp-Protocol-Version": ["2025-06-18"] });
    assert.deepEqual(sent.message.params, { name: "work" });
    assert.notEqual(sent.message.id, 5, "backends see the aggregate's own ids");
  });

  test("a cursor that is not the aggregate's is refused with -32602", async () => {
    const aggregate = createAggregateBackend({ channel: "main", log: silentLogger, members: [{ backend: scripted("a") }, { backend: scripted("b") }] });
    const client = testClient(aggregate);
    await client.initialize();
    const { message } = await client.request("tools/list", { cursor: "bm90LW91cnM" });
    assert.equal((message.error as { code: number }).code, -32602);
  });
});
