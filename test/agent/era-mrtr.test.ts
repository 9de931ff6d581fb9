/**
 * Multi round-trip requests and cancellation across the eras, in the agent's era bridge
 * (agent/bridge/mrtr.ts, legacy-rounds.ts) around real servers:
 * - a 2026-07-28 client of server-everything (legacy) over stdio and Streamable HTTP: its
 *   elicitation and sampling requests become `input_required` rounds, answered by retries;
 *   the SDK fixture (legacy, stdio) asks twice in one call; a client that never retries;
 * - a 2025 client of the SDK v2 fixture (`--modern-only`): its `input_required` rounds become
 *   server→client requests on the client's stream;
 * - cancellation each way: the modern client's stream closing reaches a legacy server as
 *   `notifications/cancelled`, a legacy client's `notifications/cancelled` aborts the modern call;
 * - both directions through a routing table (an aggregate with a member of the other era).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bridgeEras, type EraBridgeOptions } from "../../agent/bridge/backend.ts";
import { createHttpBackend } from "../../agent/backends/http.ts";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import type { Backend, ExchangeResult } from "../../agent/backends/types.ts";
import { isRequest, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import { silentLogger } from "../../shared/log.ts";
import {
  everythingStdioCommand,
  exchangeOf,
  fixtureServerCommand,
  modernStdioCommand,
  REPO_ROOT,
  startEverythingHttp,
  startModernHttp,
} from "../support/everything.ts";
import { spyBackend, startStdioRoutes } from "../support/routing.ts";

type After = { after(fn: () => Promise<void>): void };
const OPTIONS: EraBridgeOptions = { log: silentLogger };

function stdio(t: After, command: string[]): Backend {
  const backend = createStdioBackend({ name: "mrtr-test", command, cwd: REPO_ROOT, log: silentLogger });
  t.after(() => backend.close());
  return backend;
}

/** server-everything over `leg`, as the agent's backend. */
async function everything(t: After, leg: "stdio" | "http"): Promise<Backend> {
  if (leg === "stdio") return stdio(t, everythingStdioCommand());
  const server = await startEverythingHttp();
  t.after(() => server.close());
  const backend = createHttpBackend({ name: "mrtr-http", url: server.url, log: silentLogger });
  t.after(() => backend.close());
  return backend;
}

/** A modern request from a client that can answer elicitation and sampling. */
function modern(id: number, method: string, params: Record<string, unknown>): JsonRpcMessage {
  const _meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": { elicitation: {}, sampling: {} },
    "io.modelcontextprotocol/clientInfo": { name: "mrtr-test", version: "1.0.0" },
  };
  return { jsonrpc: "2.0", id, method, params: { ...params, _meta } };
}

function outcome(answer: ExchangeResult): Record<string, unknown> {
  assert.ok(answer.kind === "response", `expected a response, got ${JSON.stringify(answer)}`);
  return answer.message;
}

function result(answer: ExchangeResult): Record<string, unknown> {
  const message = outcome(answer);
  assert.ok("result" in message, `expected a result, got ${JSON.stringify(message)}`);
  return message.result as Record<string, unknown>;
}

/** The one input request of an `input_required` result, with its key and the state to echo. */
function oneQuestion(answer: ExchangeResult): {
  key: string;
  method: string;
  params: Record<string, unknown>;
  state: string;
} {
  const value = result(answer);
  assert.equal(value.resultType, "input_required", JSON.stringify(value));
  const entries = Object.entries(
    value.inputRequests as Record<string, { method: string; params: Record<string, unknown> }>,
  );
  assert.equal(entries.length, 1, JSON.stringify(value.inputRequests));
  assert.equal(typeof value.requestState, "string");
  const [key, request] = entries[0]!;
  return { key, method: request.method, params: request.params, state: value.requestState as string };
}

function text(value: Record<string, unknown>): string {
  return (value.content as Array<{ text?: string }>).map((c) => c.text ?? "").join("\n");
}

/** An `X-Airlock-Identity` naming `sub` (the bridge reads its claims; the hub signed and checked it). */
function identity(sub: string): string {
  const part = (value: unknown) => btoa(JSON.stringify(value)).replace(/=+$/, "");
  return `${part({ alg: "ES256" })}.${part({ iss: "https://hub.test", sub })}.signature`;
}

