import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeCommand,
  encodeServerInfo,
  decodeServerInfo,
  failureMessage,
  failureStatus,
  filterResponseHeaders,
  normalizeChannel,
  parseDuration,
  parseResponseTimeout,
  PolledCommandList,
  sanitizeClientHeaders,
  TunnelResponsePayload,
} from "../../shared/protocol/index.ts";
import { assertParameter, assertSchema, assertTunnelFailure, fixture } from "../support/openapi.ts";

describe("wire fixtures", () => {
  test("the poll envelope fixture validates and decodes into both command kinds", () => {
    const body = fixture("fixture-poll_command_envelope.json");
    assertSchema("PolledCommandList", body);
    const list = PolledCommandList.parse(body);
    const decoded = list.commands.map(decodeCommand);
    assert.equal(decoded.length, 2);
    const [rpc, end] = decoded;
    assert.ok(rpc?.kind === "command" && rpc.command.command_type === "jsonrpc");
    assert.deepEqual(rpc.command.jsonrpc, {
      jsonrpc: "2.0",
      id: "rpc-1",
      method: "tools/list",
      params: { needle: "hay" },
    });
    assert.deepEqual(rpc.command.headers, { "x-test": ["alpha"] });
    assert.equal(rpc.command.channel, "harpoon");
    assert.ok(end?.kind === "command" && end.command.command_type === "session_termination");
    assert.equal(end.command.shard_token, "fixture:session");
  });

  test("the notify response fixture validates and parses", () => {
    const body = fixture("fixture-jsonrpc_notify_response.json");
    assertSchema("TunnelResponsePayload", body);
    assert.equal(TunnelResponsePayload.parse(body).resp_type, "jsonrpc_notify");
  });
});

describe("decodeCommand", () => {
  test("a command without command_type is jsonrpc", () => {
    const decoded = decodeCommand({
      request_id: "r",
      shard_token: "s",
      created_at: "t",
      jsonrpc: { jsonrpc: "2.0", method: "ping", id: 1 },
    });
    assert.ok(decoded.kind === "command" && decoded.command.command_type === "jsonrpc");
  });
  test("unknown command types are reported with their request id, not parsed", () => {
    assert.deepEqual(
      decodeCommand({ request_id: "r9", shard_token: "s", created_at: "t", command_type: "telepathy", jsonrpc: {} }),
      { kind: "unknown", requestId: "r9", commandType: "telepathy" },
    );
  });
  test("a jsonrpc command without a payload is invalid, with a reason", () => {
    const decoded = decodeCommand({ request_id: "r", shard_token: "s", created_at: "t", command_type: "jsonrpc" });
    assert.equal(decoded.kind, "invalid");
    assert.ok(decoded.kind === "invalid" && decoded.reason.includes("jsonrpc"));
  });
  test("airlock_stream_open (get-stream) decodes as a stream with its headers; a broken one is invalid", () => {
    const raw = {
      request_id: "r5",
      shard_token: "s",
      created_at: "t",
      command_type: "airlock_stream_open",
      channel: "main",
      headers: { "Mcp-Session-Id": ["x"] },
    };
    assert.deepEqual(decodeCommand(raw), { kind: "stream", requestId: "r5", command: raw });
    assert.deepEqual(decodeCommand({ ...raw, shard_token: 7 }).kind, "invalid");
  });
  test("non-objects are invalid", () => {
    assert.equal(decodeCommand("nope").kind, "invalid");
    assert.equal(decodeCommand([1]).kind, "invalid");
  });
  test("unknown fields are ignored and kept", () => {
    const decoded = decodeCommand({ request_id: "r", shard_token: "s", created_at: "t", jsonrpc: {}, future_field: 1 });
    assert.equal(decoded.kind, "command");
  });
});

