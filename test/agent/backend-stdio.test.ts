import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import type { StdioBackendOptions } from "../../agent/backends/stdio.ts";
import type { Backend, ExchangeResult, StreamResult } from "../../agent/backends/types.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { silentLogger } from "../../shared/log.ts";
import { tunnelFailure } from "../../shared/protocol/index.ts";
import { assertTunnelFailure } from "../support/openapi.ts";
import {
  REPO_ROOT,
  everythingStdioCommand,
  exchangeOf,
  fixtureServerCommand,
  processAlive,
  resultText,
  rpc,
} from "../support/everything.ts";

/** A backend whose children are recorded, closed by the test's `after`. */
function backendFor(
  t: { after(fn: () => Promise<void>): void },
  command: string[],
  extra: Partial<StdioBackendOptions> = {},
) {
  const children: ChildProcess[] = [];
  const backend = createStdioBackend({
    name: "stdio-test",
    command,
    cwd: REPO_ROOT,
    log: silentLogger,
    spawn: (program, args, options) => {
      const child = spawn(program, args, options);
      children.push(child);
      return child;
    },
    ...extra,
  });
  t.after(async () => {
    await backend.close();
    for (const child of children)
      assert.equal(child.pid !== undefined && processAlive(child.pid), false, `child ${child.pid} left behind`);
  });
  return { backend, children };
}

function assertFailure(result: ExchangeResult, source: string, kind?: string): void {
  assert.ok(result.kind === "failure", `expected a failure, got ${JSON.stringify(result)}`);
  assert.equal(result.failure.source, source, JSON.stringify(result));
  if (kind) assert.equal(result.failure.kind, kind, JSON.stringify(result));
  assertTunnelFailure(tunnelFailure(result.failure));
}

function response(result: ExchangeResult): JsonRpcMessage {
  assert.ok(result.kind === "response", `expected a response, got ${JSON.stringify(result)}`);
  return result.message;
}

/** Resolve once `check` holds, polling the backend's own state (no fixed sleeps). */
async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A standalone stream of `backend`, recording what it carries; `close()` ends it. */
function openStream(backend: Backend) {
  const controller = new AbortController();
  const stream = {
    headers: undefined as unknown,
    messages: [] as JsonRpcMessage[],
    ended: undefined as Promise<StreamResult> | undefined,
    close: () => controller.abort(),
  };
  stream.ended = backend.openStream!({
    headers: {},
    signal: controller.signal,
    opened: (headers) => {
      stream.headers = headers;
    },
    notify: (message) => {
      stream.messages.push(message);
    },
  });
  return stream;
}

async function handshake(backend: Backend, capabilities: Record<string, unknown> = {}): Promise<void> {
  const init = rpc.initialize("init");
  (init.params as { capabilities: unknown }).capabilities = capabilities;
  assert.equal(response(await backend.exchange(exchangeOf(init))).id, "init");
  const ack = await backend.exchange(exchangeOf(rpc.initialized()));
  assert.deepEqual(ack, { kind: "ack", status: 202, headers: {} });
}

