import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { createControlPlaneClient } from "../../agent/control-plane/client.ts";
import { createPoster } from "../../agent/control-plane/poster.ts";
import type { PosterOptions, ResponseTarget } from "../../agent/control-plane/poster.ts";
import type { AgentEvents } from "../../agent/events.ts";
import { encodeServerInfo } from "../../shared/protocol/index.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import type { FakeCommand } from "../support/fake-control-plane.ts";
import { captureLog } from "../support/test-backend.ts";

const ANSWER = { type: "jsonrpc_response" as const, status: 200, message: { jsonrpc: "2.0", id: 1, result: {} } };

/** A fake control plane, a real client, and a poster whose retries wait no real time. */
async function setup(
  t: TestContext,
  options: Partial<PosterOptions> & { fetch?: typeof fetch; requestTimeoutMs?: number } = {},
) {
  const cp = await startFakeControlPlane();
  t.after(() => cp.close());
  // What the poster itself sent; the fake's records may also hold a runtime's own replays (Deno re-sends on a reused connection).
  const sent: Array<{ respType: unknown }> = [];
  const inner = options.fetch ?? fetch;
  const client = createControlPlaneClient({
    baseUrl: cp.baseUrl,
    tunnelId: cp.tunnelId,
    apiKey: cp.apiKey,
    clientName: "airlock",
    clientVersion: "test",
    serverInfo: encodeServerInfo([{ name: "main", procAffinity: false }]),
    ...(options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    fetch: (input, init) => {
      if (typeof init?.body === "string")
        sent.push({ respType: (JSON.parse(init.body) as { resp_type?: unknown }).resp_type });
      return inner(input, init);
    },
  });
  const delays: number[] = [];
  const posted: Array<[string, string, number]> = [];
  const events: AgentEvents = { responsePosted: (type, outcome, attempts) => posted.push([type, outcome, attempts]) };
  const capture = captureLog();
  const poster = createPoster({
    client,
    log: capture.log,
    events,
    sleep: async (ms) => {
      delays.push(ms);
    },
    backoff: { random: () => 0 },
    ...options,
  });
  /** Deliver one command through a real poll so the fake knows its shard token. */
  async function command(): Promise<FakeCommand> {
    const [queued] = cp.enqueue({});
    const polled = await client.poll({ limit: 1, timeoutMs: 1_000, guardrailMs: 1_000 });
    assert.equal(polled.kind, "commands");
    return queued!;
  }
  const target = (c: FakeCommand, extra: Partial<ResponseTarget> = {}): ResponseTarget => ({
    requestId: c.request_id,
    channel: "main",
    shardToken: c.shard_token,
    signal: new AbortController().signal,
    ...extra,
  });
  return { cp, poster, delays, posted, command, target, capture, sent };
}

describe("poster: final responses", () => {
  test("retried on 503 with the same body and headers until accepted", async (t) => {
    const { cp, poster, delays, posted, command, target } = await setup(t);
    const c = await command();
    cp.scriptResponse({ status: 503, code: "tunnel_transport_unavailable" });
    cp.scriptResponse({ status: 503, retryAfter: "3" });
    assert.equal(await poster.open(target(c)).final(ANSWER), "ok");
    const attempts = cp.responsesFor(c.request_id);
    assert.deepEqual(
      attempts.map((r) => r.status),
      [503, 503, 200],
    );
    assert.deepEqual(
      attempts.map((r) => r.payload),
      Array(3).fill(attempts[0]!.payload),
    );
    assert.deepEqual(
      attempts.map((r) => r.shardToken),
      Array(3).fill(c.shard_token),
    );
    assert.deepEqual(delays, [100, 3_000], "backoff, then Retry-After as a floor");
    assert.deepEqual(posted, [["jsonrpc_response", "ok", 3]]);
    assert.deepEqual(attempts[0]!.payload, {
      request_id: c.request_id,
      channel: "main",
      resp_json: ANSWER.message,
      resp_headers: {},
      resp_code: 200,
      resp_type: "jsonrpc_response",
    });
    cp.assertNoViolations();
  });

  test("retried on every retryable status: 408 429 502 504 and a dropped connection", async (t) => {
    const { cp, poster, command, target } = await setup(t);
    const c = await command();
    for (const status of [408, 429, 502, 504]) cp.scriptResponse({ status });
    cp.scriptResponse({ drop: true });
    assert.equal(await poster.open(target(c)).final(ANSWER), "ok");
    assert.deepEqual(
      cp.responsesFor(c.request_id).map((r) => r.status),
      [408, 429, 502, 504, undefined, 200],
    );
    cp.assertNoViolations();
  });

  test("404 means already answered or gone: done, no retry", async (t) => {
    const { cp, poster, posted, command, target, capture } = await setup(t);
    const c = await command();
    cp.scriptResponse({ status: 404, code: "pending_request_not_found" });
    assert.equal(await poster.open(target(c)).final(ANSWER), "gone");
    assert.equal(cp.responsesFor(c.request_id).length, 1);
    assert.deepEqual(posted, [["jsonrpc_response", "gone", 1]]);
    assert.match(capture.text(), /no longer waits/);
  });

  test("another 4xx is logged and given up", async (t) => {
    const { cp, poster, posted, command, target, capture } = await setup(t);
    const c = await command();
    cp.scriptResponse({ status: 400, code: "invalid_json_payload" });
    assert.equal(await poster.open(target(c)).final(ANSWER), "failed");
    assert.equal(cp.responsesFor(c.request_id).length, 1);
    assert.deepEqual(posted, [["jsonrpc_response", "failed", 1]]);
    assert.match(capture.text(), /could not deliver the final response: not retryable.*HTTP 400 invalid_json_payload/);
  });

  test("no retry starts past the command's deadline", async (t) => {
    let clock = 0;
    const { cp, poster, command, target } = await setup(t, { now: () => clock });
    const c = await command();
    cp.scriptResponse({ status: 503, retryAfter: "5" });
    cp.scriptResponse({ status: 503 });
    assert.equal(await poster.open(target(c, { deadline: 4_000 })).final(ANSWER), "failed");
    assert.equal(cp.responsesFor(c.request_id).length, 1);
    clock = 0;
    const d = await command();
    assert.equal(await poster.open(target(d, { deadline: 6_000 })).final(ANSWER), "ok");
  });

  test("gives up after maxFinalAttempts", async (t) => {
    const { cp, poster, command, target } = await setup(t, { maxFinalAttempts: 3 });
    const c = await command();
    for (let i = 0; i < 5; i++) cp.scriptResponse({ status: 502 }, { requestId: c.request_id });
    assert.equal(await poster.open(target(c)).final(ANSWER), "failed");
    assert.equal(cp.responsesFor(c.request_id).length, 3);
  });

  test("an aborted command posts nothing", async (t) => {
    const { cp, poster, command, target } = await setup(t);
    const c = await command();
    const controller = new AbortController();
    controller.abort();
    assert.equal(await poster.open(target(c, { signal: controller.signal })).final(ANSWER), "aborted");
    assert.equal(cp.responsesFor(c.request_id).length, 0);
  });

  test("acks carry no resp_json; headers are reduced to the allowlist; an undefined channel is omitted", async (t) => {
    const { cp, poster, command, target } = await setup(t);
    const c = await command();
    const stream = poster.open({ ...target(c), channel: undefined });
    await stream.final({
      type: "notify_ack",
      status: 202,
      headers: {
        "Content-Type": ["application/json"],
        "Mcp-Session-Id": ["s1"],
        "Set-Cookie": ["x=1"],
        "X-Internal": ["secret"],
        "Mcp-Protocol-Version": [""],
      },
    });
    const [posted] = cp.responsesFor(c.request_id);
    assert.deepEqual(posted!.payload, {
      request_id: c.request_id,
      resp_headers: { "Content-Type": ["application/json"], "Mcp-Session-Id": ["s1"] },
      resp_code: 202,
      resp_type: "notify_ack",
    });
    assert.match(cp.violations.join(), /does not echo/, "the fake insists on the channel echo for a valid channel");
  });
});

describe("poster: results over the control plane's limit", () => {
  const big = (bytes: number) => ({
    ...ANSWER,
    message: { jsonrpc: "2.0", id: 9, result: { content: [{ type: "text", text: "x".repeat(bytes) }] } },
  });

  test("over the known limit: a small JSON-RPC error naming the size and the limit is posted instead, at once", async (t) => {
    const { cp, poster, command, target } = await setup(t, { maxResponseBytes: () => 4096 });
    const c = await command();
    assert.equal(await poster.open(target(c)).final(big(10_000)), "ok");
    const [posted] = cp.responsesFor(c.request_id);
    assert.equal(cp.responsesFor(c.request_id).length, 1, "the oversized body never went out");
    assert.equal(posted!.payload.resp_code, 502);
    const error = posted!.payload.resp_json as { id: unknown; error: { code: number; message: string; data: unknown } };
    assert.equal(error.id, 9);
    assert.equal(error.error.code, -32603);
    assert.match(
      error.error.message,
      /The MCP server's result is \d{5} bytes, over the control plane's limit of 4096 bytes/,
    );
    assert.deepEqual(error.error.data, {
      tunnel_failure: {
        version: 1,
        source: "protocol",
        transport_error_kind: "response_body_too_large",
        upstream_response_received: true,
      },
    });
    cp.assertNoViolations();
  });

  test("an unforeseen 413 is answered by the error instead, with the limit its message states; later big results skip the round trip", async (t) => {
    const { cp, poster, command, target } = await setup(t);
    const c = await command();
    cp.scriptResponse({
      status: 413,
      code: "request_body_too_large",
      message: "The response body is larger than the hub's limit of 8192 bytes; send a smaller payload.",
    });
    assert.equal(await poster.open(target(c)).final(big(10_000)), "ok");
    const attempts = cp.responsesFor(c.request_id);
    assert.deepEqual(
      attempts.map((r) => r.status),
      [413, 200],
    );
    assert.match(JSON.stringify(attempts[1]!.payload.resp_json), /over the control plane's limit of 8192 bytes/);
    const d = await command();
    assert.equal(await poster.open(target(d)).final(big(20_000)), "ok");
    assert.deepEqual(
      cp.responsesFor(d.request_id).map((r) => r.status),
      [200],
      "learned: no second 413",
    );
    const e = await command();
    assert.equal(await poster.open(target(e)).final(ANSWER), "ok");
    assert.deepEqual(
      cp.responsesFor(e.request_id)[0]!.payload.resp_json,
      ANSWER.message,
      "small results pass untouched",
    );
    cp.assertNoViolations();
  });
});

describe("poster: notifications", () => {
  const note = (n: number) => ({ jsonrpc: "2.0", method: "notifications/progress", params: { progress: n } });

  test("are posted in order before the final", async (t) => {
    const { cp, poster, command, target } = await setup(t);
    const c = await command();
    const stream = poster.open(target(c));
    stream.notify(note(1), { "Content-Type": ["text/event-stream"] });
    stream.notify(note(2));
    await stream.final(ANSWER);
    const got = cp.responsesFor(c.request_id);
    assert.deepEqual(
      got.map((r) => r.respType),
      ["jsonrpc_notify", "jsonrpc_notify", "jsonrpc_response"],
    );
    assert.deepEqual(
      got.map((r) => r.payload.resp_json),
      [note(1), note(2), ANSWER.message],
    );
    assert.deepEqual(got[0]!.payload.resp_headers, { "Content-Type": ["text/event-stream"] });
    assert.equal(got[0]!.payload.resp_code, 200);
    cp.assertNoViolations();
  });

  test("a failed notify is not retried, later notifies are skipped, the final is still delivered", async (t) => {
    const { cp, poster, posted, command, target } = await setup(t);
    const c = await command();
    cp.scriptResponse({ status: 503 }, { respType: "jsonrpc_notify" });
    const stream = poster.open(target(c));
    stream.notify(note(1));
    stream.notify(note(2));
    assert.equal(await stream.final(ANSWER), "ok");
    stream.notify(note(3));
    assert.equal(stream.notifiesSkipped, true);
    assert.deepEqual(
      cp.responsesFor(c.request_id).map((r) => [r.respType, r.status]),
      [
        ["jsonrpc_notify", 503],
        ["jsonrpc_response", 200],
      ],
    );
    assert.deepEqual(posted, [
      ["jsonrpc_notify", "failed", 1],
      ["jsonrpc_response", "ok", 1],
    ]);
    cp.assertNoViolations();
  });

  test("a notify is retried on 429", async (t) => {
    const { cp, poster, command, target } = await setup(t);
    const c = await command();
    cp.scriptResponse({ status: 429, retryAfter: "1" }, { respType: "jsonrpc_notify" });
    const stream = poster.open(target(c));
    stream.notify(note(1));
    await stream.final(ANSWER);
    assert.deepEqual(
      cp.responsesFor(c.request_id).map((r) => [r.respType, r.status]),
      [
        ["jsonrpc_notify", 429],
        ["jsonrpc_notify", 200],
        ["jsonrpc_response", 200],
      ],
    );
    assert.equal(stream.notifiesSkipped, false);
  });

  test("a notify is not retried when the connection died after sending (it may have arrived)", async (t) => {
    // Injected rather than a real dropped socket: Deno's HTTP client replays a request itself when a reused connection closes.
    let loseAnswer = false;
    const lossy: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (!loseAnswer) return response;
      loseAnswer = false;
      await response.body?.cancel();
      throw new TypeError("fetch failed", { cause: new Error("other side closed") });
    };
    const { cp, poster, command, target, sent } = await setup(t, { fetch: lossy });
    const c = await command();
    loseAnswer = true;
    const stream = poster.open(target(c));
    stream.notify(note(1));
    stream.notify(note(2));
    assert.equal(await stream.final(ANSWER), "ok");
    assert.deepEqual(
      sent.map((r) => r.respType),
      ["jsonrpc_notify", "jsonrpc_response"],
    );
    assert.equal(stream.notifiesSkipped, true);
    assert.deepEqual(
      cp.responsesFor(c.request_id).map((r) => r.respType),
      ["jsonrpc_notify", "jsonrpc_response"],
    );
  });

  test("a notify that timed out after it was sent is not retried (the control plane may have it)", async (t) => {
    let holdNext = false;
    const slow: typeof fetch = (input, init) => {
      if (!holdNext) return fetch(input, init);
      holdNext = false;
      // The bytes went out; the answer never comes before the client's deadline.
      return new Promise((_resolve, reject) =>
        init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason), { once: true }),
      );
    };
    const { poster, command, target, sent } = await setup(t, { fetch: slow, requestTimeoutMs: 200 });
    const c = await command();
    holdNext = true;
    const stream = poster.open(target(c));
    stream.notify(note(1));
    assert.equal(await stream.final(ANSWER), "ok");
    assert.deepEqual(
      sent.map((r) => r.respType),
      ["jsonrpc_notify", "jsonrpc_response"],
      "one notify attempt, no replay",
    );
    assert.equal(stream.notifiesSkipped, true);
  });

  test("a notify is retried when the request never left (connection refused)", async (t) => {
    let refuseNext = false;
    const flaky: typeof fetch = (input, init) => {
      if (refuseNext) {
        refuseNext = false;
        return Promise.reject(
          new TypeError("fetch failed", {
            cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
          }),
        );
      }
      return fetch(input, init);
    };
    const { cp, poster, command, target, delays } = await setup(t, { fetch: flaky });
    const c = await command();
    refuseNext = true;
    const stream = poster.open(target(c));
    stream.notify(note(1));
    await stream.final(ANSWER);
    assert.deepEqual(
      cp.responsesFor(c.request_id).map((r) => r.respType),
      ["jsonrpc_notify", "jsonrpc_response"],
    );
    assert.equal(delays.length, 1);
  });
});
