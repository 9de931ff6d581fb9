/** How the hub renders an exchange to the MCP client: JSON vs SSE, status mapping, headers. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Exchange } from "../../relay/hub/exchange.ts";
import {
  clientStatus,
  renderExchange,
  replyEvents,
  type ExchangeEvents,
  type SubmitReply,
} from "../../relay/hub/render.ts";
import { assertSchema } from "../support/openapi.ts";

const RESULT = { jsonrpc: "2.0", id: 7, result: { ok: true } };
const PROGRESS = { jsonrpc: "2.0", method: "notifications/progress", params: { progress: 1 } };

function exchange(cancelled: string[] = []): Exchange {
  return new Exchange("req_1", (reason) => cancelled.push(reason));
}

/** The `data:` payloads of an SSE body. */
async function sseMessages(response: Response): Promise<unknown[]> {
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((block) => block.includes("data: "))
    .map((block) =>
      JSON.parse(
        block
          .split("\n")
          .find((line) => line.startsWith("data: "))!
          .slice(6),
      ),
    );
}

describe("status mapping", () => {
  test("1xx → 502, unknown 2xx → 200, unknown others → 502, known codes pass", () => {
    assert.deepEqual([100, 101, 199].map(clientStatus), [502, 502, 502]);
    assert.deepEqual([200, 202, 204].map(clientStatus), [200, 202, 204]);
    assert.deepEqual([250, 299].map(clientStatus), [200, 200]);
    assert.deepEqual([400, 401, 404, 418, 429, 500, 503].map(clientStatus), [400, 401, 404, 418, 429, 500, 503]);
    assert.deepEqual([399, 460, 599, 600, 0, -1, 200.5].map(clientStatus), [502, 502, 502, 502, 502, 502, 502]);
  });
});

describe("JSON rendering", () => {
  test("a final response becomes JSON with the backend's status and only allowlisted headers", async () => {
    const ex = exchange();
    ex.push({
      type: "final",
      respType: "jsonrpc_response",
      status: 200,
      message: RESULT,
      headers: {
        "Content-Type": ["application/json"],
        "Mcp-Session-Id": ["s1"],
        "Set-Cookie": ["a=b"],
        "X-Internal": ["1"],
      },
    });
    const response = await renderExchange(ex, { acceptsSse: true, keepaliveMs: 1000 });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal(response.headers.get("mcp-session-id"), "s1");
    assert.equal(response.headers.get("set-cookie"), null);
    assert.equal(response.headers.get("x-internal"), null);
    assert.deepEqual(await response.json(), RESULT);
  });

  test("notify_ack answers with the backend's status and no body", async () => {
    const ex = exchange();
    ex.push({ type: "final", respType: "notify_ack", status: 202, headers: { "Content-Type": ["application/json"] } });
    const response = await renderExchange(ex, { acceptsSse: true, keepaliveMs: 1000 });
    assert.equal(response.status, 202);
    assert.equal(response.headers.get("content-type"), null);
    assert.equal(await response.text(), "");
  });

  test("a JSON-only client gets the final response; earlier notifications cannot reach it", async () => {
    const ex = exchange();
    ex.push({ type: "notify", message: PROGRESS, headers: {}, status: 200 });
    ex.push({ type: "final", respType: "jsonrpc_response", status: 200, message: RESULT, headers: {} });
    const response = await renderExchange(ex, { acceptsSse: false, keepaliveMs: 1000 });
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.deepEqual(await response.json(), RESULT);
  });

  test("a hub failure becomes the error envelope with Retry-After", async () => {
    const ex = exchange();
    ex.push({
      type: "failed",
      error: { status: 503, code: "tunnel_client_not_connected", message: "gone", retryAfter: 2 },
    });
    const response = await renderExchange(ex, { acceptsSse: true, keepaliveMs: 1000 });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "2");
    const body = await response.json();
    assertSchema("APIErrorResponse", body);
    assert.equal((body as { error: { code: string } }).error.code, "tunnel_client_not_connected");
  });
});