/** Wait for `check` (a child's stderr line, a count) — events without a hook of their own. */
async function until(what: string, check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 20) {
    if (waited > 20_000) assert.fail(`never happened: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const leg of ["stdio", "http"] as const) {
  test(`a modern client answers server-everything's elicitation (${leg}) through an input_required round`, async (t) => {
    const bridged = bridgeEras(await everything(t, leg), OPTIONS);
    const call = { name: "trigger-elicitation-request", arguments: {} };
    const asked = oneQuestion(await bridged.exchange(exchangeOf(modern(1, "tools/call", call))));
    assert.equal(asked.method, "elicitation/create");
    assert.equal(asked.params.message, "Please provide inputs for the following fields:");
    const answer = { action: "accept", content: { name: "Ada Lovelace", check: true } };
    const retry = modern(2, "tools/call", {
      ...call,
      inputResponses: { [asked.key]: answer },
      requestState: asked.state,
    });
    const final = await bridged.exchange(exchangeOf(retry));
    assert.equal(outcome(final).id, 2, "the final answer is the retry's");
    const value = result(final);
    assert.equal(value.resultType, "complete");
    assert.match(text(value), /- Name: Ada Lovelace/);
    assert.match(text(value), /- Agreed to terms: true/);

    // The state was used up: replaying it, or presenting it on another request, is refused.
    const replay = outcome(await bridged.exchange(exchangeOf({ ...retry, id: 3 })));
    assert.equal((replay.error as { code: number }).code, -32602);
    assert.match((replay.error as { message: string }).message, /holds no call for this requestState/);
  });

  test(`a modern client answers server-everything's sampling request (${leg}) through an input_required round`, async (t) => {
    const bridged = bridgeEras(await everything(t, leg), OPTIONS);
    const call = { name: "trigger-sampling-request", arguments: { prompt: "capital of France?", maxTokens: 20 } };
    const asked = oneQuestion(await bridged.exchange(exchangeOf(modern(1, "tools/call", call))));
    assert.equal(asked.method, "sampling/createMessage");
    assert.match(JSON.stringify(asked.params.messages), /capital of France\?/);
    const sampled = {
      role: "assistant",
      content: { type: "text", text: "Paris." },
      model: "test-model",
      stopReason: "endTurn",
    };
    const retry = modern(2, "tools/call", {
      ...call,
      inputResponses: { [asked.key]: sampled },
      requestState: asked.state,
    });
    const value = result(await bridged.exchange(exchangeOf(retry)));
    assert.equal(value.resultType, "complete");
    assert.match(text(value), /LLM sampling result/);
    assert.match(text(value), /Paris\./);
  });
}

test("a modern client answers server-everything's roots/list (stdio) through input_required rounds", async (t) => {
  const bridged = bridgeEras(await everything(t, "stdio"), OPTIONS);
  const roots = { roots: [{ uri: "file:///work/project", name: "project" }] };
  const withRoots = (id: number, params: Record<string, unknown>) => {
    const message = modern(id, "tools/call", params);
    const meta = (message.params as { _meta: Record<string, unknown> })._meta;
    meta["io.modelcontextprotocol/clientCapabilities"] = { roots: {} };
    return message;
  };
  const call = { name: "get-roots-list", arguments: {} };
  let answer = await bridged.exchange(exchangeOf(withRoots(1, call)));
  const methods: string[] = [];
  // The server may ask once from the tool and once from its own sync after initialize: answer each round.
  for (let id = 2; result(answer).resultType === "input_required"; id++) {
    const value = result(answer);
    const requests = value.inputRequests as Record<string, { method: string }>;
    methods.push(...Object.values(requests).map((r) => r.method));
    const inputResponses = Object.fromEntries(Object.keys(requests).map((key) => [key, roots]));
    answer = await bridged.exchange(
      exchangeOf(withRoots(id, { ...call, inputResponses, requestState: value.requestState })),
    );
  }
  assert.ok(methods.length >= 1 && methods.every((m) => m === "roots/list"), methods.join(","));
  assert.match(text(result(answer)), /1\. project\n {3}URI: file:\/\/\/work\/project/);
});

