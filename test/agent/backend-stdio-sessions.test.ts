/**
 * The stdio process model (agent/backends/stdio/sessions.ts) with real children: the SDK
 * fixture server, whose `whoami` tool answers the client name its process was initialised
 * with — per-client state a shared child leaks between users.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createStdioSessionBackend, EVICTION_GRACE_MS, type StdioPoolSettings } from "../../agent/backends/stdio.ts";
import type { ExchangeResult } from "../../agent/backends/types.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { silentLogger } from "../../shared/log.ts";
import {
  REPO_ROOT,
  exchangeOf,
  fixtureServerCommand,
  modernStdioCommand,
  processAlive,
  resultText,
} from "../support/everything.ts";

function poolFor(t: { after(fn: () => Promise<void>): void }, settings: StdioPoolSettings = {}) {
  const children: ChildProcess[] = [];
  const backend = createStdioSessionBackend(
    {
      name: "fixture",
      command: fixtureServerCommand(),
      cwd: REPO_ROOT,
      log: silentLogger,
      spawn: (program, args, options) => {
        const child = spawn(program, args, options);
        children.push(child);
        return child;
      },
    },
    settings,
  );
  t.after(async () => {
    await backend.close();
    for (const child of children) assert.equal(processAlive(child.pid!), false, `child ${child.pid} left behind`);
  });
  return { backend, children };
}

type Pool = ReturnType<typeof poolFor>["backend"];

const initialize = (name: string): JsonRpcMessage => ({
  jsonrpc: "2.0",
  id: `init-${name}`,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name, version: "1.0.0" } },
});

/** Open a session as client `name`; its minted id. */
async function open(backend: Pool, name: string): Promise<string> {
  const result = await backend.exchange(exchangeOf(initialize(name)));
  assert.equal(result.kind, "response", JSON.stringify(result));
  const id = result.kind === "response" ? result.headers["Mcp-Session-Id"]?.[0] : undefined;
  if (!id?.startsWith("stdio-")) assert.fail(`initialize answered without a session id: ${JSON.stringify(result)}`);
  const initialized = await backend.exchange(
    exchangeOf({ jsonrpc: "2.0", method: "notifications/initialized" }, { headers: { "Mcp-Session-Id": [id] } }),
  );
  assert.equal(initialized.kind, "ack");
  return id;
}

function call(
  backend: Pool,
  session: string | undefined,
  tool: string,
  args: Record<string, unknown> = {},
): Promise<ExchangeResult> {
  return backend.exchange(
    exchangeOf(
      { jsonrpc: "2.0", id: `${tool}-${Math.random()}`, method: "tools/call", params: { name: tool, arguments: args } },
      { headers: session ? { "Mcp-Session-Id": [session] } : {} },
    ),
  );
}

async function whoami(backend: Pool, session: string): Promise<string | undefined> {
  const result = await call(backend, session, "whoami");
  assert.equal(result.kind, "response", JSON.stringify(result));
  return result.kind === "response" ? resultText(result.message) : undefined;
}

test("each MCP session gets its own child: client state does not leak; the count follows sessions; DELETE stops the child", async (t) => {
  const { backend, children } = poolFor(t);
  await backend.start();
  assert.equal(backend.health().stdio?.children, 1, "the pool's child");
  const alice = await open(backend, "alice");
  const bob = await open(backend, "bob");
  assert.notEqual(alice, bob);
  assert.equal(await whoami(backend, alice), "alice");
  assert.equal(await whoami(backend, bob), "bob");
  assert.deepEqual(backend.health().stdio, { children: 3, sessions: 2, spawns: 3, refused: 0, shared: false });

  const aliceChild = children[1]!;
  const ended = await backend.terminateSession({ "Mcp-Session-Id": [alice] }, new AbortController().signal);
  assert.deepEqual(ended, { kind: "terminated", status: 204, headers: {} });
  assert.equal(processAlive(aliceChild.pid!), false, "the session's child is stopped");
  assert.equal(backend.health().stdio?.sessions, 1);
  // The ended session is unknown now: 404, as an HTTP server answers, so the client starts again.
  const after = await call(backend, alice, "whoami");
  assert.ok(after.kind === "response" && after.status === 404 && "error" in after.message, JSON.stringify(after));
  assert.equal(await whoami(backend, bob), "bob", "the other session is untouched");
});

