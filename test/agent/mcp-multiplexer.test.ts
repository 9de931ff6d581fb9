import { test } from "node:test";
import assert from "node:assert/strict";
import { cancelNotice, McpMultiplexer, noCarrierAnswer } from "../../agent/mcp/multiplexer.ts";

const request = (id: string | number, params?: Record<string, unknown>) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  ...(params ? { params } : {}),
});

test("two origins with equal ids go out under distinct internal ids, and each answer gets its own id and origin back", () => {
  const mux = new McpMultiplexer<string>();
  const a = mux.send(request(1), "client-a", 1);
  const b = mux.send(request(1), "client-b", 1);
  assert.notEqual(a.message.id, b.message.id);
  assert.equal(a.message.method, "tools/call");
  const answerB = mux.answer({ jsonrpc: "2.0", id: b.message.id, result: { from: "b" } });
  assert.equal(answerB?.entry.context, "client-b");
  assert.deepEqual(answerB?.message, { jsonrpc: "2.0", id: 1, result: { from: "b" } });
  assert.equal(mux.answer({ jsonrpc: "2.0", id: 999, result: {} }), undefined, "an id nobody sent answers nobody");
  assert.equal(mux.forget(b.entry.internalId), true);
  assert.equal(
    mux.answer({ jsonrpc: "2.0", id: b.message.id, result: {} }),
    undefined,
    "a forgotten request is not answered twice",
  );
  assert.deepEqual(
    mux.waiting().map((entry) => entry.context),
    ["client-a"],
  );
});

test("the owner's own request has no client id: its answer keeps the internal id and no client can cancel it", () => {
  const mux = new McpMultiplexer<string>();
  const own = mux.send(request("x"), "replay", undefined);
  assert.equal(mux.answer({ jsonrpc: "2.0", id: own.message.id, result: {} })?.message.id, own.entry.internalId);
  assert.deepEqual(
    mux.cancelled({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: own.message.id } }),
    [],
  );
});

test("a progress token goes out as the internal id and comes back as the client's token; a request without one gets no progress", () => {
  const mux = new McpMultiplexer<string>();
  const withToken = mux.send(request(7, { name: "t", _meta: { progressToken: "tok", other: 1 } }), "a", 7);
  const without = mux.send(request(8, { name: "t" }), "b", 8);
  const params = withToken.message.params as { name: string; _meta: Record<string, unknown> };
  assert.deepEqual(params, { name: "t", _meta: { progressToken: withToken.entry.internalId, other: 1 } });
  assert.deepEqual(without.message.params, { name: "t" });
  const back = mux.progress({
    jsonrpc: "2.0",
    method: "notifications/progress",
    params: { progressToken: withToken.entry.internalId, progress: 1 },
  });
  assert.equal(back?.entry.context, "a");
  assert.deepEqual(back?.message.params, { progressToken: "tok", progress: 1 });
  assert.equal(
    mux.progress({
      jsonrpc: "2.0",
      method: "notifications/progress",
      params: { progressToken: without.entry.internalId },
    }),
    undefined,
  );
  assert.equal(
    mux.progress({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: "tok" } }),
    undefined,
    "the client's own token is not an internal one",
  );
});

test('a client\'s cancel reaches each request it names under its internal id; matches narrows it, and 1 is not "1"', () => {
  const mux = new McpMultiplexer<string>();
  const a = mux.send(request(1), "session-a", 1);
  const b = mux.send(request(1), "session-b", 1);
  const text = mux.send(request("1"), "session-a", "1");
  const cancel = { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1, reason: "user" } };
  assert.deepEqual(
    mux.cancelled(cancel).map((routed) => routed.message.params),
    [
      { requestId: a.entry.internalId, reason: "user" },
      { requestId: b.entry.internalId, reason: "user" },
    ],
  );
  const onlyB = mux.cancelled(cancel, (entry) => entry.context === "session-b");
  assert.deepEqual(
    onlyB.map((routed) => routed.entry.internalId),
    [b.entry.internalId],
  );
  assert.deepEqual(
    mux.cancelled({ ...cancel, params: { requestId: "1" } }).map((routed) => routed.entry.internalId),
    [text.entry.internalId],
  );
  assert.deepEqual(
    mux.cancelled({ ...cancel, params: { requestId: a.entry.internalId + 100 } }),
    [],
    "an unknown id is never forwarded unmapped",
  );
  assert.deepEqual(cancelNotice(5, "deadline passed"), {
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: 5, reason: "deadline passed" },
  });
});

test("server requests from two servers with equal ids get distinct aliases; answers and cancels go back to the right server", () => {
  const mux = new McpMultiplexer<string, string>();
  const fromA = mux.aliasServerRequest("a", { jsonrpc: "2.0", id: 3, method: "roots/list" });
  const fromB = mux.aliasServerRequest("b", { jsonrpc: "2.0", id: 3, method: "roots/list" });
  assert.notEqual(fromA.id, fromB.id);
  assert.equal(fromA.method, "roots/list");
  assert.deepEqual(mux.serverAnswer({ jsonrpc: "2.0", id: fromB.id, result: { roots: [] } }), {
    server: "b",
    message: { jsonrpc: "2.0", id: 3, result: { roots: [] } },
  });
  assert.equal(mux.serverAnswer({ jsonrpc: "2.0", id: fromB.id, result: {} }), undefined, "answered once");
  assert.equal(
    mux.serverCancelled("b", { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 3 } }),
    undefined,
    "b's request is already answered",
  );
  assert.equal(
    mux.serverCancelled("a", { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: "3" } }),
    undefined,
    '"3" is not 3',
  );
  assert.deepEqual(
    mux.serverCancelled("a", {
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: 3, reason: "r" },
    })?.params,
    { requestId: fromA.id, reason: "r" },
  );
  assert.equal(
    mux.serverAnswer({ jsonrpc: "2.0", id: fromA.id, result: {} }),
    undefined,
    "a cancelled server request is forgotten",
  );
});

test("only the newest server requests wait; with no carrier a server request is answered with -32603", () => {
  const mux = new McpMultiplexer<string, string>({ maxServerRequests: 2 });
  const first = mux.aliasServerRequest("a", { jsonrpc: "2.0", id: 1, method: "ping" });
  const second = mux.aliasServerRequest("a", { jsonrpc: "2.0", id: 2, method: "ping" });
  const third = mux.aliasServerRequest("a", { jsonrpc: "2.0", id: 3, method: "ping" });
  assert.equal(mux.serverAnswer({ jsonrpc: "2.0", id: first.id, result: {} }), undefined);
  assert.equal(mux.serverAnswer({ jsonrpc: "2.0", id: second.id, result: {} })?.message.id, 2);
  assert.equal(mux.serverAnswer({ jsonrpc: "2.0", id: third.id, result: {} })?.message.id, 3);
  const refusal = noCarrierAnswer("srv-9");
  assert.equal(refusal.id, "srv-9");
  assert.equal((refusal.error as { code: number }).code, -32603);
  assert.match((refusal.error as { message: string }).message, /no MCP client request or stream is open/);
});