describe("stdio backend against server-everything", () => {
  test("handshake, tools/list, echo, get-sum, progress and session termination", async (t) => {
    const { backend } = backendFor(t, everythingStdioCommand());
    await backend.start();
    await handshake(backend);
    assert.equal(backend.health().state, "up");

    const tools = response(await backend.exchange(exchangeOf(rpc.toolsList("t1"))));
    assert.equal(tools.id, "t1");
    assert.ok((tools.result as { tools: Array<{ name: string }> }).tools.some((tool) => tool.name === "echo"));
    assert.equal(
      resultText(response(await backend.exchange(exchangeOf(rpc.call(2, "echo", { message: "over stdio" }))))),
      "Echo: over stdio",
    );
    assert.equal(
      resultText(response(await backend.exchange(exchangeOf(rpc.call(3, "get-sum", { a: 2, b: 40 }))))),
      "The sum of 2 and 40 is 42.",
    );

    const long = exchangeOf(
      rpc.call(4, "trigger-long-running-operation", { duration: 0.2, steps: 2 }, { progressToken: "mine" }),
    );
    const done = response(await backend.exchange(long));
    assert.equal(done.id, 4);
    assert.deepEqual(
      long.notified.map((m) => m.params),
      [
        { progress: 1, total: 2, progressToken: "mine" },
        { progress: 2, total: 2, progressToken: "mine" },
      ],
    );

    assert.deepEqual(await backend.terminateSession({ "Mcp-Session-Id": ["x"] }, new AbortController().signal), {
      kind: "terminated",
      status: 405,
      headers: {},
    });
    assert.equal(
      resultText(response(await backend.exchange(exchangeOf(rpc.call(5, "echo", { message: "still here" }))))),
      "Echo: still here",
    );
  });

  test("20 concurrent calls from two clients with the same ids get their own answers", async (t) => {
    const { backend } = backendFor(t, everythingStdioCommand());
    await handshake(backend);
    const calls = Array.from({ length: 20 }, (_, i) => {
      const id = (i % 10) + 1; // clients A and B both use ids 1..10
      const client = i < 10 ? 100 : 200;
      return { a: client, b: i, exchange: exchangeOf(rpc.call(id, "get-sum", { a: client, b: i })) };
    });
    const results = await Promise.all(calls.map((c) => backend.exchange(c.exchange)));
    results.forEach((result, i) => {
      const call = calls[i]!;
      const message = response(result);
      assert.equal(message.id, (i % 10) + 1);
      assert.equal(resultText(message), `The sum of ${call.a} and ${call.b} is ${call.a + call.b}.`);
    });
    assert.equal(backend.health().inflight, 0);
  });

  test("two clients using the same request id and progress token each get their own progress", async (t) => {
    const { backend } = backendFor(t, everythingStdioCommand());
    await handshake(backend);
    const a = exchangeOf(
      rpc.call(1, "trigger-long-running-operation", { duration: 0.2, steps: 2 }, { progressToken: 1 }),
    );
    const b = exchangeOf(
      rpc.call(1, "trigger-long-running-operation", { duration: 0.3, steps: 3 }, { progressToken: 1 }),
    );
    const [ra, rb] = await Promise.all([backend.exchange(a), backend.exchange(b)]);
    assert.match(resultText(response(ra)) ?? "", /Steps: 2\./);
    assert.match(resultText(response(rb)) ?? "", /Steps: 3\./);
    // Other server notifications (list_changed after the handshake) may ride along on the newest exchange.
    const progress = (notified: JsonRpcMessage[]) =>
      notified
        .filter((m) => m.method === "notifications/progress")
        .map((m) => m.params as { progress: number; progressToken: unknown });
    assert.deepEqual(
      progress(a.notified).map((p) => p.progress),
      [1, 2],
    );
    assert.deepEqual(
      progress(b.notified).map((p) => p.progress),
      [1, 2, 3],
    );
    assert.ok([...progress(a.notified), ...progress(b.notified)].every((p) => p.progressToken === 1));
  });

  test("a JSON-RPC error from the server is forwarded exactly", async (t) => {
    const { backend } = backendFor(t, everythingStdioCommand());
    await handshake(backend);
    const result = await backend.exchange(
      exchangeOf({ jsonrpc: "2.0", id: "e-1", method: "no/such-method", params: {} }),
    );
    assert.deepEqual(result, {
      kind: "response",
      status: 200,
      headers: { "Content-Type": ["application/json"] },
      message: { jsonrpc: "2.0", id: "e-1", error: { code: -32601, message: "Method not found" } },
    });
  });

  test("a server→client request reaches the calling exchange and the client's answer goes back", async (t) => {
    const { backend } = backendFor(t, everythingStdioCommand());
    await handshake(backend, { sampling: {} });
    const call = exchangeOf(rpc.call("s1", "trigger-sampling-request", { prompt: "hello" }));
    let answered: Promise<ExchangeResult> | undefined;
    call.notify = (message) => {
      call.notified.push(message);
      if (message.method !== "sampling/createMessage") return;
      answered = backend.exchange(
        exchangeOf({
          jsonrpc: "2.0",
          id: message.id as number,
          result: {
            role: "assistant",
            content: { type: "text", text: "sampled!" },
            model: "test-model",
            stopReason: "endTurn",
          },
        }),
      );
    };
    const final = response(await backend.exchange(call));
    assert.equal(final.id, "s1");
    assert.match(resultText(final) ?? "", /sampled!/);
    assert.deepEqual(await answered, { kind: "ack", status: 202, headers: {} });
  });

  test("close() fails in-flight calls and leaves no child behind", async (t) => {
    const { backend, children } = backendFor(t, everythingStdioCommand());
    await handshake(backend);
    const long = backend.exchange(
      exchangeOf(rpc.call(9, "trigger-long-running-operation", { duration: 30, steps: 1 })),
    );
    await backend.close();
    assertFailure(await long, "transport_closed");
    assert.equal(backend.health().state, "stopped");
    assert.equal(children.length, 1);
    assert.equal(processAlive(children[0]!.pid!), false);
    assertFailure(await backend.exchange(exchangeOf(rpc.toolsList(1))), "transport_closed");
  });
});