describe("SSE rendering", () => {
  test("a notification before the final answer opens a stream: one event per message, closed after the final", async () => {
    const ex = exchange();
    ex.push({
      type: "notify",
      message: PROGRESS,
      headers: { "Content-Type": ["text/event-stream"], "Mcp-Session-Id": ["s9"] },
      status: 200,
    });
    const response = await renderExchange(ex, { acceptsSse: true, keepaliveMs: 1000 });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(response.headers.get("mcp-session-id"), "s9");
    ex.push({ type: "notify", message: { ...PROGRESS, params: { progress: 2 } }, headers: {}, status: 200 });
    ex.push({ type: "final", respType: "jsonrpc_response", status: 200, message: RESULT, headers: {} });
    assert.deepEqual(await sseMessages(response), [PROGRESS, { ...PROGRESS, params: { progress: 2 } }, RESULT]);
  });

  test("held until the final (initialize): earlier messages wait, the headers are the final's; a failed final keeps its status", async () => {
    const ex = exchange();
    ex.push({ type: "notify", message: PROGRESS, headers: { "Content-Type": ["text/event-stream"] }, status: 200 });
    let rendered = false;
    const pending = renderExchange(ex, { acceptsSse: true, keepaliveMs: 1000, holdUntilFinal: true }).then((r) => {
      rendered = true;
      return r;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(rendered, false, "nothing goes out before the final");
    ex.push({
      type: "final",
      respType: "jsonrpc_response",
      status: 200,
      message: RESULT,
      headers: { "Content-Type": ["application/json"], "Mcp-Session-Id": ["airlock-1"] },
    });
    const response = await pending;
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(response.headers.get("mcp-session-id"), "airlock-1");
    assert.deepEqual(await sseMessages(response), [PROGRESS, RESULT]);

    const failed = exchange();
    failed.push({ type: "notify", message: PROGRESS, headers: {}, status: 200 });
    failed.push({ type: "final", respType: "jsonrpc_response", status: 400, message: RESULT, headers: {} });
    const refused = await renderExchange(failed, { acceptsSse: true, keepaliveMs: 1000, holdUntilFinal: true });
    assert.equal(refused.status, 400);
    assert.equal(refused.headers.get("content-type"), "application/json");
  });

  test("a final response the backend sent as SSE stays SSE for a client that accepts it", async () => {
    const ex = exchange();
    ex.push({
      type: "final",
      respType: "jsonrpc_response",
      status: 200,
      message: RESULT,
      headers: { "Content-Type": ["text/event-stream"] },
    });
    const response = await renderExchange(ex, { acceptsSse: true, keepaliveMs: 1000 });
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.deepEqual(await sseMessages(response), [RESULT]);
  });

  test("when the hub gives up mid-stream the client gets a JSON-RPC error for its request id", async () => {
    const ex = exchange();
    ex.push({ type: "notify", message: PROGRESS, headers: {}, status: 200 });
    const response = await renderExchange(ex, { acceptsSse: true, keepaliveMs: 1000, rpcId: 7 });
    ex.push({ type: "failed", error: { status: 504, code: "tunnel_response_timeout", message: "too slow" } });
    const [, failure] = (await sseMessages(response)) as Array<{
      id: number;
      error: { code: number; message: string };
    }>;
    assert.equal(failure!.id, 7);
    assert.equal(failure!.error.code, -32603);
    assert.equal(failure!.error.message, "too slow");
  });

  test("a hub that stops answering mid-stream (a failed RPC) ends the stream with the client's error", async () => {
    let reads = 0;
    const events: ExchangeEvents = {
      next: async () => {
        if (reads++ === 0) return { type: "notify", message: PROGRESS, headers: {}, status: 200 };
        throw new Error("Durable Object reset");
      },
      cancel: () => {},
    };
    const response = await renderExchange(events, { acceptsSse: true, keepaliveMs: 1000, rpcId: 7 });
    const [progress, failure] = (await sseMessages(response)) as Array<{
      id: number;
      error: { code: number; message: string };
    }>;
    assert.deepEqual(progress, PROGRESS);
    assert.equal(failure!.id, 7);
    assert.match(failure!.error.message, /Durable Object reset.*send it again/);
  });

  test("a submit reply is read as events: its first one, then the rest through its functions, which are released at the end", async () => {
    const ex = exchange();
    let released = 0;
    const reply: SubmitReply & Disposable = {
      first: { type: "notify", message: PROGRESS, headers: {}, status: 200 },
      next: () => ex.next(),
      cancel: async (reason) => ex.cancel(reason),
      [Symbol.dispose]: () => {
        released++;
      },
    };
    ex.push({ type: "final", respType: "jsonrpc_response", status: 200, message: RESULT, headers: {} });
    const response = await renderExchange(
      replyEvents(reply, () => {}),
      { acceptsSse: true, keepaliveMs: 1000 },
    );
    assert.deepEqual(await sseMessages(response), [PROGRESS, RESULT]);
    assert.equal(released, 1);
  });

  test("keepalive comments flow while the stream is idle, and a client that cancels the stream cancels the request", async () => {
    const cancelled: string[] = [];
    const ex = exchange(cancelled);
    ex.push({ type: "notify", message: PROGRESS, headers: {}, status: 200 });
    const response = await renderExchange(ex, { acceptsSse: true, keepaliveMs: 5 });
    assert.equal(response.headers.get("x-accel-buffering"), "no");
    const reader = response.body!.getReader();
    let text = "";
    while (!text.includes(": keepalive")) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    assert.deepEqual(cancelled, ["client_disconnected"]);
    assert.equal(ex.closed, true);
  });
});