test("requests without a session go to the shared pool", async (t) => {
  const { backend } = poolFor(t, { poolSize: 1 });
  const result = await call(backend, undefined, "echo", { message: "stateless" });
  assert.ok(result.kind === "response", JSON.stringify(result));
  assert.equal(resultText(result.message), "Echo: stateless");
  assert.deepEqual(backend.health().stdio, { children: 1, sessions: 0, spawns: 1, refused: 0, shared: false });
});

test("a legacy request without a session finds the pool child initialised with the latest client handshake", async (t) => {
  const { backend } = poolFor(t);
  const before = await call(backend, undefined, "whoami");
  assert.ok(before.kind === "response" && resultText(before.message) === "uninitialized", JSON.stringify(before));
  await open(backend, "frank");
  const after = await call(backend, undefined, "whoami");
  assert.ok(after.kind === "response" && resultText(after.message) === "frank", JSON.stringify(after));
  assert.equal(backend.health().stdio?.children, 2, "the pool child was reused, not a new one started");
});

test("past max_sessions the least recently used session quiet for the grace stops", async (t) => {
  let now = 1_000_000;
  const { backend } = poolFor(t, { maxSessions: 2, now: () => now });
  const first = await open(backend, "first");
  const second = await open(backend, "second");
  now += EVICTION_GRACE_MS;
  await whoami(backend, first); // `second` is now the least recently used, and quiet for the grace
  const third = await open(backend, "third");
  assert.equal(backend.health().stdio?.sessions, 2);
  const evicted = await call(backend, second, "whoami");
  assert.ok(evicted.kind === "response" && evicted.status === 404, JSON.stringify(evicted));
  assert.equal(await whoami(backend, first), "first");
  assert.equal(await whoami(backend, third), "third");
});

/** The answer to a refused `initialize`: 503, Retry-After, a JSON-RPC error naming the setting. */
function assertRefused(result: ExchangeResult): void {
  assert.ok(result.kind === "response" && result.status === 503, JSON.stringify(result));
  assert.match(result.headers["Retry-After"]?.[0] ?? "", /^[1-9]\d*$/);
  assert.ok("error" in result.message, JSON.stringify(result.message));
  assert.match(String((result.message.error as { message?: unknown }).message), /max_sessions/);
}

test("a session between initialize and notifications/initialized is not evicted: the new session is refused", async (t) => {
  let now = 1_000_000;
  const { backend } = poolFor(t, { maxSessions: 1, now: () => now });
  const early = await backend.exchange(exchangeOf(initialize("early")));
  const earlyId = early.kind === "response" ? early.headers["Mcp-Session-Id"]?.[0] : undefined;
  assert.ok(earlyId, JSON.stringify(early));
  now += 100;
  assertRefused(await backend.exchange(exchangeOf(initialize("late"))));
  assert.equal(backend.health().stdio?.refused, 1);
  // The first client's handshake goes on: its session was not cut off.
  const initialized = await backend.exchange(
    exchangeOf({ jsonrpc: "2.0", method: "notifications/initialized" }, { headers: { "Mcp-Session-Id": [earlyId] } }),
  );
  assert.ok(initialized.kind === "ack" && initialized.status === 202, JSON.stringify(initialized));
  assert.equal(await whoami(backend, earlyId), "early");
  assert.equal(backend.health().stdio?.sessions, 1, "no child beyond max_sessions either");
});

test("two initializes at once for the last place: one session, one refusal", async (t) => {
  const { backend } = poolFor(t, { maxSessions: 1 });
  const results = await Promise.all([
    backend.exchange(exchangeOf(initialize("one"))),
    backend.exchange(exchangeOf(initialize("two"))),
  ]);
  const statuses = results.map((r) => (r.kind === "response" ? r.status : r.kind)).sort();
  assert.deepEqual(statuses, [200, 503], JSON.stringify(results));
  assert.deepEqual(backend.health().stdio, { children: 2, sessions: 1, spawns: 2, refused: 1, shared: false });
});

test("a session with a request in flight or a GET stream open is not evicted, however long it has been", async (t) => {
  let now = 1_000_000;
  const { backend } = poolFor(t, { maxSessions: 2, now: () => now });
  const busy = await open(backend, "busy");
  const listening = await open(backend, "listening");
  const slow = call(backend, busy, "slow-echo", { message: "working", ms: 300 });
  const ended = new AbortController();
  const stream = backend.openStream!({
    headers: { "Mcp-Session-Id": [listening] },
    signal: ended.signal,
    opened: () => {},
    notify: () => {},
  });
  now += 10 * EVICTION_GRACE_MS;
  assertRefused(await backend.exchange(exchangeOf(initialize("third"))));
  const answer = await slow;
  assert.ok(answer.kind === "response" && resultText(answer.message) === "Echo: working", JSON.stringify(answer));
  assert.equal(await whoami(backend, listening), "listening");
  ended.abort();
  assert.deepEqual(await stream, { kind: "ended" });
  assert.equal(backend.health().stdio?.refused, 1);
  // Both quiet for the grace now: the least recently used one (`busy`) makes room.
  now += EVICTION_GRACE_MS;
  await open(backend, "fourth");
  const evicted = await call(backend, busy, "whoami");
  assert.ok(evicted.kind === "response" && evicted.status === 404, JSON.stringify(evicted));
});

