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
import type { ExchangeResult, McpExchange, McpStream, StreamResult } from "../../agent/backends/types.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { silentLogger } from "../../shared/log.ts";
import { aborted, createGate, createTestBackend, type TestBackend } from "../support/test-backend.ts";
import { testClient } from "../support/routing.ts";

const JSON_HEADERS = { "Content-Type": ["application/json"] };

function reply(exchange: McpExchange, result: unknown, status = 200): ExchangeResult {
  return {
    kind: "response",
    status,
    headers: JSON_HEADERS,
    message: { jsonrpc: "2.0", id: exchange.message.id as number, result },
  };
}

/** A backend that initialises, lists one tool and one resource, and hands other requests to `handle`. */
function scripted(
  name: string,
  handle: (exchange: McpExchange) => Promise<ExchangeResult | undefined> = async () => undefined,
): TestBackend {
  const backend = createTestBackend(name);
  backend.onExchange = async (exchange) => {
    const message = exchange.message;
    const custom = await handle(exchange);
    if (custom) return custom;
    if (!("id" in message)) return { kind: "ack", status: 202, headers: {} };
    switch (message.method) {
      case "initialize":
        return {
          ...reply(exchange, {
            protocolVersion: "2025-06-18",
            capabilities: { tools: {}, resources: { subscribe: true } },
            serverInfo: { name, version: "1" },
          }),
          headers: { ...JSON_HEADERS, "Mcp-Session-Id": [`${name}-session`] },
        };
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
      exchange.notify(
        { jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "file:///watched.txt" } },
        {},
      );
      exchange.notify(
        { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 41, reason: "no longer needed" } },
        {},
      );
      exchange.notify(
        { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: "not-ours", progress: 1 } },
        {},
      );
      await release.promise;
      return reply(exchange, { content: [{ type: "resource_link", uri: "file:///watched.txt", name: "w" }] });
    });
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [{ backend: a }, { backend: scripted("b") }],
    });
    const client = testClient(aggregate);
    await client.initialize();
    const call = client.request(
      "tools/call",
      { name: "a__work", arguments: {} },
      {
        onNotify: (message) => {
          if (message.method === "roots/list") serverRequestId = message.id;
          if (message.method === "notifications/cancelled") release.open();
        },
      },
    );
    const { notified, message } = await call;
    assert.deepEqual(
      notified,
      [
        { jsonrpc: "2.0", id: serverRequestId, method: "roots/list" },
        {
          jsonrpc: "2.0",
          method: "notifications/resources/updated",
          params: { uri: "airlock://a/file:///watched.txt" },
        },
        {
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: serverRequestId, reason: "no longer needed" },
        },
      ],
      "the stray progress token was dropped",
    );
    assert.equal(typeof serverRequestId, "string");
    assert.notEqual(serverRequestId, 41);
    assert.deepEqual(message.result, {
      content: [{ type: "resource_link", uri: "airlock://a/file:///watched.txt", name: "w" }],
    });

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
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [{ backend: a }, { backend: scripted("b") }],
    });
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
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [{ backend: a }, { backend: scripted("b") }],
    });
    const client = testClient(aggregate);
    await client.initialize();
    const other = testClient(aggregate);
    await other.initialize();
    assert.deepEqual(await client.notify("notifications/roots/list_changed"), {
      kind: "ack",
      status: 202,
      headers: {},
    });
    assert.deepEqual((await other.request("ping")).notified, [], "not another session's");
    assert.deepEqual((await client.request("ping")).notified, [
      { jsonrpc: "2.0", method: "notifications/tools/list_changed" },
    ]);
    assert.deepEqual((await client.request("ping")).notified, [], "delivered once");
  });
});

