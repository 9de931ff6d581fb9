import { test } from "node:test";
import assert from "node:assert/strict";
import { clientTraceContext, parseTraceparent, withTraceHeaders, withTraceMeta } from "../../shared/telemetry/index.ts";
import { callAttributes } from "../../shared/telemetry/index.ts";

const PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

test("traceparent is parsed as the W3C spec says a receiver must", () => {
  assert.deepEqual(parseTraceparent(PARENT), {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    sampled: true,
  });
  assert.equal(parseTraceparent(PARENT.replace(/-01$/, "-00"))?.sampled, false);
  for (const bad of [
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", // version ff
    "00-00000000000000000000000000000000-b7ad6b7169203331-01", // zero trace id
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", // zero span id
    `${PARENT}-extra`, // version 00 has four fields
    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", // upper case
    "garbage",
  ])
    assert.equal(parseTraceparent(bad), undefined, bad);
  // A later version may append fields.
  assert.ok(parseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future"));
});

test("the client's context comes from its headers first, else from params._meta; invalid ones are ignored", () => {
  const meta = {
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name: "x", _meta: { traceparent: PARENT, tracestate: "a=b" } },
  };
  assert.deepEqual(clientTraceContext({}, meta), { traceparent: PARENT, tracestate: "a=b" });
  const header = PARENT.replace("b7ad", "c7ad");
  assert.deepEqual(clientTraceContext({ TraceParent: [header] }, meta), { traceparent: header });
  assert.equal(clientTraceContext({ traceparent: ["nope"] }, { jsonrpc: "2.0", id: 1, method: "ping" }), undefined);
});

test("headers get the new context whatever the old spelling; _meta only when the client set none", () => {
  assert.deepEqual(
    withTraceHeaders({ TraceParent: ["old"], TraceState: ["x=y"], Accept: ["*/*"] }, { traceparent: PARENT }),
    { Accept: ["*/*"], traceparent: [PARENT] },
  );
  const request = { jsonrpc: "2.0", id: 1, method: "tools/list" };
  assert.deepEqual(withTraceMeta(request, { traceparent: PARENT }), {
    ...request,
    params: { _meta: { traceparent: PARENT } },
  });
  const own = {
    jsonrpc: "2.0",
    id: 2,
    method: "tools/call",
    params: { name: "t", _meta: { traceparent: "theirs", progressToken: 1 } },
  };
  assert.equal(withTraceMeta(own, { traceparent: PARENT }), own);
  const notification = { jsonrpc: "2.0", method: "notifications/initialized" };
  assert.equal(withTraceMeta(notification, { traceparent: PARENT }), notification);
  const progress = { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "t", _meta: { progressToken: 7 } } };
  assert.deepEqual(withTraceMeta(progress, { traceparent: PARENT, tracestate: "a=b" }).params._meta, {
    progressToken: 7,
    traceparent: PARENT,
    tracestate: "a=b",
  });
});

test("call attributes name the method and tool, never the arguments", () => {
  const attributes = callAttributes({
    jsonrpc: "2.0",
    id: 9,
    method: "tools/call",
    params: { name: "echo", arguments: { message: "secret" } },
  });
  assert.deepEqual(attributes, {
    "rpc.system.name": "jsonrpc",
    "mcp.method.name": "tools/call",
    "jsonrpc.request.id": "9",
    "gen_ai.tool.name": "echo",
  });
});
