import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { createControlPlaneClient } from "../../agent/control-plane/client.ts";
import { createPoster } from "../../agent/control-plane/poster.ts";
import { createDispatcher } from "../../agent/dispatcher.ts";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import { silentLogger } from "../../shared/log.ts";
import { REPO_ROOT, everythingStdioCommand } from "../support/everything.ts";
import { describeCall } from "../../shared/mcp/methods.ts";
import type { DispatcherOptions } from "../../agent/dispatcher.ts";
import type { Backend, ExchangeResult, McpExchange, McpStream, StreamResult } from "../../agent/backends/types.ts";
import type { AgentEvents, CommandReport } from "../../agent/events.ts";
import { encodeServerInfo, failureMessage } from "../../shared/protocol/index.ts";
import { assertTunnelFailure } from "../support/openapi.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import type { FakeCommandInput } from "../support/fake-control-plane.ts";
import { createManualClock, eventually, settle } from "../support/manual-clock.ts";
import { aborted, captureLog, createGate, createTestBackend } from "../support/test-backend.ts";

/**
 * The dispatcher between a fake control plane (real HTTP, contract-checked) and an
 * in-test backend. Time is a manual clock shared by receipt stamps and deadlines.
 */
async function setup(t: TestContext, options: Partial<DispatcherOptions> & { served?: Record<string, Backend> } = {}) {
  const cp = await startFakeControlPlane();
  t.after(() => cp.close());
  const clock = createManualClock();
  const client = createControlPlaneClient({
    baseUrl: cp.baseUrl,
    tunnelId: cp.tunnelId,
    apiKey: cp.apiKey,
    clientName: "airlock",
    clientVersion: "test",
    serverInfo: encodeServerInfo([{ name: "main", procAffinity: false }]),
    now: clock.now,
  });
  const capture = captureLog();
  const reports: CommandReport[] = [];
  const queue: Array<[number, number]> = [];
  const events: AgentEvents = { commandFinished: (r) => reports.push(r), queueChanged: (p, r) => queue.push([p, r]) };
  const poster = createPoster({ client, log: capture.log, events, sleep: async () => {}, now: clock.now });
  const backend = createTestBackend("alpha");
  const served: Record<string, Backend> = options.served ?? { main: backend };
  const dispatcher = createDispatcher({
    backends: (channel) => served[channel],
    poster,
    log: capture.log,
    events,
    now: clock.now,
    sleep: clock.sleep,
    ...options,
  });
  t.after(() => dispatcher.drain(0));
  /** Queue commands at the fake, poll them with the real client, hand them to the dispatcher. */
  async function deliver(...inputs: FakeCommandInput[]) {
    const commands = cp.enqueue(...inputs);
    const result = await client.poll({ limit: 25, timeoutMs: 2_000, guardrailMs: 1_000 });
    assert.ok(result.kind === "commands", JSON.stringify(result));
    dispatcher.submit(result.commands, result.receivedAt);
    return commands;
  }
  /** Deliver exactly these commands in one poll answer (duplicates and broken ones included). */
  async function deliverRaw(commands: FakeCommandInput[]) {
    cp.scriptPoll({ status: 200, commands });
    const result = await client.poll({ limit: 25, timeoutMs: 2_000, guardrailMs: 1_000 });
    assert.ok(result.kind === "commands");
    dispatcher.submit(result.commands, result.receivedAt);
  }
  const report = (requestId: string) =>
    eventually(() => reports.find((r) => r.requestId === requestId), 5_000, `a report for ${requestId}`);
  return { cp, clock, dispatcher, backend, deliver, deliverRaw, report, reports, queue, capture };
}

const call = (id: unknown, name = "echo") => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: { text: "hi" } },
});