describe("stdio backend supervision", () => {
  test("a crash fails the in-flight calls, the child restarts, replays initialize and serves again", async (t) => {
    const { backend, children } = backendFor(t, fixtureServerCommand(), { restart: { initialDelayMs: 20 } });
    await handshake(backend);
    const slow = backend.exchange(exchangeOf(rpc.call("slow", "slow-echo", { message: "x", ms: 5000 })));
    const crash = await backend.exchange(exchangeOf(rpc.call("boom", "crash", { code: 9 })));
    assertFailure(crash, "transport_closed", "connection_closed");
    assertFailure(await slow, "transport_closed");
    assert.match(backend.health().lastError ?? "", /exit code 9/);
    assert.ok(backend.health().stderrTail?.includes("fixture: crashing on purpose"));

    const after = response(await backend.exchange(exchangeOf(rpc.call("again", "echo", { message: "back" }))));
    assert.equal(resultText(after), "Echo: back");
    assert.equal(resultText(response(await backend.exchange(exchangeOf(rpc.call("who", "whoami"))))), "airlock-test");
    const health = backend.health();
    assert.equal(health.state, "up");
    assert.equal(health.restarts, 1);
    assert.equal(children.length, 2);
  });

  test("a crash-looping command ends up failed with its exit status and stderr in the reason", async (t) => {
    const command = ["node", "-e", "console.error('fatal: FOO_TOKEN is not set'); process.exit(7)"];
    const { backend } = backendFor(t, command, { restart: { initialDelayMs: 5, maxDelayMs: 20, crashLoopCount: 3 } });
    await backend.start();
    await waitFor("the crash loop", () => backend.health().state === "failed");
    const health = backend.health();
    assert.match(
      health.reason ?? "",
      /node exited 3 times within 60 s \(last: exit code 7\); last stderr: .*fatal: FOO_TOKEN is not set/,
    );
    assert.match(health.reason ?? "", /retrying every 60 s/);
    assert.equal(health.restarts, 2);
    assertFailure(await backend.exchange(exchangeOf(rpc.toolsList(1))), "transport_closed");
  });

  test("deaths spread wider than the window never make a crash loop", async (t) => {
    let clock = 0;
    const command = ["node", "-e", "process.exit(1)"];
    const { backend, children } = backendFor(t, command, {
      now: () => (clock += 61_000),
      restart: { initialDelayMs: 5, crashLoopCount: 2 },
    });
    await backend.start();
    await waitFor("four restarts", () => children.length >= 5);
    assert.notEqual(backend.health().state, "failed");
  });

  test("an aborted hung call ends, the server hears the cancellation, and the next call works", async (t) => {
    const { backend } = backendFor(t, fixtureServerCommand());
    await handshake(backend);
    const abort = new AbortController();
    const hung = backend.exchange(exchangeOf(rpc.call(1, "hang"), { signal: abort.signal }));
    await waitFor("the hang to start", () => backend.health().stderrTail?.includes("fixture: hang started") ?? false);
    abort.abort();
    assertFailure(await hung, "timeout");
    await waitFor(
      "the cancellation",
      () => backend.health().stderrTail?.some((l) => l.startsWith("fixture: hang cancelled")) ?? false,
    );
    assert.equal(
      resultText(response(await backend.exchange(exchangeOf(rpc.call(1, "echo", { message: "next" }))))),
      "Echo: next",
    );
    assert.equal(backend.health().inflight, 0);
  });

  test("a client's notifications/cancelled reaches the server under the remapped id", async (t) => {
    const { backend } = backendFor(t, fixtureServerCommand());
    await handshake(backend);
    const other = backend.exchange(exchangeOf(rpc.call(500, "slow-echo", { message: "unrelated", ms: 300 })));
    const hung = backend.exchange(exchangeOf(rpc.call(77, "hang")));
    await waitFor("the hang to start", () => backend.health().stderrTail?.includes("fixture: hang started") ?? false);
    const cancel = await backend.exchange(
      exchangeOf({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 77, reason: "user" } }),
    );
    assert.deepEqual(cancel, { kind: "ack", status: 202, headers: {} });
    // Nothing is posted for it: a server honouring the cancellation answers nothing either.
    assert.deepEqual(await hung, { kind: "cancelled" });
    await waitFor(
      "the cancellation",
      () => backend.health().stderrTail?.some((l) => /^fixture: hang cancelled \(request \d+\)$/.test(l)) ?? false,
    );
    const line = backend.health().stderrTail!.find((l) => l.startsWith("fixture: hang cancelled"))!;
    assert.notEqual(line, "fixture: hang cancelled (request 77)", "the client's id must be remapped");
    assert.equal(resultText(response(await other)), "Echo: unrelated");
    // Cancelling an id nobody has in flight is dropped, never forwarded unmapped.
    assert.deepEqual(
      await backend.exchange(
        exchangeOf({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 3 } }),
      ),
      { kind: "ack", status: 202, headers: {} },
    );
  });

  test("with nothing in flight: an error answers a server request while no stream is open; then a notification reaches every stream, a request the newest, and its answer goes back", async (t) => {
    const { backend } = backendFor(t, fixtureServerCommand());
    await handshake(backend, { roots: {} });
    const stderr = (pattern: RegExp) => () => backend.health().stderrTail?.some((l) => pattern.test(l)) ?? false;
    await backend.exchange(exchangeOf(rpc.call(1, "later", { ms: 30, send: "roots" })));
    await waitFor("the error answer", stderr(/^fixture: roots failed: .*no MCP client request or stream is open/));

    const [older, newer] = [openStream(backend), openStream(backend)];
    assert.deepEqual(newer.headers, { "Content-Type": ["text/event-stream"] });
    await backend.exchange(exchangeOf(rpc.call(2, "later", { ms: 30, send: "list_changed" })));
    const changed = { jsonrpc: "2.0", method: "notifications/tools/list_changed" };
    await waitFor("the notification on both streams", () => older.messages.length === 1 && newer.messages.length === 1);
    assert.deepEqual([older.messages, newer.messages], [[changed], [changed]]);

    await backend.exchange(exchangeOf(rpc.call(3, "later", { ms: 30, send: "roots" })));
    await waitFor("the roots request", () => newer.messages.length === 2);
    const request = newer.messages[1]!;
    assert.equal(request.method, "roots/list");
    assert.equal(older.messages.length, 1, "one client answers a server request");
    const ack = await backend.exchange(
      exchangeOf({
        jsonrpc: "2.0",
        id: request.id as number,
        result: { roots: [{ uri: "file:///srv", name: "srv" }] },
      }),
    );
    assert.deepEqual(ack, { kind: "ack", status: 202, headers: {} });
    await waitFor(
      "the server to get the answer",
      stderr(/^fixture: roots \[\{"uri":"file:\/\/\/srv","name":"srv"\}\]$/),
    );

    older.close();
    assert.deepEqual(await older.ended, { kind: "ended" });
    await backend.close();
    assert.deepEqual(await newer.ended, { kind: "ended" }, "closing the backend ends its streams");
  });

  test("a child that closes its stdin (EPIPE) is replaced without crashing the agent", async (t) => {
    const command = [
      "node",
      "-e",
      "require('fs').closeSync(0); console.error('stdin closed'); setInterval(() => {}, 1000)",
    ];
    const { backend, children } = backendFor(t, command, { restart: { initialDelayMs: 5 } });
    await backend.start();
    await waitFor("stdin to close", () => backend.health().stderrTail?.includes("stdin closed") ?? false);
    const big = rpc.call(1, "echo", { message: "x".repeat(1024 * 1024) });
    assertFailure(
      await backend.exchange(exchangeOf(big, { signal: AbortSignal.timeout(10_000) })),
      "transport_closed",
      "closed_pipe",
    );
    await waitFor("a replacement child", () => children.length >= 2);
  });

  test("non-JSON lines on stdout do not break the backend", async (t) => {
    const { backend } = backendFor(t, fixtureServerCommand("--garbage-banner"));
    await handshake(backend);
    assert.equal(
      resultText(response(await backend.exchange(exchangeOf(rpc.call(1, "garbage", { message: "fine" }))))),
      "Echo: fine",
    );
    assert.equal(
      resultText(response(await backend.exchange(exchangeOf(rpc.call(2, "echo", { message: "still fine" }))))),
      "Echo: still fine",
    );
    assert.equal(backend.health().state, "up");
  });

  test("a command that does not exist is a failed health with the errno, not an exception", async (t) => {
    const { backend } = backendFor(t, ["/nonexistent/airlock-mcp-server", "--stdio"]);
    await backend.start();
    await waitFor("the spawn failure", () => backend.health().state === "failed");
    assert.match(
      backend.health().reason ?? "",
      /could not start \/nonexistent\/airlock-mcp-server: ENOENT: command not found/,
    );
    assertFailure(await backend.exchange(exchangeOf(rpc.toolsList(1))), "connect", "dial");
    assert.deepEqual(await backend.exchange(exchangeOf(rpc.initialized())), {
      kind: "failure",
      failure: { source: "connect", kind: "dial" },
      detail: backend.health().reason,
    });
  });
});