test("a session whose client only holds its GET stream open is reaped after idle_timeout; the stream ends", async (t) => {
  let now = 1_000_000;
  const { backend } = poolFor(t, { idleTimeoutMs: 60_000, now: () => now });
  const listener = await open(backend, "listener");
  let opened = false;
  const stream = backend.openStream!({
    headers: { "Mcp-Session-Id": [listener] },
    signal: new AbortController().signal,
    opened: () => {
      opened = true;
    },
    notify: () => {},
  });
  now += 59_000;
  backend.sweep();
  assert.equal(backend.health().stdio?.sessions, 1, "not before idle_timeout");
  now += 1_000;
  backend.sweep();
  assert.deepEqual(await stream, { kind: "ended" });
  assert.ok(opened);
  assert.equal(backend.health().stdio?.sessions, 0);
  const gone = await call(backend, listener, "whoami");
  assert.ok(gone.kind === "response" && gone.status === 404, JSON.stringify(gone));
});

test("a session idle for idle_timeout loses its child; a busy one keeps it", async (t) => {
  let now = 1_000_000;
  const { backend } = poolFor(t, { idleTimeoutMs: 60_000, now: () => now });
  const idle = await open(backend, "idle");
  const busy = await open(backend, "busy");
  const slow = call(backend, busy, "slow-echo", { message: "still here", ms: 300 });
  now += 61_000;
  backend.sweep();
  assert.equal(backend.health().stdio?.sessions, 1, "only the idle session's child went");
  const gone = await call(backend, idle, "whoami");
  assert.ok(gone.kind === "response" && gone.status === 404, JSON.stringify(gone));
  const answer = await slow;
  assert.ok(answer.kind === "response" && resultText(answer.message) === "Echo: still here", JSON.stringify(answer));
  assert.equal(await whoami(backend, busy), "busy");
});

test("a crashed child fails its own session's request; other sessions keep working", async (t) => {
  const { backend } = poolFor(t);
  const victim = await open(backend, "victim");
  const bystander = await open(backend, "bystander");
  const crashed = await call(backend, victim, "crash");
  assert.ok(crashed.kind === "failure" && crashed.failure.source === "transport_closed", JSON.stringify(crashed));
  assert.equal(await whoami(backend, bystander), "bystander");
  // The child restarts with the session's handshake replayed; the session goes on.
  assert.equal(await whoami(backend, victim), "victim");
  assert.equal(backend.health().restarts, 1);
});

test("the pool is split by era: a legacy client without a session does not switch a dual-era child modern clients use", async (t) => {
  // The SDK v2 fixture serves both eras per connection: the first client's era sticks to the process.
  const backend = createStdioSessionBackend({
    name: "dual",
    command: modernStdioCommand(false),
    cwd: REPO_ROOT,
    log: silentLogger,
  });
  t.after(() => backend.close());
  const _meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": { name: "modern", version: "1.0.0" },
  };
  const modernEcho = (id: string) =>
    backend.exchange(
      exchangeOf({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name: "echo", arguments: { message: id }, _meta },
      }),
    );
  const first = await modernEcho("m1");
  assert.ok(first.kind === "response" && resultText(first.message) === "Echo: m1", JSON.stringify(first));

  // A legacy client that ignores session ids: its requests reach a pool child given its handshake.
  await open(backend, "legacy");
  const legacy = await call(backend, undefined, "echo", { message: "l1" });
  assert.ok(legacy.kind === "response" && resultText(legacy.message) === "Echo: l1", JSON.stringify(legacy));

  const again = await modernEcho("m2");
  assert.ok(again.kind === "response" && resultText(again.message) === "Echo: m2", JSON.stringify(again));
  assert.deepEqual(
    backend.health().stdio,
    { children: 3, sessions: 1, spawns: 3, refused: 0, shared: false },
    "a pool child per era, and the session's",
  );
});
