import { test } from "node:test";
import assert from "node:assert/strict";
import {
  discoverResult,
  legacyClientCapabilities,
  legacyHeaders,
  modernAnswer,
  modernRequestHeaders,
  withEnvelope,
  withoutEnvelope,
} from "../../agent/bridge/translate.ts";
import { decodeHeaderParam, encodeHeaderParam } from "../../shared/mcp/era.ts";

const ENVELOPE = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {},
  "io.modelcontextprotocol/clientInfo": { name: "c", version: "1" },
  "io.modelcontextprotocol/logLevel": "info",
};

test("the envelope leaves _meta, other _meta (a progress token) stays, an emptied _meta goes", () => {
  const call = {
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name: "echo", _meta: { ...ENVELOPE, progressToken: 7 } },
  };
  assert.deepEqual(withoutEnvelope(call).params, { name: "echo", _meta: { progressToken: 7 } });
  const list = { jsonrpc: "2.0", id: 2, method: "tools/list", params: { _meta: ENVELOPE } };
  assert.deepEqual(withoutEnvelope(list).params, {});
});

test("withEnvelope and modernRequestHeaders make a legacy request a stateless modern one", () => {
  const modern = withEnvelope(
    { jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri: "note://é" } },
    { capabilities: { x: {} }, clientInfo: { name: "n", version: "1" } },
  );
  const meta = (modern.params as { _meta: Record<string, unknown> })._meta;
  assert.equal(meta["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
  assert.deepEqual(meta["io.modelcontextprotocol/clientCapabilities"], { x: {} });
  const headers = modernRequestHeaders(modern, { "Mcp-Session-Id": ["eras-1"], Accept: ["application/json"] });
  assert.deepEqual(headers["Mcp-Method"], ["resources/read"]);
  assert.equal(decodeHeaderParam(headers["Mcp-Name"]![0]!), "note://é");
  assert.equal(headers["Mcp-Session-Id"], undefined, "the bridge's session id is not the server's");
  assert.deepEqual(headers.Accept, ["application/json"]);
});

test("legacy headers drop the modern mirrors and Mcp-Param-*, and carry the legacy session", () => {
  const headers = legacyHeaders(
    { "Mcp-Method": ["tools/call"], "mcp-name": ["echo"], "Mcp-Param-Region": ["eu"], Authorization: ["Bearer t"] },
    { "Mcp-Session-Id": ["s1"] },
  );
  assert.deepEqual(headers, { Authorization: ["Bearer t"], "Mcp-Session-Id": ["s1"] });
});

test("results get resultType, the server's info, and cache hints only on cacheable methods (never overriding the server's)", () => {
  const info = { name: "srv", version: "1" };
  const list = modernAnswer("tools/list", { jsonrpc: "2.0", id: 1, result: { tools: [], ttlMs: 5000 } }, info);
  assert.deepEqual(list.result, {
    ttlMs: 5000,
    cacheScope: "private",
    tools: [],
    resultType: "complete",
    _meta: { "io.modelcontextprotocol/serverInfo": info },
  });
  const call = modernAnswer("tools/call", { jsonrpc: "2.0", id: 2, result: { content: [], _meta: { k: 1 } } }, info);
  assert.deepEqual(call.result, {
    content: [],
    resultType: "complete",
    _meta: { "io.modelcontextprotocol/serverInfo": info, k: 1 },
  });
  const error = { jsonrpc: "2.0", id: 3, error: { code: -32601, message: "no" } };
  assert.deepEqual(modernAnswer("tools/call", error, info), error);
});

test("discover offers the versions asked and the capabilities the bridge serves, list changes and subscriptions included", () => {
  const discover = discoverResult(
    {
      protocolVersion: "2025-06-18",
      serverInfo: { name: "s", version: "1" },
      instructions: "hi",
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        logging: {},
        sampling: {},
      },
    },
    ["2026-07-28"],
  );
  assert.deepEqual(discover.supportedVersions, ["2026-07-28"]);
  // sampling is a client capability a server cannot offer; listChanged/subscribe are served by listens.
  assert.deepEqual(discover.capabilities, {
    tools: { listChanged: true },
    resources: { subscribe: true, listChanged: true },
    logging: {},
  });
  assert.equal(discover.instructions, "hi");
  // The bridge answers a legacy server's questions through input_required rounds, so it declares what the client does.
  assert.deepEqual(legacyClientCapabilities({ sampling: {}, elicitation: {}, roots: {}, experimental: { a: {} } }), {
    sampling: {},
    elicitation: {},
    roots: {},
    experimental: { a: {} },
  });
  assert.deepEqual(legacyClientCapabilities(undefined), {});
});

test("header parameters: plain text stays, anything else travels as =?base64?…?= and decodes back", () => {
  for (const value of ["echo", "note://é", " padded ", "line\nbreak", "=?base64?x?="])
    assert.equal(decodeHeaderParam(encodeHeaderParam(value)), value);
  assert.equal(encodeHeaderParam("echo"), "echo");
  assert.match(encodeHeaderParam("note://é"), /^=\?base64\?.+\?=$/);
});