describe("dispatcher: jsonrpc commands", () => {
  test("with tracing off the command's traceparent reaches the backend unchanged, and the report names its trace id", async (t) => {
    const { cp, backend, deliver, report } = await setup(t);
    backend.onExchange = async ({ message }) => ({
      kind: "response",
      status: 200,
      headers: {},
      message: { jsonrpc: "2.0", id: message.id, result: {} },
    });
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const [command] = await deliver({ channel: "main", jsonrpc: call("t-1"), headers: { traceparent: [traceparent] } });
    await cp.waitForFinal(command!.request_id);
    assert.deepEqual(backend.exchanges[0]!.headers, { traceparent: [traceparent] });
    assert.equal((await report(command!.request_id)).traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  });

  test("a request goes to the channel's backend untouched; the answer is posted as jsonrpc_response", async (t) => {
    const { cp, backend, deliver, report } = await setup(t);
    backend.onExchange = async ({ message }) => ({
      kind: "response",
      status: 200,
      headers: { "Content-Type": ["application/json"], "Mcp-Session-Id": ["sess-9"], "X-Upstream-Secret": ["no"] },
      message: { jsonrpc: "2.0", id: message.id, result: { content: [{ type: "text", text: "hi" }] } },
    });
    const [command] = await deliver({
      channel: " MAIN ",
      jsonrpc: call("x-1"),
      headers: { "Mcp-Session-Id": ["sess-9"], Authorization: ["Bearer user"] },
    });
    const final = await cp.waitForFinal(command!.request_id);
    assert.deepEqual(backend.exchanges[0]!.message, call("x-1"));
    assert.deepEqual(backend.exchanges[0]!.headers, { "Mcp-Session-Id": ["sess-9"], Authorization: ["Bearer user"] });
    assert.deepEqual(final.payload, {
      request_id: command!.request_id,
      channel: "main",
      resp_json: { jsonrpc: "2.0", id: "x-1", result: { content: [{ type: "text", text: "hi" }] } },
      resp_headers: { "Content-Type": ["application/json"], "Mcp-Session-Id": ["sess-9"] },
      resp_code: 200,
      resp_type: "jsonrpc_response",
    });
    const { durationMs, ...rest } = await report(command!.request_id);
    assert.equal(typeof durationMs, "number");
    assert.deepEqual(rest, {
      requestId: command!.request_id,
      channel: "main",
      method: "tools/call",
      target: "echo",
      backend: "alpha",
      outcome: "ok",
      respCode: 200,
      commandType: "jsonrpc",
      createdAt: command!.created_at,
    });
    cp.assertNoViolations();
  });

  test("the command's X-Request-Id comes back as X-Client-Request-Id on the response post, as tunnel-client's", async (t) => {
    const { cp, backend, deliver } = await setup(t);
    backend.onExchange = async ({ message }) => ({
      kind: "response",
      status: 200,
      headers: {},
      message: { jsonrpc: "2.0", id: message.id, result: {} },
    });
    const [tagged] = await deliver({ jsonrpc: call("r-1"), headers: { "X-Request-Id": ["req_upstream_42"] } });
    assert.equal((await cp.waitForFinal(tagged!.request_id)).headers["x-client-request-id"], "req_upstream_42");
    const [plain] = await deliver({ jsonrpc: call("r-2") });
    assert.equal((await cp.waitForFinal(plain!.request_id)).headers["x-client-request-id"], undefined);
    cp.assertNoViolations();
  });

  test("log lines carry tunnel-client's correlation fields and one completion line per command, never arguments or other headers", async (t) => {
    const { cp, backend, deliver, capture } = await setup(t);
    backend.onExchange = async ({ message }) =>
      "id" in message
        ? { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } }
        : { kind: "ack", status: 202, headers: {} };
    // The first post of the request fails once, so the poster logs its retry with the same fields.
    cp.scriptResponse({ status: 503 }, { respType: "jsonrpc_response" });
    const headers = {
      "X-Request-Id": ["req_upstream_7"],
      "Mcp-Session-Id": ["sess-abc"],
      Authorization: ["Bearer user-secret"],
    };
    const [request, note] = await deliver(
      { jsonrpc: call(42), headers },
      { jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" }, headers },
    );
    await cp.waitForFinal(request!.request_id);
    await cp.waitForFinal(note!.request_id);
    const forwarded = await eventually(
      () => capture.records.find((r) => r.msg === "dispatcher forwarded command to MCP server"),
      5_000,
      "the completion line",
    );
    assert.equal(forwarded.level, "info");
    assert.equal(forwarded.request_id, request!.request_id);
    assert.equal(forwarded.cmd_request_id, "req_upstream_7");
    assert.equal(forwarded.rpc_request_id, 42, "a number id stays a number, as tunnel-client's slog.Int64");
    assert.equal(forwarded.session_id, "sess-abc");
    assert.equal("failure_source" in forwarded, false, "failure fields only on failed commands");
    const acked = await eventually(
      () => capture.records.find((r) => r.msg === "dispatcher acknowledged notification with control plane"),
      5_000,
      "the notification's completion line",
    );
    assert.equal(acked.request_id, note!.request_id);
    assert.equal(acked.session_id, "sess-abc");
    assert.equal("rpc_request_id" in acked, false, "a notification has no JSON-RPC id");
    const retry = capture.records.find((r) => r.msg === "response post failed; retrying");
    assert.ok(retry, capture.text());
    assert.equal(retry.request_id, request!.request_id);
    assert.equal(retry.cmd_request_id, "req_upstream_7");
    assert.equal(retry.rpc_request_id, 42);
    assert.equal(retry.session_id, "sess-abc");
    assert.doesNotMatch(capture.text(), /user-secret|"hi"/, "no other header values, no arguments");
    cp.assertNoViolations();
  });

  test("server messages become jsonrpc_notify posts, in order, before the final", async (t) => {
    const { cp, backend, deliver } = await setup(t);
    backend.onExchange = async ({ message, notify }) => {
      for (const progress of [1, 2, 3])
        notify(
          { jsonrpc: "2.0", method: "notifications/progress", params: { progress } },
          { "Content-Type": ["text/event-stream"] },
        );
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
    const [command] = await deliver({ jsonrpc: call(7) });
    await cp.waitForFinal(command!.request_id);
    const posts = cp.responsesFor(command!.request_id);
    assert.deepEqual(
      posts.map((p) => p.respType),
      ["jsonrpc_notify", "jsonrpc_notify", "jsonrpc_notify", "jsonrpc_response"],
    );
    assert.deepEqual(
      posts.slice(0, 3).map((p) => (p.payload.resp_json as { params: { progress: number } }).params.progress),
      [1, 2, 3],
    );
    cp.assertNoViolations();
  });

  test("a notification is acknowledged as notify_ack with the backend's status and no body", async (t) => {
    const { cp, backend, deliver } = await setup(t);
    const [command] = await deliver({ jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" } });
    const final = await cp.waitForFinal(command!.request_id);
    assert.equal(backend.exchanges.length, 1);
    assert.deepEqual(final.payload, {
      request_id: command!.request_id,
      channel: "main",
      resp_headers: {},
      resp_code: 202,
      resp_type: "notify_ack",
    });
    cp.assertNoViolations();
  });

  test("a valid JSON-RPC error from the backend is forwarded exactly, with its HTTP status", async (t) => {
    const { cp, backend, deliver, report } = await setup(t);
    const error = { jsonrpc: "2.0", id: 3, error: { code: -32602, message: "Unknown tool", data: { tool: "nope" } } };
    backend.onExchange = async () => ({ kind: "response", status: 400, headers: {}, message: error });
    const [command] = await deliver({ jsonrpc: call(3, "nope") });
    const final = await cp.waitForFinal(command!.request_id);
    assert.deepEqual([final.payload.resp_json, final.payload.resp_code], [error, 400]);
    assert.equal((await report(command!.request_id)).outcome, "ok");
  });

  test("no valid answer: a synthesised -32603 with tunnel_failure, the request's id and 502 (or the upstream status)", async (t) => {
    const { cp, backend, deliver, report } = await setup(t);
    const failures: ExchangeResult[] = [
      { kind: "failure", failure: { source: "connect", kind: "connection_refused" } },
      { kind: "failure", failure: { source: "target_http", status: 503 }, headers: { "Content-Type": ["text/html"] } },
    ];
    backend.onExchange = async () => failures.shift()!;
    const [refused, upstream] = await deliver({ jsonrpc: call("a") }, { jsonrpc: call("b") });
    const first = await cp.waitForFinal(refused!.request_id);
    const second = await cp.waitForFinal(upstream!.request_id);
    assert.deepEqual(first.payload.resp_json, failureMessage("a", { source: "connect", kind: "connection_refused" }));
    assert.equal(first.payload.resp_code, 502);
    assert.equal(second.payload.resp_code, 503);
    assert.equal((second.payload.resp_json as { id: unknown }).id, "b");
    for (const posted of [first, second]) {
      const error = (posted.payload.resp_json as { error: { code: number; data: { tunnel_failure: unknown } } }).error;
      assert.equal(error.code, -32603);
      assertTunnelFailure(error.data.tunnel_failure);
    }
    assert.equal((await report(refused!.request_id)).outcome, "failure");
    cp.assertNoViolations();
  });

  test("the error line carries tunnel-client's failure fields and the post's tunnel_request_id", async (t) => {
    const { cp, backend, deliver, capture } = await setup(t);
    const failures: ExchangeResult[] = [
      { kind: "failure", failure: { source: "connect", kind: "connection_refused" } },
      { kind: "failure", failure: { source: "target_http", status: 503 } },
      { kind: "failure", failure: { source: "client_internal" } },
    ];
    backend.onExchange = async () => failures.shift()!;
    const commands = await deliver({ jsonrpc: call("a") }, { jsonrpc: call("b") }, { jsonrpc: call("c") });
    const lines = [];
    for (const command of commands) {
      await cp.waitForFinal(command.request_id);
      lines.push(
        await eventually(
          () => capture.records.find((r) => r.request_id === command.request_id && /upstream error/.test(r.msg)),
          5_000,
          "the error line",
        ),
      );
    }
    const [refused, upstream, internal] = lines;
    assert.equal(refused!.failure_source, "connect");
    assert.equal(refused!.transport_error_kind, "connection_refused");
    assert.equal(refused!.upstream_response_received, false);
    assert.equal(refused!.tunnel_request_id, `tsreq_${commands[0]!.request_id}`);
    assert.equal(upstream!.failure_source, "target_http");
    assert.equal(upstream!.transport_error_kind, "http_status");
    assert.equal(upstream!.upstream_status, 503);
    assert.equal(internal!.failure_source, "client_internal");
    assert.equal(internal!.transport_error_kind, "unknown", "no finer kind: tunnel-client's classifier says unknown");
  });

  test("a backend that throws yields a client_internal failure, and the error is logged", async (t) => {
    const { cp, backend, deliver, capture } = await setup(t);
    backend.onExchange = async () => {
      throw new Error("bug in backend");
    };
    const [command] = await deliver({ jsonrpc: call(1) });
    const final = await cp.waitForFinal(command!.request_id);
    const error = (final.payload.resp_json as { error: { data: { tunnel_failure: { source: string } } } }).error;
    assert.equal(error.data.tunnel_failure.source, "client_internal");
    assert.equal(final.payload.resp_code, 502);
    assert.match(capture.text(), /backend threw.*bug in backend/);
  });
});

describe("dispatcher: session termination", () => {
  test("is answered with session_termination_response and the backend's status, no body", async (t) => {
    const { cp, backend, deliver, report, capture } = await setup(t);
    backend.onTerminate = async () => ({ kind: "terminated", status: 204, headers: {} });
    const [command] = await deliver({ command_type: "session_termination", headers: { "Mcp-Session-Id": ["sess-1"] } });
    const final = await cp.waitForFinal(command!.request_id);
    assert.deepEqual(backend.terminations[0]!.headers, { "Mcp-Session-Id": ["sess-1"] });
    assert.deepEqual(final.payload, {
      request_id: command!.request_id,
      channel: "main",
      resp_headers: {},
      resp_code: 204,
      resp_type: "session_termination_response",
    });
    assert.deepEqual(backend.exchanges, [], "never treated as JSON-RPC");
    assert.equal((await report(command!.request_id)).outcome, "ok");
    const line = capture.records.find((r) => r.msg.startsWith("dispatcher terminated MCP session"));
    assert.deepEqual(line && { ...line, time: "" }, {
      time: "",
      level: "info",
      msg: "dispatcher terminated MCP session and posted response to control plane",
      request_id: command!.request_id,
      session_id: "sess-1",
      status_code: 204,
      channel: "main",
      tunnel_request_id: `tsreq_${command!.request_id}`,
    });
    cp.assertNoViolations();
  });

  test("stdio-style 405 and failures keep the response type", async (t) => {
    const { cp, backend, deliver } = await setup(t);
    const answers = [
      { kind: "terminated" as const, status: 405, headers: {} },
      { kind: "failure" as const, failure: { source: "timeout" as const, kind: "timeout" as const } },
    ];
    backend.onTerminate = async () => answers.shift()!;
    const [a, b] = await deliver({ command_type: "session_termination" }, { command_type: "session_termination" });
    assert.equal((await cp.waitForFinal(a!.request_id)).payload.resp_code, 405);
    const failed = await cp.waitForFinal(b!.request_id);
    assert.deepEqual(
      [failed.respType, failed.payload.resp_code, failed.payload.resp_json],
      ["session_termination_response", 504, undefined],
    );
    cp.assertNoViolations();
  });
});

describe("dispatcher: channels", () => {
  test("an unknown channel is answered 400 with a -32603 naming it; no backend is called", async (t) => {
    const { cp, backend, deliver, report } = await setup(t);
    const [command] = await deliver({ channel: "docs", jsonrpc: call("q") });
    const final = await cp.waitForFinal(command!.request_id);
    assert.equal(final.respType, "jsonrpc_response");
    assert.equal(final.payload.resp_code, 400);
    assert.equal(final.payload.channel, "docs");
    const message = final.payload.resp_json as { id: unknown; error: { code: number; message: string } };
    assert.equal(message.id, "q");
    assert.equal(message.error.code, -32603);
    assert.match(message.error.message, /^unknown channel "docs"/);
    assert.equal(backend.exchanges.length, 0);
    assert.equal((await report(command!.request_id)).outcome, "unroutable");
    cp.assertNoViolations();
  });

  test("an invalid channel name is answered 400 and not echoed (the service would reject it)", async (t) => {
    const { cp, backend, deliver } = await setup(t);
    const [command] = await deliver({ channel: "Bad Channel!", jsonrpc: call(1) });
    const final = await cp.waitForFinal(command!.request_id);
    assert.equal(final.payload.resp_code, 400);
    assert.equal("channel" in final.payload, false);
    assert.match(
      (final.payload.resp_json as { error: { message: string } }).error.message,
      /^invalid channel "Bad Channel!"/,
    );
    assert.equal(backend.exchanges.length, 0);
    cp.assertNoViolations();
  });

  test("a notification on an unknown channel gets the same error with id null; a termination gets session_termination_response 400, no body", async (t) => {
    const { cp, deliver } = await setup(t);
    const [note, end] = await deliver(
      { channel: "docs", jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" } },
      { channel: "docs", command_type: "session_termination" },
    );
    const noted = await cp.waitForFinal(note!.request_id);
    assert.deepEqual([noted.respType, noted.payload.resp_code], ["jsonrpc_response", 400]);
    assert.equal((noted.payload.resp_json as { id: unknown }).id, null);
    const ended = await cp.waitForFinal(end!.request_id);
    assert.deepEqual(
      [ended.respType, ended.payload.resp_code, ended.payload.resp_json],
      ["session_termination_response", 400, undefined],
    );
    cp.assertNoViolations();
  });

  test("each channel goes to its own backend", async (t) => {
    const main = createTestBackend("main-server");
    const docs = createTestBackend("docs-server");
    const { cp, deliver, report } = await setup(t, { served: { main, docs } });
    const [a, b] = await deliver({ channel: "docs", jsonrpc: call(1) }, { jsonrpc: call(2) });
    await cp.waitForFinal(a!.request_id);
    await cp.waitForFinal(b!.request_id);
    assert.deepEqual([main.exchanges.length, docs.exchanges.length], [1, 1]);
    assert.equal((await report(a!.request_id)).backend, "docs-server");
  });
});

describe("dispatcher: commands it must not run", () => {
  test("unknown command types and malformed commands are logged with their request id; nothing is posted; the rest runs", async (t) => {
    const { cp, backend, deliverRaw, reports, capture } = await setup(t);
    await deliverRaw([
      { request_id: "req_future", command_type: "telepathy", jsonrpc: call(1) },
      { request_id: "req_broken", command_type: "jsonrpc", jsonrpc: "not an object" as never },
      { request_id: "req_fine", jsonrpc: call(2) },
    ]);
    await cp.waitForFinal("req_fine");
    assert.equal(backend.exchanges.length, 1);
    assert.deepEqual(
      cp.responses.map((r) => r.requestId),
      ["req_fine"],
    );
    assert.deepEqual(
      reports.filter((r) => r.outcome === "ignored").map((r) => r.requestId),
      ["req_future", "req_broken"],
    );
    assert.match(capture.text(), /unknown type.*req_future.*telepathy/);
    assert.match(capture.text(), /malformed.*req_broken/);
    cp.assertNoViolations();
  });

  test("the same request_id delivered again while in flight, or just after, runs once", async (t) => {
    const { cp, backend, deliverRaw, capture } = await setup(t);
    const gate = createGate();
    backend.onExchange = async ({ message }) => {
      await gate.promise;
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
    const twin = { request_id: "req_twin", shard_token: "shard-twin", jsonrpc: call(1) };
    await deliverRaw([twin, twin]);
    await deliverRaw([twin]);
    gate.open();
    await cp.waitForFinal("req_twin");
    await deliverRaw([twin]);
    await settle();
    assert.equal(backend.exchanges.length, 1);
    assert.equal(cp.responsesFor("req_twin").length, 1);
    assert.equal(capture.records.filter((r) => /repeated delivery/.test(r.msg)).length, 3);
    cp.assertNoViolations();
  });
});

describe("dispatcher: deadlines", () => {
  test("a command already expired on arrival (0s) is dropped silently", async (t) => {
    const { cp, backend, deliver, reports } = await setup(t);
    const [command] = await deliver({ jsonrpc: call(1), response_timeout: "0s" });
    assert.equal(backend.exchanges.length, 0);
    assert.deepEqual(
      reports.map((r) => [r.requestId, r.outcome]),
      [[command!.request_id, "expired"]],
    );
    assert.equal(cp.responses.length, 0);
  });

  test("a malformed response_timeout means no deadline", async (t) => {
    const { cp, backend, deliver, clock } = await setup(t);
    const [command] = await deliver({ jsonrpc: call(1), response_timeout: "1m30s" });
    await clock.advance(10 * 60_000);
    const final = await cp.waitForFinal(command!.request_id);
    assert.equal(final.respType, "jsonrpc_response", "answered, not expired");
    assert.equal(backend.exchanges.length, 1);
  });

  test("expiring during work aborts the exchange and posts nothing, even when the backend answers late; progress does not extend it", async (t) => {
    const { cp, backend, deliver, clock, report } = await setup(t);
    const started = createGate<McpExchange>();
    const finish = createGate();
    backend.onExchange = async (exchange) => {
      started.open(exchange);
      await finish.promise;
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: 1, result: {} } };
    };
    const [command] = await deliver({ jsonrpc: call(1), response_timeout: "1s" });
    const exchange = await started.promise;
    await clock.advance(900);
    exchange.notify({ jsonrpc: "2.0", method: "notifications/progress", params: { progress: 1 } }, {});
    await cp.waitFor(() => cp.responses.length === 1, 30_000, "the progress notify");
    assert.equal(exchange.signal.aborted, false);
    await clock.advance(100);
    await aborted(exchange.signal);
    assert.equal((await report(command!.request_id)).outcome, "expired");
    exchange.notify({ jsonrpc: "2.0", method: "notifications/progress", params: { progress: 2 } }, {});
    finish.open();
    await settle();
    assert.deepEqual(
      cp.responsesFor(command!.request_id).map((r) => r.respType),
      ["jsonrpc_notify"],
    );
    cp.assertNoViolations();
  });

  test("a command that expires while queued is dropped without reaching the backend", async (t) => {
    const { cp, backend, deliver, clock, report, dispatcher } = await setup(t, { maxConcurrent: 1 });
    const gate = createGate();
    backend.onExchange = async ({ message }) => {
      await gate.promise;
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
    const [slow, waiting] = await deliver({ jsonrpc: call(1) }, { jsonrpc: call(2), response_timeout: "2s" });
    assert.deepEqual([dispatcher.stats().running, dispatcher.stats().queued], [1, 1]);
    await clock.advance(2_000);
    assert.equal((await report(waiting!.request_id)).outcome, "expired");
    gate.open();
    await cp.waitForFinal(slow!.request_id);
    assert.equal(backend.exchanges.length, 1);
    assert.equal(cp.responsesFor(waiting!.request_id).length, 0);
  });

  test("mcp.connection_max_ttl (maxCommandMs) bounds a command without response_timeout, and a shorter response_timeout still wins", async (t) => {
    const { backend, deliver, clock, report } = await setup(t, { maxCommandMs: 5_000 });
    backend.onExchange = async ({ message, signal }) => {
      await aborted(signal);
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
    const [open, short] = await deliver({ jsonrpc: call(1) }, { jsonrpc: call(2), response_timeout: "2s" });
    await eventually(() => backend.exchanges.length === 2, 30_000, "both exchanges");
    await clock.advance(2_000);
    assert.equal((await report(short!.request_id)).outcome, "expired");
    await clock.advance(2_999);
    assert.equal(backend.exchanges[0]!.signal.aborted, false, "not before the TTL");
    await clock.advance(1);
    assert.equal((await report(open!.request_id)).outcome, "expired");
  });

  test("the deadline counts from the poll's receipt, not from when work starts", async (t) => {
    const { cp, backend, deliver, clock, report } = await setup(t, { maxConcurrent: 1 });
    const gate = createGate();
    let calls = 0;
    backend.onExchange = async ({ message, signal }) => {
      if (++calls === 1) await gate.promise;
      else await aborted(signal);
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
    const [, second] = await deliver({ jsonrpc: call(1) }, { jsonrpc: call(2), response_timeout: "3s" });
    await clock.advance(2_000);
    gate.open();
    await eventually(() => backend.exchanges.length === 2, 30_000, "the second exchange");
    await clock.advance(1_000);
    assert.equal((await report(second!.request_id)).outcome, "expired");
    await cp.waitForFinal(cp.responses[0]!.requestId);
  });
});

describe("dispatcher: airlock_cancel (hub extension)", () => {
  test("aborts the named command in flight and posts nothing for either", async (t) => {
    const { cp, backend, deliver, deliverRaw, report } = await setup(t);
    const started = createGate<McpExchange>();
    backend.onExchange = async (exchange) => {
      started.open(exchange);
      await aborted(exchange.signal);
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: 1, result: {} } };
    };
    const [command] = await deliver({ jsonrpc: call(1) });
    const exchange = await started.promise;
    await deliverRaw([
      {
        request_id: "cancel-1",
        shard_token: "s",
        created_at: new Date().toISOString(),
        command_type: "airlock_cancel",
        cancel_request_id: command!.request_id,
        reason: "client_disconnected",
      },
    ]);
    await aborted(exchange.signal);
    assert.equal((await report(command!.request_id)).outcome, "cancelled");
    await settle();
    assert.deepEqual(cp.responsesFor(command!.request_id), []);
    assert.deepEqual(cp.responsesFor("cancel-1"), []);
  });

  test("a cancel that arrives before its command keeps the command from ever running", async (t) => {
    const { backend, deliverRaw, deliver, report } = await setup(t);
    await deliverRaw([
      {
        request_id: "cancel-2",
        shard_token: "s",
        created_at: new Date().toISOString(),
        command_type: "airlock_cancel",
        cancel_request_id: "late-1",
      },
    ]);
    await deliver({ request_id: "late-1", jsonrpc: call(2) });
    const [other] = await deliver({ jsonrpc: call(3) });
    await report(other!.request_id);
    assert.deepEqual(
      backend.exchanges.map((e) => e.message.id),
      [3],
    );
  });
});

describe("dispatcher: a request the client cancelled", () => {
  test("posts nothing after the server messages that came before, and frees its slot at once", async (t) => {
    const { cp, backend, deliver, dispatcher, report } = await setup(t, { maxInflight: 1 });
    backend.onExchange = async ({ message, notify }) => {
      if (message.id !== 9) return { kind: "ack", status: 202, headers: {} };
      notify({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } }, {});
      return { kind: "cancelled" };
    };
    const [command] = await deliver({ jsonrpc: call(9) });
    assert.equal((await report(command!.request_id)).outcome, "cancelled");
    assert.equal(dispatcher.freeSlots(), 1);
    await eventually(() => cp.responsesFor(command!.request_id).length === 1, 30_000, "the progress notify");
    await settle();
    assert.deepEqual(
      cp.responsesFor(command!.request_id).map((r) => r.respType),
      ["jsonrpc_notify"],
      "no final answer",
    );
    cp.assertNoViolations();
  });
});

/** An `airlock_stream_open` command as the hub sends it. */
const streamOpen = (headers: Record<string, string[]> = {}) => ({ command_type: "airlock_stream_open", headers });

/** A backend stream that opens, sends `messages`, and stays open until its signal aborts (recorded). */
function holdingStream(opened: McpStream[], messages: unknown[] = []) {
  return async (stream: McpStream): Promise<StreamResult> => {
    opened.push(stream);
    stream.opened({ "Content-Type": ["text/event-stream"], "Mcp-Session-Id": ["s-1"] });
    for (const message of messages) stream.notify(message as McpExchange["message"]);
    await aborted(stream.signal);
    return { kind: "ended" };
  };
}

/** A 2026-07-28 subscriptions/listen: it lives like a standalone stream. */
const LISTEN = {
  jsonrpc: "2.0",
  id: "listen-1",
  method: "subscriptions/listen",
  params: {
    notifications: { toolsListChanged: true },
    _meta: {
      "io.modelcontextprotocol/protocolVersion": "2026-07-28",
      "io.modelcontextprotocol/clientCapabilities": {},
      "io.modelcontextprotocol/clientInfo": { name: "listener", version: "1" },
    },
  },
};

describe("dispatcher: standalone streams (airlock_stream_open)", () => {
  test("open signal without resp_json, one notify per message, notify_ack at the end; no deadline and no worker slot", async (t) => {
    const { cp, backend, deliver, dispatcher, clock, report } = await setup(t, { maxInflight: 1, maxConcurrent: 1 });
    const end = createGate();
    let headers: unknown;
    backend.openStream = async (stream) => {
      headers = stream.headers;
      stream.opened({ "Content-Type": ["text/event-stream"], "X-Dropped": ["not on the allowlist"] });
      stream.notify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "one" } });
      stream.notify({ jsonrpc: "2.0", id: 5, method: "roots/list" });
      await end.promise;
      return { kind: "ended" };
    };
    const [command] = await deliver({
      ...streamOpen({ "Mcp-Session-Id": ["s-1"], "Last-Event-ID": ["e-4"] }),
      response_timeout: "1s",
    });
    await eventually(
      () => cp.responsesFor(command!.request_id).length === 3,
      5_000,
      "the open signal and two messages",
    );
    assert.deepEqual(headers, { "Mcp-Session-Id": ["s-1"], "Last-Event-ID": ["e-4"] });
    assert.deepEqual(
      cp.responsesFor(command!.request_id).map((r) => r.payload),
      [
        {
          request_id: command!.request_id,
          channel: "main",
          resp_headers: { "Content-Type": ["text/event-stream"] },
          resp_code: 200,
          resp_type: "jsonrpc_notify",
        },
        {
          request_id: command!.request_id,
          channel: "main",
          resp_json: { jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "one" } },
          resp_headers: {},
          resp_code: 200,
          resp_type: "jsonrpc_notify",
        },
        {
          request_id: command!.request_id,
          channel: "main",
          resp_json: { jsonrpc: "2.0", id: 5, method: "roots/list" },
          resp_headers: {},
          resp_code: 200,
          resp_type: "jsonrpc_notify",
        },
      ],
    );
    // A deadline in the command is ignored, and the stream leaves the one slot and the one worker free.
    await clock.advance(5_000);
    assert.deepEqual([dispatcher.freeSlots(), dispatcher.stats().streams], [1, 1]);
    const [other] = await deliver({ jsonrpc: call(1) });
    assert.equal((await cp.waitForFinal(other!.request_id)).respType, "jsonrpc_response");
    end.open();
    const final = await cp.waitForFinal(command!.request_id);
    assert.deepEqual(final.payload, {
      request_id: command!.request_id,
      channel: "main",
      resp_headers: {},
      resp_code: 200,
      resp_type: "notify_ack",
    });
    const { durationMs: _, ...rest } = await report(command!.request_id);
    assert.deepEqual(rest, {
      requestId: command!.request_id,
      channel: "main",
      method: "airlock_stream_open",
      backend: "alpha",
      outcome: "ok",
      respCode: 200,
      commandType: "airlock_stream_open",
      createdAt: command!.created_at,
    });
    assert.equal(dispatcher.stats().streams, 0);
    cp.assertNoViolations();
  });

  test("a 2026-07-28 subscriptions/listen runs like a stream: no deadline and no worker slot", async (t) => {
    const { cp, backend, deliver, dispatcher, clock } = await setup(t, { maxInflight: 1, maxConcurrent: 1 });
    const end = createGate();
    backend.onExchange = async (exchange) => {
      if (exchange.message.method !== "subscriptions/listen") return { kind: "ack", status: 202, headers: {} };
      exchange.notify({ jsonrpc: "2.0", method: "notifications/subscriptions/acknowledged" }, {});
      await Promise.race([end.promise, aborted(exchange.signal)]);
      const result = { resultType: "complete" };
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: "listen-1", result } };
    };
    const [command] = await deliver({ jsonrpc: LISTEN, response_timeout: "1s" });
    await eventually(() => cp.responsesFor(command!.request_id).length === 1, 30_000, "the acknowledgement");
    // Past its response_timeout, and the one slot and the one worker are free for a call.
    await clock.advance(5_000);
    assert.deepEqual([dispatcher.freeSlots(), dispatcher.stats().streams], [1, 1]);
    const [other] = await deliver({ jsonrpc: { jsonrpc: "2.0", id: 2, method: "ping" } });
    assert.equal((await cp.waitForFinal(other!.request_id)).respType, "notify_ack");
    end.open();
    assert.equal((await cp.waitForFinal(command!.request_id)).respType, "jsonrpc_response");
    await eventually(() => dispatcher.stats().streams === 0, 30_000, "the listen leaves the streams");
    cp.assertNoViolations();
  });

  test("a listen whose messages the control plane stopped taking is ended, and says so with its final answer", async (t) => {
    const { cp, backend, deliver, dispatcher } = await setup(t);
    const more = createGate();
    let ended: AbortSignal | undefined;
    backend.onExchange = async (exchange) => {
      exchange.notify({ jsonrpc: "2.0", method: "notifications/subscriptions/acknowledged" }, {});
      await more.promise;
      exchange.notify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }, {});
      await aborted(exchange.signal);
      ended = exchange.signal;
      const result = { resultType: "complete" };
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: "listen-2", result } };
    };
    cp.scriptResponse({ status: 503 }, { respType: "jsonrpc_notify" });
    const [command] = await deliver({ jsonrpc: { ...LISTEN, id: "listen-2" } });
    await eventually(
      () => cp.responsesFor(command!.request_id).some((r) => r.status === 503),
      5_000,
      "the failed post",
    );
    more.open();
    assert.equal((await cp.waitForFinal(command!.request_id)).respType, "jsonrpc_response");
    assert.equal(ended?.aborted, true, "the backend was told to end the listen");
    await eventually(() => dispatcher.stats().streams === 0, 30_000, "the listen leaves the streams");
  });

  test("a stream that never opens gets the backend's status: 405 without a stream, a refusal's status and JSON-RPC error, a failure's -32603", async (t) => {
    const plain = createTestBackend("plain");
    const refusing = createTestBackend("refusing");
    const error = { jsonrpc: "2.0", id: null, error: { code: -32001, message: "Session not found" } };
    refusing.openStream = async () => ({
      kind: "refused",
      status: 404,
      headers: { "Content-Type": ["application/json"] },
      message: error,
    });
    const down = createTestBackend("down");
    down.openStream = async () => ({ kind: "failure", failure: { source: "connect", kind: "connection_refused" } });
    const { cp, deliver } = await setup(t, { served: { main: plain, other: refusing, third: down } });
    const [none, refused, failed] = await deliver(
      streamOpen(),
      { ...streamOpen(), channel: "other" },
      { ...streamOpen(), channel: "third" },
    );
    assert.deepEqual((await cp.waitForFinal(none!.request_id)).payload, {
      request_id: none!.request_id,
      channel: "main",
      resp_headers: {},
      resp_code: 405,
      resp_type: "notify_ack",
    });
    assert.deepEqual((await cp.waitForFinal(refused!.request_id)).payload, {
      request_id: refused!.request_id,
      channel: "other",
      resp_json: error,
      resp_headers: { "Content-Type": ["application/json"] },
      resp_code: 404,
      resp_type: "jsonrpc_response",
    });
    const failure = await cp.waitForFinal(failed!.request_id);
    assert.deepEqual(
      [failure.payload.resp_code, failure.payload.resp_json],
      [502, failureMessage(null, { source: "connect", kind: "connection_refused" })],
    );
    for (const command of [none, refused, failed]) assert.equal(cp.responsesFor(command!.request_id).length, 1);
    cp.assertNoViolations();
  });

  test("airlock_cancel closes the stream; nothing more is posted", async (t) => {
    const { cp, backend, deliver, deliverRaw, dispatcher, report } = await setup(t);
    const opened: McpStream[] = [];
    backend.openStream = holdingStream(opened);
    const [command] = await deliver(streamOpen());
    await eventually(() => cp.responsesFor(command!.request_id).length === 1, 30_000, "the open signal");
    await deliverRaw([
      {
        request_id: "cancel-s",
        shard_token: "s",
        created_at: new Date().toISOString(),
        command_type: "airlock_cancel",
        cancel_request_id: command!.request_id,
        reason: "client_disconnected",
      },
    ]);
    await aborted(opened[0]!.signal);
    assert.equal((await report(command!.request_id)).outcome, "cancelled");
    await settle();
    assert.deepEqual(
      cp.responsesFor(command!.request_id).map((r) => r.respType),
      ["jsonrpc_notify"],
    );
    assert.equal(dispatcher.stats().streams, 0);
  });

  test("one stream beyond maxStreams ends the oldest; drain ends the rest, and both say so with notify_ack", async (t) => {
    const { cp, backend, deliver, dispatcher, report } = await setup(t, { maxStreams: 1 });
    const opened: McpStream[] = [];
    backend.openStream = holdingStream(opened);
    const [oldest] = await deliver(streamOpen());
    await eventually(() => opened.length === 1, 30_000, "the first stream");
    const [newest] = await deliver(streamOpen());
    await aborted(opened[0]!.signal);
    assert.equal((await cp.waitForFinal(oldest!.request_id)).respType, "notify_ack");
    assert.equal((await report(oldest!.request_id)).outcome, "ok");
    await eventually(() => opened.length === 2, 30_000, "the second stream");
    assert.equal(opened[1]!.signal.aborted, false);
    await dispatcher.drain(5_000);
    assert.equal(opened[1]!.signal.aborted, true);
    assert.deepEqual(
      cp.responsesFor(newest!.request_id).map((r) => r.respType),
      ["jsonrpc_notify", "notify_ack"],
    );
    cp.assertNoViolations();
  });
});