test("a legacy server asking twice in one call takes two rounds; a retry for another request is refused", async (t) => {
  const bridged = bridgeEras(stdio(t, fixtureServerCommand()), OPTIONS);
  const call = { name: "ask-twice", arguments: {} };
  const first = oneQuestion(await bridged.exchange(exchangeOf(modern(1, "tools/call", call))));
  assert.equal(first.params.message, "Your name?");

  const wrong = modern(2, "tools/call", { name: "echo", arguments: { message: "x" }, requestState: first.state });
  const refused = outcome(await bridged.exchange(exchangeOf(wrong)));
  assert.match((refused.error as { message: string }).message, /belongs to another request/);
  // The same retry from another user (the hub's signed identity names someone else) is refused too.
  const otherUser = modern(2, "tools/call", { ...call, inputResponses: {}, requestState: first.state });
  const headers = { "X-Airlock-Identity": [identity("mallory")] };
  const foreign = outcome(await bridged.exchange(exchangeOf(otherUser, { headers })));
  assert.match((foreign.error as { message: string }).message, /belongs to another request/);

  // A retry that leaves the question unanswered is asked it again.
  const again = oneQuestion(
    await bridged.exchange(
      exchangeOf(modern(3, "tools/call", { ...call, inputResponses: {}, requestState: first.state })),
    ),
  );
  assert.equal(again.key, first.key);
  const name = { [first.key]: { action: "accept", content: { name: "Ada" } } };
  const second = oneQuestion(
    await bridged.exchange(
      exchangeOf(modern(4, "tools/call", { ...call, inputResponses: name, requestState: again.state })),
    ),
  );
  assert.equal(second.params.message, "Greet Ada?");
  const ok = { [second.key]: { action: "accept", content: { ok: true } } };
  const value = result(
    await bridged.exchange(
      exchangeOf(modern(5, "tools/call", { ...call, inputResponses: ok, requestState: second.state })),
    ),
  );
  assert.equal(text(value), "Hello, Ada!");
});

test("a modern client that never retries: the waiting server request gets an error, and the call ends", async (t) => {
  const inner = stdio(t, fixtureServerCommand());
  const bridged = bridgeEras(inner, { ...OPTIONS, mrtr: { waitMs: 200 } });
  const asked = oneQuestion(
    await bridged.exchange(exchangeOf(modern(1, "tools/call", { name: "ask-twice", arguments: {} }))),
  );
  await until("the server's elicitation failed", () =>
    (inner.health().stderrTail ?? []).some((line) =>
      /ask-twice failed: .*did not retry with inputResponses/.test(line),
    ),
  );
  const late = modern(2, "tools/call", {
    name: "ask-twice",
    arguments: {},
    inputResponses: { [asked.key]: { action: "accept", content: { name: "late" } } },
    requestState: asked.state,
  });
  const refused = outcome(await bridged.exchange(exchangeOf(late)));
  assert.match((refused.error as { message: string }).message, /holds no call for this requestState/);
});

test("paused calls are bounded: past the limit the oldest ends, its server request answered with an error", async (t) => {
  const inner = stdio(t, fixtureServerCommand());
  const bridged = bridgeEras(inner, { ...OPTIONS, mrtr: { maxCalls: 1 } });
  const ask = (id: number) =>
    bridged.exchange(exchangeOf(modern(id, "tools/call", { name: "ask-twice", arguments: {} })));
  const first = oneQuestion(await ask(1));
  const second = oneQuestion(await ask(2));
  assert.notEqual(first.state, second.state);
  await until("the oldest call's elicitation failed", () =>
    (inner.health().stderrTail ?? []).some((line) => /ask-twice failed: .*more than 1 calls were waiting/.test(line)),
  );
  const retry = (id: number, asked: typeof first) =>
    bridged.exchange(
      exchangeOf(
        modern(id, "tools/call", {
          name: "ask-twice",
          arguments: {},
          inputResponses: { [asked.key]: { action: "decline" } },
          requestState: asked.state,
        }),
      ),
    );
  assert.match((outcome(await retry(3, first)).error as { message: string }).message, /holds no call/);
  const next = oneQuestion(await retry(4, second));
  assert.equal(next.params.message, "Greet nobody?", "the newer call goes on");
});

test("a modern client closing its stream cancels the legacy stdio server's work with notifications/cancelled", async (t) => {
  const inner = stdio(t, fixtureServerCommand());
  const bridged = bridgeEras(inner, OPTIONS);
  const stream = new AbortController();
  const call = bridged.exchange(
    exchangeOf(modern(1, "tools/call", { name: "hang", arguments: {} }), { signal: stream.signal }),
  );
  await until("hang started", () => (inner.health().stderrTail ?? []).includes("fixture: hang started"));
  stream.abort();
  assert.deepEqual(await call, { kind: "cancelled" });
  await until("the server saw the cancellation", () =>
    (inner.health().stderrTail ?? []).some((line) => line.startsWith("fixture: hang cancelled")),
  );
});

