import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkEraHeaders,
  claimedVersion,
  decodeHeaderParam,
  HEADER_MISMATCH,
  isModernMessage,
  PROTOCOL_VERSION_META_KEY,
  UNSUPPORTED_PROTOCOL_VERSION,
} from "../../shared/mcp/era.ts";

const META = { [PROTOCOL_VERSION_META_KEY]: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} };
const call = {
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: { name: "echo", arguments: { message: "hi" }, _meta: META },
};

function lookup(headers: Record<string, string>) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return (name: string) => lower[name.toLowerCase()];
}
const good = { "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo" };

test("a modern request whose headers mirror its body passes", () => {
  assert.equal(checkEraHeaders(call, lookup(good)), undefined);
  assert.equal(checkEraHeaders(call, lookup({ ...good, "Mcp-Name": "=?base64?ZWNobw==?=" })), undefined);
});

test("each missing or disagreeing header is a -32020 with HTTP 400 naming the header", () => {
  for (const [headers, says] of [
    [{ ...good, "Mcp-Name": "add" }, /Mcp-Name header names add/],
    [{ ...good, "Mcp-Method": "tools/list" }, /Mcp-Method header names tools\/list/],
    [{ ...good, "MCP-Protocol-Version": "2025-06-18" }, /MCP-Protocol-Version header names 2025-06-18/],
    [{ "Mcp-Method": "tools/call", "Mcp-Name": "echo" }, /MCP-Protocol-Version header is absent/],
    [{ "MCP-Protocol-Version": "2026-07-28", "Mcp-Name": "echo" }, /Mcp-Method header is absent/],
    [{ "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call" }, /Mcp-Name header is absent/],
    [{ ...good, "Mcp-Name": "=?base64?not base64?=" }, /invalid Base64/],
  ] as const) {
    const refusal = checkEraHeaders(call, lookup(headers));
    assert.equal(refusal?.status, 400, JSON.stringify(headers));
    assert.equal(refusal?.code, HEADER_MISMATCH);
    assert.match(refusal!.message, says);
  }
});

test("an unknown modern revision is -32022 listing what is supported", () => {
  const future = { ...call, params: { ...call.params, _meta: { ...META, [PROTOCOL_VERSION_META_KEY]: "2027-01-01" } } };
  const refusal = checkEraHeaders(future, lookup({ ...good, "MCP-Protocol-Version": "2027-01-01" }));
  assert.equal(refusal?.code, UNSUPPORTED_PROTOCOL_VERSION);
  assert.equal(refusal?.status, 400);
  assert.ok((refusal!.data!.supported as string[]).includes("2026-07-28"));
});

test("legacy messages are not the hub's to check, except a modern version header without the envelope", () => {
  const legacy = { jsonrpc: "2.0", id: 2, method: "tools/list", params: {} };
  assert.equal(checkEraHeaders(legacy, lookup({ "MCP-Protocol-Version": "2025-06-18" })), undefined);
  assert.equal(checkEraHeaders(legacy, lookup({})), undefined);
  assert.equal(checkEraHeaders(legacy, lookup({ "MCP-Protocol-Version": "2026-07-28" }))?.code, -32602);
  assert.equal(isModernMessage(legacy), false);
  assert.equal(isModernMessage(call), true);
  assert.equal(claimedVersion(legacy), undefined);
});

test("notifications need no Mcp-Method, but one that is sent must match", () => {
  const note = { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1, _meta: META } };
  assert.equal(checkEraHeaders(note, lookup({})), undefined);
  assert.equal(checkEraHeaders(note, lookup({ "Mcp-Method": "tools/call" }))?.code, HEADER_MISMATCH);
});

test("Base64 header values decode as UTF-8 and bad ones are refused", () => {
  assert.equal(decodeHeaderParam("=?base64?w6ljaG8=?="), "écho");
  assert.equal(decodeHeaderParam("plain"), "plain");
  assert.equal(decodeHeaderParam("=?base64?/w==?="), undefined);
});