describe("dispatcher: capacity and shutdown", () => {
  test("queued + running never exceed maxInflight; whenSlotFree wakes when one finishes", async (t) => {
    const { cp, backend, deliver, dispatcher, queue } = await setup(t, { maxInflight: 3, maxConcurrent: 2 });
    const gates = [createGate(), createGate(), createGate()];
    let n = 0;
    backend.onExchange = async ({ message }) => {
      await gates[n++]!.promise;
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
    assert.equal(dispatcher.freeSlots(), 3);
    const [first] = await deliver({ jsonrpc: call(1) }, { jsonrpc: call(2) }, { jsonrpc: call(3) });
    assert.deepEqual(dispatcher.stats(), {
      pending: 3,
      queued: 1,
      running: 2,
      maxInflight: 3,
      maxConcurrent: 2,
      streams: 0,
      maxStreams: 32,
      draining: false,
      remembered: 0,
    });
    assert.equal(dispatcher.freeSlots(), 0);
    let woke = false;
    const slot = dispatcher.whenSlotFree().then(() => {
      woke = true;
    });
    await settle();
    assert.equal(woke, false);
    gates[0]!.open();
    await slot;
    await cp.waitForFinal(first!.request_id);
    assert.equal(dispatcher.freeSlots(), 1);
    assert.deepEqual(queue.at(-1), [2, 2], "the queued one started");
    gates[1]!.open();
    gates[2]!.open();
    await eventually(() => dispatcher.stats().pending === 0, 30_000, "all done");
  });

  test("whenSlotFree returns when its signal aborts", async (t) => {
    const { backend, deliver, dispatcher } = await setup(t, { maxInflight: 1 });
    backend.onExchange = async ({ signal }) => {
      await aborted(signal);
      return { kind: "ack", status: 202, headers: {} };
    };
    await deliver({ jsonrpc: call(1) });
    const controller = new AbortController();
    const waiting = dispatcher.whenSlotFree(controller.signal);
    controller.abort();
    await waiting;
    assert.equal(dispatcher.freeSlots(), 0);
  });

  test("every command of a poll answer is taken, even beyond the free slots", async (t) => {
    const { cp, deliverRaw, dispatcher } = await setup(t, { maxInflight: 2 });
    const commands = Array.from({ length: 6 }, (_, i) => ({ request_id: `req_over_${i}`, jsonrpc: call(i) }));
    await deliverRaw(commands);
    assert.equal(dispatcher.freeSlots(), 0);
    for (const command of commands) await cp.waitForFinal(command.request_id);
    await eventually(() => dispatcher.freeSlots() === 2, 30_000, "all slots free again");
    cp.assertNoViolations();
  });

  test("drain lets work finish within the grace period, then abandons the rest without posting", async (t) => {
    const { cp, backend, deliver, dispatcher, clock, report } = await setup(t);
    const quick = createGate();
    const stuck: AbortSignal[] = [];
    backend.onExchange = async ({ message, signal }) => {
      if (message.id === "quick") await quick.promise;
      else {
        stuck.push(signal);
        await aborted(signal);
      }
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
    const [done, abandoned] = await deliver({ jsonrpc: call("quick") }, { jsonrpc: call("slow") });
    await eventually(() => stuck.length === 1, 30_000, "the slow exchange");
    let drained = false;
    const draining = dispatcher.drain(5_000).then(() => {
      drained = true;
    });
    assert.equal(dispatcher.freeSlots(), 0);
    assert.equal(dispatcher.stats().draining, true);
    quick.open();
    await cp.waitForFinal(done!.request_id);
    assert.equal(drained, false);
    await clock.advance(5_000);
    await draining;
    assert.equal(stuck[0]!.aborted, true);
    assert.equal((await report(abandoned!.request_id)).outcome, "undelivered");
    await settle();
    assert.equal(cp.responsesFor(abandoned!.request_id).length, 0);
    const [late] = await deliver({ jsonrpc: call("late") });
    assert.equal(backend.exchanges.length, 2, "nothing is accepted after drain started");
    assert.equal((await report(late!.request_id)).outcome, "undelivered");
    cp.assertNoViolations();
  });

  test("drain with nothing in flight resolves at once", async (t) => {
    const { dispatcher } = await setup(t);
    await dispatcher.drain(60_000);
    assert.equal(dispatcher.freeSlots(), 0);
  });
});

describe("describeCall", () => {
  test("names the method and the tool, prompt or resource", () => {
    assert.deepEqual(describeCall(call(1, "search")), { method: "tools/call", target: "search" });
    assert.deepEqual(describeCall({ jsonrpc: "2.0", id: 1, method: "prompts/get", params: { name: "p" } }), {
      method: "prompts/get",
      target: "p",
    });
    assert.deepEqual(describeCall({ jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri: "file:///a" } }), {
      method: "resources/read",
      target: "file:///a",
    });
    assert.deepEqual(describeCall({ jsonrpc: "2.0", id: 1, method: "tools/list" }), { method: "tools/list" });
    assert.deepEqual(describeCall({ jsonrpc: "2.0", id: 1, result: {} }), {});
  });
});

describe("dispatcher: memory", () => {
  test("many calls through a real stdio server leave nothing behind: no command pending, nothing in flight, request ids forgotten after the dedupe window", async (t) => {
    const stdio = createStdioBackend({
      name: "everything",
      command: everythingStdioCommand(),
      cwd: REPO_ROOT,
      log: silentLogger,
    });
    t.after(() => stdio.close());
    await stdio.start();
    const { cp, clock, dispatcher, deliver } = await setup(t, { served: { main: stdio }, dedupeWindowMs: 60_000 });
    const echo = (n: number) => ({
      jsonrpc: {
        jsonrpc: "2.0",
        id: n,
        method: "tools/call",
        params: { name: "echo", arguments: { message: `m${n}` } },
      },
    });
    const rounds = 10;
    const perRound = 20;
    for (let round = 0; round < rounds; round++) {
      const batch = Array.from({ length: perRound }, (_, i) => echo(round * perRound + i));
      const commands = await deliver(...batch);
      for (const command of commands) {
        const final = await cp.waitForFinal(command.request_id);
        assert.match(JSON.stringify(final), /Echo: m\d+/);
      }
    }
    await eventually(() => dispatcher.stats().pending === 0, 30_000, "every command finished");
    assert.equal(dispatcher.stats().streams, 0);
    assert.equal(stdio.health().inflight, 0, "nothing waits at the backend");
    assert.equal(dispatcher.stats().remembered, rounds * perRound, "ids are kept for the dedupe window");
    await clock.advance(60_000);
    dispatcher.submit([], clock.now());
    assert.equal(dispatcher.stats().remembered, 0, "and forgotten after it");
  });
});