test("a modern client closing its stream reaches a legacy HTTP server as notifications/cancelled for the id it knows", async (t) => {
  const spy = spyBackend(await everything(t, "http"));
  const bridged = bridgeEras(spy, OPTIONS);
  const stream = new AbortController();
  const call = bridged.exchange(
    exchangeOf(
      modern(7, "tools/call", { name: "trigger-long-running-operation", arguments: { duration: 30, steps: 30 } }),
      {
        signal: stream.signal,
      },
    ),
  );
  await until("the call reached the server", () => spy.calls.some((c) => c.message.method === "tools/call"));
  stream.abort();
  assert.deepEqual(await call, { kind: "cancelled" });
  const forwarded = spy.calls.find((c) => c.message.method === "tools/call")!;
  await until("the notification was delivered", () =>
    spy.calls.some((c) => c.message.method === "notifications/cancelled" && c.result !== undefined),
  );
  const note = spy.calls.find((c) => c.message.method === "notifications/cancelled")!;
  assert.equal((note.message.params as { requestId: unknown }).requestId, forwarded.message.id);
  assert.equal(headerValue(note.headers, "mcp-session-id"), headerValue(forwarded.headers, "mcp-session-id"));
  assert.deepEqual(
    note.result && { kind: note.result.kind, status: "status" in note.result ? note.result.status : 0 },
    {
      kind: "ack",
      status: 202,
    },
  );
});

/** A legacy client's session with the bridge: `initialize` declaring elicitation, then its headers. */
async function legacySession(bridged: Backend): Promise<HeaderMap> {
  const init = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: {
      protocolVersion: "2025-06-18",
      capabilities: { elicitation: {} },
      clientInfo: { name: "v1", version: "1" },
    },
  };
  const answer = await bridged.exchange(exchangeOf(init));
  result(answer);
  const session = answer.kind === "response" ? headerValue(answer.headers, "mcp-session-id") : undefined;
  assert.ok(session, "the bridge minted a session");
  return { "Mcp-Session-Id": [session] };
}

/**
 * A legacy client's call whose server→client requests are answered by `answer` (posted back
 * as the client's JSON-RPC response, as through the hub), recording the questions.
 */
async function callAnswering(
  bridged: Backend,
  headers: HeaderMap,
  message: JsonRpcMessage,
  answer: (request: JsonRpcMessage) => Record<string, unknown>,
): Promise<{ answer: ExchangeResult; questions: JsonRpcMessage[] }> {
  const questions: JsonRpcMessage[] = [];
  const ex = exchangeOf(message, { headers });
  ex.notify = (server) => {
    if (!isRequest(server)) return;
    questions.push(server);
    const reply = { jsonrpc: "2.0", id: server.id, ...answer(server) };
    void bridged.exchange(exchangeOf(reply, { headers }));
  };
  return { answer: await bridged.exchange(ex), questions };
}

for (const leg of ["stdio", "http"] as const) {
  test(`a legacy client answers a 2026-only server's input_required rounds (${leg}) as elicitation requests on its stream`, async (t) => {
    let inner: Backend;
    if (leg === "stdio") inner = stdio(t, modernStdioCommand(true));
    else {
      const server = await startModernHttp(true);
      t.after(() => server.close());
      inner = createHttpBackend({ name: "modern-http", url: server.url, log: silentLogger });
      t.after(() => inner.close());
    }
    const bridged = bridgeEras(inner, OPTIONS);
    const headers = await legacySession(bridged);
    const call = { jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "confirm-greeting", arguments: {} } };
    const { answer, questions } = await callAnswering(bridged, headers, call, (request) => {
      const params = request.params as { message: string };
      return {
        result: { action: "accept", content: params.message === "Your name?" ? { name: "Ada" } : { ok: true } },
      };
    });
    assert.deepEqual(
      questions.map((q) => [q.method, (q.params as { message: string }).message]),
      [
        ["elicitation/create", "Your name?"],
        ["elicitation/create", "Greet Ada?"],
      ],
    );
    assert.equal(outcome(answer).id, 9);
    assert.equal(text(result(answer)), "Hello, Ada!");

    // The client refusing a question fails the call, naming why.
    const { answer: refused } = await callAnswering(bridged, headers, { ...call, id: 10 }, () => ({
      error: { code: -32601, message: "no elicitation handler" },
    }));
    assert.match(
      (outcome(refused).error as { message: string }).message,
      /the client answered elicitation\/create with no elicitation handler/,
    );
  });
}