describe("the client's standalone stream", () => {
  /** Open the aggregate's stream for `headers`, recording what it carries. */
  function clientStream(aggregate: ReturnType<typeof createAggregateBackend>, headers: Record<string, string[]>) {
    const controller = new AbortController();
    const stream = {
      opened: undefined as unknown,
      messages: [] as JsonRpcMessage[],
      ended: undefined as unknown as Promise<StreamResult>,
      close: () => controller.abort(),
    };
    stream.ended = aggregate.openStream!({
      headers,
      signal: controller.signal,
      opened: (h) => {
        stream.opened = h;
      },
      notify: (m) => {
        stream.messages.push(m);
      },
    });
    return stream;
  }

  test("carries what waited, each backend's own stream (mapped, server requests aliased), and is replaced by a newer one or ended with the session", async () => {
    const memberStreams: McpStream[] = [];
    const a = scripted("a", async (exchange) => {
      if (exchange.message.method !== "notifications/roots/list_changed") return undefined;
      exchange.notify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }, {});
      return { kind: "ack", status: 202, headers: {} };
    });
    a.openStream = async (stream) => {
      memberStreams.push(stream);
      stream.opened({});
      await aborted(stream.signal);
      return { kind: "ended" };
    };
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [{ backend: a }, { backend: scripted("b") }],
    });
    assert.deepEqual(await clientStream(aggregate, { "Mcp-Session-Id": ["nope"] }).ended, {
      kind: "refused",
      status: 404,
      headers: JSON_HEADERS,
      message: { jsonrpc: "2.0", id: null, error: { code: -32001, message: "Session not found" } },
    });
    const client = testClient(aggregate);
    await client.initialize();
    await client.notify("notifications/roots/list_changed");
    const first = clientStream(aggregate, { ...client.headers(), "Last-Event-ID": ["client-side"] });
    assert.deepEqual(first.opened, { "Content-Type": ["text/event-stream"], "Mcp-Session-Id": [client.session] });
    assert.deepEqual(
      first.messages,
      [{ jsonrpc: "2.0", method: "notifications/tools/list_changed" }],
      "the buffered notification first",
    );
    assert.equal(memberStreams.length, 1, "only the backend that has a stream");
    assert.deepEqual(
      memberStreams[0]!.headers,
      { "Mcp-Session-Id": ["a-session"], "Mcp-Protocol-Version": ["2025-06-18"] },
      "the backend's own session; the client's Last-Event-ID stays",
    );

    memberStreams[0]!.notify({
      jsonrpc: "2.0",
      method: "notifications/resources/updated",
      params: { uri: "file:///x" },
    });
    memberStreams[0]!.notify({ jsonrpc: "2.0", id: 3, method: "roots/list" });
    const [updated, request] = first.messages.slice(1) as JsonRpcMessage[];
    assert.deepEqual(updated, {
      jsonrpc: "2.0",
      method: "notifications/resources/updated",
      params: { uri: "airlock://a/file:///x" },
    });
    assert.equal(request?.method, "roots/list");
    assert.notEqual(request?.id, 3);
    await client.respond(request!.id, { roots: [] });
    assert.deepEqual(
      a.exchanges.at(-1)!.message,
      { jsonrpc: "2.0", id: 3, result: { roots: [] } },
      "the answer reaches the backend under its own id",
    );

    const second = clientStream(aggregate, client.headers());
    assert.deepEqual(await first.ended, { kind: "ended" }, "one stream per session: the newer replaces the older");
    assert.equal(memberStreams[0]!.signal.aborted, true);
    assert.equal(memberStreams.length, 2);
    await aggregate.terminateSession(client.headers(), new AbortController().signal);
    assert.deepEqual(await second.ended, { kind: "ended" }, "the session's end ends its stream");
    assert.equal(memberStreams[1]!.signal.aborted, true);
  });
});

describe("answers the client gets", () => {
  test("backend HTTP statuses do not leak: a 401 JSON-RPC error reaches the client as a 200 answer under its id", async () => {
    const a = scripted("a", async (exchange) =>
      exchange.message.method === "tools/call"
        ? {
            kind: "response",
            status: 401,
            headers: { ...JSON_HEADERS, "WWW-Authenticate": ["Bearer"] },
            message: {
              jsonrpc: "2.0",
              id: exchange.message.id as number,
              error: { code: -32001, message: "needs a token" },
            },
          }
        : undefined,
    );
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [{ backend: a }, { backend: scripted("b") }],
    });
    const client = testClient(aggregate);
    await client.initialize();
    const { result } = await client.request("tools/call", { name: "a__work", arguments: {} }, { id: "mine" });
    assert.deepEqual(result, {
      kind: "response",
      status: 200,
      headers: JSON_HEADERS,
      message: { jsonrpc: "2.0", id: "mine", error: { code: -32001, message: "needs a token" } },
    });
  });

  test("the client's session id, protocol version and Authorization stay with the aggregate; each backend gets its own", async () => {
    const a = scripted("a");
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [{ backend: a }, { backend: scripted("b") }],
    });
    const client = testClient(aggregate);
    await client.initialize();
    const headers = {
      ...client.headers(),
      "Mcp-Protocol-Version": ["2025-06-18"],
      Authorization: ["Bearer client-secret"],
      "X-Trace": ["t-1"],
    };
    await aggregate.exchange({
      message: { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "a__work" } },
      headers,
      signal: new AbortController().signal,
      notify: () => {},
    });
    const sent = a.exchanges.at(-1)!;
    assert.deepEqual(sent.headers, {
      "X-Trace": ["t-1"],
      "Mcp-Session-Id": ["a-session"],
      "Mcp-Protocol-Version": ["2025-06-18"],
    });
    assert.deepEqual(sent.message.params, { name: "work" });
    assert.notEqual(sent.message.id, 5, "backends see the aggregate's own ids");
  });

  test("a cursor that is not the aggregate's is refused with -32602", async () => {
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [{ backend: scripted("a") }, { backend: scripted("b") }],
    });
    const client = testClient(aggregate);
    await client.initialize();
    const { message } = await client.request("tools/list", { cursor: "bm90LW91cnM" });
    assert.equal((message.error as { code: number }).code, -32602);
  });
});