describe("response_timeout", () => {
  const cases: Array<[unknown, number | undefined]> = [
    ["30s", 30_000],
    ["4500ms", 4500],
    ["0s", 0],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1500us", 1.5],
    ["1000000ns", 1],
    [undefined, undefined],
    [null, undefined],
    [30, undefined],
    ["1.5s", undefined],
    ["-1s", undefined],
    ["+1s", undefined],
    [" 1s", undefined],
    ["1s ", undefined],
    ["1m30s", undefined],
    ["10d", undefined],
    ["s", undefined],
    ["", undefined],
    ["99999999999999999999h", undefined],
    ["1S", undefined],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)} → ${expected === undefined ? "no deadline" : `${expected} ms`}`, () => {
      assert.equal(parseResponseTimeout(input), expected);
    });
  }
  test("config durations allow compounds", () => {
    assert.equal(parseDuration("1m30s"), 90_000);
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("0"), 0);
    assert.equal(parseDuration("soon"), undefined);
    assert.equal(parseDuration(""), undefined);
  });
});

describe("tunnel_failure", () => {
  test("every source builds provenance the published schema accepts", () => {
    const specs = [
      { source: "target_http", status: 503 } as const,
      { source: "transport_closed", kind: "eof" } as const,
      { source: "timeout", kind: "timeout" } as const,
      { source: "connect", kind: "connection_refused" } as const,
      { source: "dns", kind: "dns" } as const,
      { source: "tls", kind: "tls" } as const,
      { source: "protocol", kind: "malformed_json", upstreamResponseReceived: true } as const,
      { source: "client_internal" } as const,
    ];
    for (const spec of specs) {
      const message = failureMessage("id-1", spec);
      assertTunnelFailure(message.error.data.tunnel_failure);
      assert.equal(message.error.code, -32603);
      assertSchema("TunnelResponsePayload", {
        request_id: "r",
        resp_json: message,
        resp_code: failureStatus(spec),
        resp_type: "jsonrpc_response",
      });
    }
  });
  test("target_http carries the upstream status and its reason phrase", () => {
    const message = failureMessage(7, { source: "target_http", status: 503 });
    assert.equal(message.error.message, "Service Unavailable");
    assert.deepEqual(message.error.data.tunnel_failure, {
      version: 1,
      source: "target_http",
      transport_error_kind: "http_status",
      upstream_response_received: true,
      upstream_status: 503,
    });
  });
  test("transport_closed never claims an upstream response", () => {
    const failure = failureMessage(1, { source: "transport_closed", upstreamResponseReceived: true }).error.data
      .tunnel_failure;
    assert.equal(failure.upstream_response_received, false);
    assert.equal("upstream_status" in failure, false);
  });
  test("a timeout is a 504, other transport failures 502", () => {
    assert.equal(failureStatus({ source: "timeout" }), 504);
    assert.equal(failureStatus({ source: "connect" }), 502);
  });
});

describe("headers", () => {
  test("only allowlisted, non-empty, non-nominated response headers survive", () => {
    const headers = new Headers({
      "content-type": "application/json",
      "mcp-session-id": "abc",
      "set-cookie": "x=1",
      "x-secret": "s",
      "www-authenticate": "",
      connection: "close, Mcp-Protocol-Version",
      "mcp-protocol-version": "2025-06-18",
    });
    assert.deepEqual(filterResponseHeaders(headers), {
      "Content-Type": ["application/json"],
      "Mcp-Session-Id": ["abc"],
    });
  });
  test("client headers: only the allowlist passes (hop-by-hop, proxy, client-IP, rewrite and made-up names never do)", () => {
    const headers = new Headers({
      authorization: "Bearer t",
      accept: "application/json",
      "mcp-session-id": "s1",
      connection: "keep-alive, x-drop",
      "x-drop": "1",
      "keep-alive": "5",
      host: "h",
      cookie: "c",
      "x-forwarded-for": "1.2.3.4",
      "x-real-ip": "1.2.3.4",
      "proxy-authorization": "p",
      "x-custom": "dropped",
      via: "1.1 v",
      forwarded: "for=x",
      "x-original-url": "/admin",
      "x-rewrite-url": "/admin",
      "x-read-only": "false",
      "last-event-id": "7",
      traceparent: "00-ab-cd-01",
    });
    const kept = sanitizeClientHeaders(headers, false);
    assert.deepEqual(Object.keys(kept).sort(), ["accept", "last-event-id", "mcp-session-id", "traceparent"]);
    assert.ok("authorization" in sanitizeClientHeaders(headers, true));
  });
});

describe("channels and server info", () => {
  test("channels normalise and invalid ones are refused", () => {
    assert.equal(normalizeChannel(undefined), "main");
    assert.equal(normalizeChannel(null), "main");
    assert.equal(normalizeChannel(" Harpoon "), "harpoon");
    assert.equal(normalizeChannel("bad/channel"), undefined);
    assert.equal(normalizeChannel("../etc"), undefined);
  });
  test("server info is compact, declares affinity only when true, and round-trips", () => {
    const value = encodeServerInfo([
      { name: "main", procAffinity: false },
      { name: "harpoon", procAffinity: true },
    ]);
    assert.equal(value, '{"version":1,"channels":[{"name":"main"},{"name":"harpoon","proc_affinity":true}]}');
    assertParameter("/v1/tunnels/{tunnel_id}/poll", "get", "X-Tunnel-MCP-Server-Info", value);
    assert.deepEqual(
      decodeServerInfo(value)?.channels.map((c) => c.name),
      ["main", "harpoon"],
    );
  });
  test("more than 32 channels or duplicates are refused", () => {
    const many = Array.from({ length: 33 }, (_, i) => ({ name: `c${i}`, procAffinity: false }));
    assert.throws(() => encodeServerInfo(many), /at most 32/);
    assert.throws(
      () =>
        encodeServerInfo([
          { name: "a", procAffinity: false },
          { name: "a", procAffinity: true },
        ]),
      /twice/,
    );
  });
  test("a server info header with extra keys is ignored by the hub", () => {
    assert.equal(decodeServerInfo('{"version":1,"channels":[{"name":"main","url":"http://x"}]}'), undefined);
  });
});