test("a legacy client's notifications/cancelled aborts its call to a 2026-only server, mid-round too", async (t) => {
  const inner = stdio(t, modernStdioCommand(true));
  const bridged = bridgeEras(inner, OPTIONS);
  const headers = await legacySession(bridged);
  const cancel = (requestId: number) =>
    bridged.exchange(
      exchangeOf({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId } }, { headers }),
    );

  const waiting = exchangeOf(
    { jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "stall", arguments: {} } },
    { headers },
  );
  const call = bridged.exchange(waiting);
  await until("stall started", () => (inner.health().stderrTail ?? []).includes("fixture: stall started"));
  assert.equal((await cancel(4)).kind, "ack");
  assert.deepEqual(await call, { kind: "cancelled" });
  await until("the server saw the cancellation", () =>
    (inner.health().stderrTail ?? []).includes("fixture: stall cancelled"),
  );

  // Cancelled while the bridge waits for the client's answer: the question is withdrawn too.
  const asking = exchangeOf(
    { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "confirm-greeting", arguments: {} } },
    { headers },
  );
  const pending = bridged.exchange(asking);
  await until("the question reached the client", () => asking.notified.some((m) => isRequest(m)));
  await cancel(5);
  assert.deepEqual(await pending, { kind: "cancelled" });
  const question = asking.notified.find((m) => isRequest(m))!;
  assert.deepEqual(asking.notified.at(-1), {
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: question.id },
  });
});

test("a legacy client of a routing table answers its 2026-only member's input_required rounds", async (t) => {
  const route = await startStdioRoutes(t, { everything: everythingStdioCommand(), modern: modernStdioCommand(true) });
  const headers = await legacySession(route);
  await route.exchange(exchangeOf({ jsonrpc: "2.0", method: "notifications/initialized" }, { headers }));
  const call = {
    jsonrpc: "2.0",
    id: 3,
    method: "tools/call",
    params: { name: "modern__confirm-greeting", arguments: {} },
  };
  const { answer, questions } = await callAnswering(route, headers, call, (request) => {
    const params = request.params as { message: string };
    return { result: { action: "accept", content: params.message === "Your name?" ? { name: "Ada" } : { ok: true } } };
  });
  assert.deepEqual(
    questions.map((q) => (q.params as { message: string }).message),
    ["Your name?", "Greet Ada?"],
  );
  assert.equal(text(result(answer)), "Hello, Ada!");
});

test("a modern client of a routing table answers a legacy member's elicitation through input_required", async (t) => {
  const route = await startStdioRoutes(t, { everything: everythingStdioCommand(), fixture: fixtureServerCommand() });
  const call = { name: "everything__trigger-elicitation-request", arguments: {} };
  const asked = oneQuestion(await route.exchange(exchangeOf(modern(1, "tools/call", call))));
  assert.equal(asked.method, "elicitation/create");
  const answer = { action: "accept", content: { name: "Ada Lovelace" } };
  const retry = modern(2, "tools/call", {
    ...call,
    inputResponses: { [asked.key]: answer },
    requestState: asked.state,
  });
  assert.match(text(result(await route.exchange(exchangeOf(retry)))), /- Name: Ada Lovelace/);
});

test("notifications during a bridged call reach the round, unless another part of the bridge claims them", async (t) => {
  let claiming = false;
  let claimed = 0;
  const claims = (_session: unknown, message: JsonRpcMessage) =>
    claiming && message.method === "notifications/progress" && ++claimed > 0;
  const bridged = bridgeEras(stdio(t, everythingStdioCommand()), { ...OPTIONS, mrtr: { claims } });
  const run = async (id: number) => {
    const request = modern(id, "tools/call", {
      name: "trigger-long-running-operation",
      arguments: { duration: 0.2, steps: 2 },
    });
    (request.params as { _meta: Record<string, unknown> })._meta.progressToken = `p-${id}`;
    const ex = exchangeOf(request);
    result(await bridged.exchange(ex));
    return ex.notified.filter((m) => m.method === "notifications/progress");
  };
  const progress = await run(1);
  assert.ok(progress.length >= 1, "the server reported progress");
  for (const note of progress) assert.equal((note.params as { progressToken: unknown }).progressToken, "p-1");
  claiming = true;
  assert.deepEqual(await run(2), [], "claimed notifications do not reach the round");
  assert.ok(claimed >= 1);
});
