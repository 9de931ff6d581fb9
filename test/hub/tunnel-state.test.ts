/**
 * The hub's queue, polls, liveness, deadlines and affinity, driven by a fake clock
 * (no waiting): the same TunnelState the Durable Object runs.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { HubSettings } from "../../relay/config.ts";
import type { ExchangeEvent } from "../../relay/hub/exchange.ts";
import {
  TunnelState,
  memoryStore,
  type AgentHello,
  type Clock,
  type PollRequest,
  type SessionRecord,
  type SubmitRequest,
  type WireCommand,
} from "../../relay/hub/tunnel-state.ts";
import { assertSchema } from "../support/openapi.ts";

class FakeClock implements Clock {
  time = 1_700_000_000_000;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #next = 1;
  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].callback();
    }
    this.time = end;
  }
}

const SETTINGS: HubSettings = {
  livenessMs: 10_000,
  maxPollHoldMs: 30_000,
  responseTimeoutMs: 60_000,
  maxQueued: 3,
  maxRequestBytes: 1024,
  maxResponseBytes: 1024,
  sseKeepaliveMs: 1000,
  sessionIdleMs: 3_600_000,
  maxSessions: 100,
};
const TUNNEL = "tunnel_00000000000000000000000000000001";

function setup(settings: Partial<HubSettings> = {}) {
  const clock = new FakeClock();
  const store = memoryStore();
  const state = new TunnelState({ ...SETTINGS, ...settings }, store, clock);
  return { clock, store, state };
}

function hello(instanceId: string, extra: Partial<AgentHello> = {}): AgentHello {
  return { instanceId, capabilities: [], ...extra };
}

function affine(instanceId: string, capabilities: AgentHello["capabilities"] = []): AgentHello {
  return hello(instanceId, {
    serverInfo: { version: 1, channels: [{ name: "main", proc_affinity: true }] },
    capabilities,
  });
}

let pollCounter = 0;
function poll(state: TunnelState, agent: AgentHello, options: Partial<PollRequest> = {}): Promise<WireCommand[]> {
  return state.poll({ ...agent, pollId: `p${++pollCounter}`, limit: 25, holdMs: 30_000, ...options });
}

let requestCounter = 0;
function request(
  message: Record<string, unknown> = { jsonrpc: "2.0", id: 1, method: "tools/list" },
  extra: Partial<SubmitRequest> = {},
): SubmitRequest {
  return {
    tunnelId: TUNNEL,
    requestId: `req_${++requestCounter}`,
    channel: "main",
    kind: "jsonrpc",
    message,
    headers: {},
    ...extra,
  };
}

function accepted(outcome: ReturnType<TunnelState["submit"]>) {
  if ("error" in outcome) throw new Error(`refused: ${outcome.error.status} ${outcome.error.message}`);
  return outcome.exchange;
}

function refused(outcome: ReturnType<TunnelState["submit"]>) {
  if (!("error" in outcome)) throw new Error("expected a refusal");
  return outcome.error;
}

/** Settle promise callbacks without advancing time. */
const tick = () => new Promise((resolve) => setImmediate(resolve));

async function pending<T>(promise: Promise<T>): Promise<boolean> {
  let done = false;
  void promise.then(() => {
    done = true;
  });
  await tick();
  return !done;
}

/** The promise's value if it settles without time passing; fails the test otherwise. */
async function settled<T>(promise: Promise<T>): Promise<T> {
  const still = Symbol("pending");
  const value = await Promise.race([promise, tick().then(() => still)]);
  if (value === still) throw new Error("still pending: nothing happened when it should have");
  return value as T;
}

function final(status: number, message?: Record<string, unknown>, headers: Record<string, string[]> = {}) {
  return { resp_code: status, resp_type: "jsonrpc_response" as const, resp_json: message, resp_headers: headers };
}

/** `agent` serves an initialize; the backend names the session `sessionId` (or none). Returns the client's final event. */
async function initialize(
  state: TunnelState,
  agent: AgentHello,
  sessionId?: string,
): Promise<ExchangeEvent | undefined> {
  await poll(state, agent, { holdMs: 0 });
  const exchange = accepted(state.submit(request({ jsonrpc: "2.0", id: 0, method: "initialize" })));
  const [command] = await poll(state, agent, { holdMs: 0 });
  const headers: Record<string, string[]> = sessionId ? { "Mcp-Session-Id": [sessionId] } : {};
  state.respond(agent, command!.shard_token, {
    request_id: command!.request_id,
    ...final(200, { jsonrpc: "2.0", id: 0, result: {} }, headers),
  });
  return exchange.next();
}

describe("polls", () => {
  test("a poll with no work is held for its timeout, then returns nothing", async () => {
    const { clock, state } = setup();
    const polled = poll(state, hello("a"), { holdMs: 5000 });
    assert.equal(await pending(polled), true);
    clock.advance(4999);
    assert.equal(await pending(polled), true);
    clock.advance(1);
    assert.deepEqual(await polled, []);
  });

  test("a new command goes to the held poll at once, as a contract-valid command", async () => {
    const { state } = setup();
    const polled = poll(state, hello("a"));
    await tick();
    accepted(state.submit(request()));
    const commands = await polled;
    assert.equal(commands.length, 1);
    assertSchema("PolledCommandList", { commands });
    assert.equal(commands[0]!.command_type, "jsonrpc");
    assert.equal(commands[0]!.response_timeout, "60000ms");
    assert.deepEqual(commands[0]!.jsonrpc, { jsonrpc: "2.0", id: 1, method: "tools/list" });
  });

  test("queued commands are handed out up to the poll's limit, oldest first", async () => {
    const { clock, state } = setup();
    await poll(state, hello("a"), { holdMs: 0 });
    for (let i = 0; i < 3; i++) accepted(state.submit(request({ jsonrpc: "2.0", id: i, method: "ping" })));
    clock.advance(1500);
    const first = await poll(state, hello("a"), { limit: 2 });
    assert.deepEqual(
      first.map((c) => c.jsonrpc?.id),
      [0, 1],
    );
    // The remaining lifetime is what the agent gets as response_timeout.
    assert.equal(first[0]!.response_timeout, "58500ms");
    const second = await poll(state, hello("a"), { limit: 2 });
    assert.deepEqual(
      second.map((c) => c.jsonrpc?.id),
      [2],
    );
  });

  test("an abandoned poll is not handed a command", async () => {
    const { state } = setup();
    const polled = poll(state, hello("a"), { pollId: "gone" });
    await tick();
    state.abandonPoll("gone");
    assert.deepEqual(await polled, []);
    accepted(state.submit(request()));
    assert.equal(state.stats().queued, 1);
  });

  test("a poll restricted to channels only takes commands for them", async () => {
    const { state } = setup();
    await poll(state, hello("a"), { holdMs: 0 });
    accepted(state.submit(request(undefined, { channel: "other" })));
    assert.deepEqual(await poll(state, hello("a"), { holdMs: 0, channels: ["main"] }), []);
    assert.equal((await poll(state, hello("a"), { holdMs: 0, channels: ["other"] })).length, 1);
  });
});

describe("ingress refusals", () => {
  test("503 tunnel_client_not_connected when no agent ever polled, and again once the liveness window passed", async () => {
    const { clock, state } = setup();
    const none = refused(state.submit(request()));
    assert.equal(none.status, 503);
    assert.equal(none.code, "tunnel_client_not_connected");
    assert.equal(none.retryAfter, 1);
    await poll(state, hello("a"), { holdMs: 0 });
    accepted(state.submit(request()));
    clock.advance(10_001);
    assert.equal(refused(state.submit(request())).status, 503);
  });

  test("an agent holding a poll stays connected beyond the liveness window", async () => {
    const { clock, state } = setup();
    let ended = false;
    const polled = poll(state, hello("a"), { holdMs: 30_000, channels: ["nothing"] }).finally(() => {
      ended = true;
    });
    clock.advance(25_000);
    accepted(state.submit(request()));
    clock.advance(5000);
    // Fake time: the hold's end has fired; let its promise settle rather than wait on a clock.
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(ended, "the held poll ends with its 30 s hold");
    assert.deepEqual(await polled, [], "it serves another channel, so the command stays queued");
  });

  test("503 names the channels connected agents serve when none serves the requested one", async () => {
    const { state } = setup();
    await poll(state, hello("a", { serverInfo: { version: 1, channels: [{ name: "main" }, { name: "docs" }] } }), {
      holdMs: 0,
    });
    const error = refused(state.submit(request(undefined, { channel: "wiki" })));
    assert.equal(error.status, 503);
    assert.match(error.message, /"wiki".*docs, main/);
  });

  test("429 tunnel_queue_full with Retry-After once the queue holds maxQueued commands", async () => {
    const { state } = setup();
    await poll(state, hello("a"), { holdMs: 0 });
    for (let i = 0; i < 3; i++) accepted(state.submit(request()));
    const error = refused(state.submit(request()));
    assert.equal(error.status, 429);
    assert.equal(error.code, "tunnel_queue_full");
    assert.equal(error.retryAfter, 1);
  });
});

describe("responses and deadlines", () => {
  test("notifies stream in order, the final ends the request, and a second final is not found", async () => {
    const { state } = setup();
    const polled = poll(state, hello("a"));
    await tick();
    const exchange = accepted(state.submit(request()));
    const [command] = await polled;
    const token = command!.shard_token;
    assert.equal(
      state.respond(hello("a"), token, {
        request_id: command!.request_id,
        resp_code: 200,
        resp_type: "jsonrpc_notify",
        resp_json: { jsonrpc: "2.0", method: "notifications/progress" },
      }),
      "ok",
    );
    assert.equal(
      state.respond(hello("a"), token, {
        request_id: command!.request_id,
        ...final(200, { jsonrpc: "2.0", id: 1, result: {} }),
      }),
      "ok",
    );
    assert.equal(
      state.respond(hello("a"), token, {
        request_id: command!.request_id,
        ...final(200, { jsonrpc: "2.0", id: 1, result: {} }),
      }),
      "not_found",
    );
    const events: Array<ExchangeEvent | undefined> = [await exchange.next(), await exchange.next()];
    assert.deepEqual(
      events.map((e) => e?.type),
      ["notify", "final"],
    );
    assert.equal(state.stats().pending, 0);
  });

  test("unknown requests, undelivered requests and wrong shard tokens are refused", async () => {
    const { state } = setup();
    await poll(state, hello("a"), { holdMs: 0 });
    assert.equal(state.respond(hello("a"), "x", { request_id: "req_nope", ...final(200) }), "not_found");
    const queued = request();
    accepted(state.submit(queued));
    assert.equal(state.respond(hello("a"), "x", { request_id: queued.requestId, ...final(200) }), "not_found");
    const [command] = await poll(state, hello("a"), { holdMs: 0 });
    assert.equal(state.respond(hello("a"), "sh_wrong", { request_id: command!.request_id, ...final(200) }), "mismatch");
  });

  test("a command nobody takes fails with 504 at its deadline and is never handed out", async () => {
    const { clock, state } = setup();
    await poll(state, hello("a"), { holdMs: 0 });
    const exchange = accepted(state.submit(request()));
    // The agent stays connected but only asks for another channel.
    for (let t = 0; t < 60_000; t += 5000) {
      await poll(state, hello("a"), { holdMs: 0, channels: ["elsewhere"] });
      clock.advance(5000);
    }
    const event = await exchange.next();
    assert.ok(event?.type === "failed");
    assert.equal(event.error.status, 504);
    assert.match(event.error.message, /No agent took this request within 60 s/);
    assert.deepEqual(await poll(state, hello("a"), { holdMs: 0 }), []);
  });

  test("a taken command without a final response fails with 504 and its late answer gets not_found", async () => {
    const { clock, state } = setup();
    await poll(state, hello("a"), { holdMs: 0 });
    const exchange = accepted(state.submit(request()));
    const [command] = await poll(state, hello("a"), { holdMs: 0 });
    // The agent keeps its lease (a lease-only poll) but never answers.
    void poll(state, hello("a"), { limit: 0, holdMs: 60_000 });
    clock.advance(60_000);
    const event = await exchange.next();
    assert.ok(event?.type === "failed" && event.error.status === 504);
    assert.match(event.error.message, /took this request but sent no final response/);
    assert.equal(
      state.respond(hello("a"), command!.shard_token, { request_id: command!.request_id, ...final(200) }),
      "not_found",
    );
  });
});

describe("cancellation", () => {
  test("a client that goes away before delivery removes its command from the queue", async () => {
    const { state } = setup();
    await poll(state, hello("a"), { holdMs: 0 });
    const exchange = accepted(state.submit(request()));
    exchange.cancel("client_disconnected");
    assert.equal(state.stats().queued, 0);
    assert.deepEqual(await poll(state, hello("a"), { holdMs: 0 }), []);
  });

  test("after delivery, an agent that declared `cancel` gets airlock_cancel; others get nothing", async () => {
    const { state } = setup();
    const withCancel = hello("a", { capabilities: ["cancel"] });
    await poll(state, withCancel, { holdMs: 0 });
    const exchange = accepted(state.submit(request()));
    const [command] = await poll(state, withCancel, { holdMs: 0 });
    exchange.cancel("client_disconnected");
    const [cancel] = await poll(state, withCancel, { holdMs: 0 });
    assert.equal(cancel!.command_type, "airlock_cancel");
    assert.equal(cancel!.cancel_request_id, command!.request_id);
    assert.equal(cancel!.reason, "client_disconnected");
    assert.equal(
      state.respond(withCancel, command!.shard_token, { request_id: command!.request_id, ...final(200) }),
      "not_found",
    );

    const plain = hello("b");
    const { state: other } = setup();
    await poll(other, plain, { holdMs: 0 });
    const second = accepted(other.submit(request()));
    await poll(other, plain, { holdMs: 0 });
    second.cancel("client_disconnected");
    assert.deepEqual(await poll(other, plain, { holdMs: 0 }), []);
  });
});

describe("several agents", () => {
  test("each command goes to exactly one agent", async () => {
    const { state } = setup({ maxQueued: 100 });
    const agents = ["a", "b", "c"].map((id) => hello(id));
    for (const agent of agents) await poll(state, agent, { holdMs: 0 });
    const ids = Array.from({ length: 30 }, () => request());
    for (const r of ids) accepted(state.submit(r));
    const seen: string[] = [];
    for (let round = 0; seen.length < 30 && round < 50; round++) {
      for (const agent of agents)
        seen.push(...(await poll(state, agent, { holdMs: 0, limit: 4 })).map((c) => c.request_id));
    }
    assert.equal(seen.length, 30);
    assert.equal(new Set(seen).size, 30);
  });

  test("a session on a proc_affinity channel stays with the agent that served initialize", async () => {
    const { state } = setup();
    const a = affine("a");
    const b = affine("b");
    await initialize(state, a, "s-1");
    assert.equal(state.sessionAgent("main", "s-1"), "a");
    // b polls first, but the session's commands wait for a.
    const bPoll = poll(state, b);
    await tick();
    for (let i = 0; i < 3; i++)
      accepted(
        state.submit(
          request({ jsonrpc: "2.0", id: i + 1, method: "ping" }, { headers: { "mcp-session-id": ["s-1"] } }),
        ),
      );
    assert.equal(await pending(bPoll), true);
    const taken = await poll(state, a, { holdMs: 0 });
    assert.deepEqual(
      taken.map((c) => c.jsonrpc?.id),
      [1, 2, 3],
    );
  });

  test("when the session's agent stops polling, queued and new requests on the session fail with 404", async () => {
    const { clock, state } = setup();
    const a = affine("a");
    const b = affine("b");
    await initialize(state, a, "s-2");
    const queued = accepted(state.submit(request(undefined, { headers: { "Mcp-Session-Id": ["s-2"] } })));
    // b keeps polling; a is silent.
    // Noticed within the liveness window plus one sweep interval (a quarter window).
    for (let i = 0; i < 13; i++) {
      clock.advance(1000);
      await poll(state, b, { holdMs: 0 });
    }
    const event = await queued.next();
    assert.ok(event?.type === "failed");
    assert.equal(event.error.status, 404);
    assert.equal(event.error.code, "mcp_session_agent_gone");
    // The session is kept, so every later request on it (a stream reconnect too) hears the same 404.
    assert.equal(state.sessionAgent("main", "s-2"), "a");
    assert.equal(
      refused(state.submit(request(undefined, { headers: { "Mcp-Session-Id": ["s-2"] } }))).code,
      "mcp_session_agent_gone",
    );
    // A session-less request still works through b.
    accepted(state.submit(request()));
  });

  test("new requests on a gone agent's session fail at once with 404", async () => {
    const { clock, state } = setup();
    const a = affine("a");
    await initialize(state, a, "s-3");
    clock.advance(10_500);
    await poll(state, affine("b"), { holdMs: 0 });
    const error = refused(state.submit(request(undefined, { headers: { "Mcp-Session-Id": ["s-3"] } })));
    assert.equal(error.status, 404);
    assert.match(error.message, /initialize again/);
  });

  test("a backend without session ids gets a hub-minted one, stripped before it reaches the agent", async () => {
    const { state } = setup();
    const a = affine("a");
    const event = await initialize(state, a);
    assert.ok(event?.type === "final");
    const minted = event.headers["Mcp-Session-Id"]?.[0];
    assert.match(minted ?? "", /^airlock-[0-9a-f]{32}$/);
    accepted(state.submit(request(undefined, { headers: { "Mcp-Session-Id": [minted!], "x-other": ["1"] } })));
    const [next] = await poll(state, a, { holdMs: 0 });
    assert.deepEqual(next!.headers, { "x-other": ["1"] });
    // Ending a minted session is answered by the hub itself.
    const end = accepted(
      state.submit(
        request(undefined, {
          kind: "session_termination",
          message: undefined,
          headers: { "Mcp-Session-Id": [minted!] },
        }),
      ),
    );
    const ended = await end.next();
    assert.ok(ended?.type === "final" && ended.status === 204);
    assert.equal(state.sessionAgent("main", minted!), undefined);
  });

  test("agents and session affinity survive a restart over the same store; pending requests do not", async () => {
    const { clock, store, state } = setup();
    const a = affine("a");
    await initialize(state, a, "s-4");
    accepted(state.submit(request()));
    const [inFlight] = await poll(state, a, { holdMs: 0 });

    const restarted = new TunnelState(SETTINGS, store, clock);
    assert.equal(restarted.sessionAgent("main", "s-4"), "a");
    assert.equal(restarted.isLive("a"), true);
    assert.equal(
      restarted.respond(a, inFlight!.shard_token, { request_id: inFlight!.request_id, ...final(200) }),
      "not_found",
    );
    accepted(restarted.submit(request(undefined, { headers: { "Mcp-Session-Id": ["s-4"] } })));
    assert.equal((await poll(restarted, a, { holdMs: 0 })).length, 1);
  });

  test("an agent's record is written when its declaration changes, not on every poll that repeats it", async () => {
    const { store, state } = setup();
    const writes: string[] = [];
    const save = store.saveAgent;
    store.saveAgent = (agent) => {
      writes.push(JSON.stringify([agent.channels, agent.capabilities, agent.clientVersion]));
      save(agent);
    };
    const declared = (channels: Array<[string, boolean]>, extra: Partial<AgentHello> = {}) =>
      hello("a", {
        serverInfo: { version: 1, channels: channels.map(([name, proc_affinity]) => ({ name, proc_affinity })) },
        capabilities: ["cancel"],
        clientVersion: "1.0.0",
        ...extra,
      });
    await poll(state, declared([["main", true]]), { holdMs: 0 });
    await poll(state, declared([["main", true]]), { holdMs: 0 });
    assert.equal(writes.length, 1, "a repeated declaration within the liveness window writes nothing");
    await poll(state, declared([["main", false]]), { holdMs: 0 });
    await poll(
      state,
      declared([
        ["main", false],
        ["docs", false],
      ]),
      { holdMs: 0 },
    );
    await poll(
      state,
      declared(
        [
          ["main", false],
          ["docs", false],
        ],
        { capabilities: ["cancel", "lease"] },
      ),
      {
        holdMs: 0,
      },
    );
    await poll(
      state,
      declared(
        [
          ["main", false],
          ["docs", false],
        ],
        { capabilities: ["cancel", "lease"], clientVersion: "1.0.1" },
      ),
      {
        holdMs: 0,
      },
    );
    assert.deepEqual(writes, [
      '[{"main":true},["cancel"],"1.0.0"]',
      '[{"main":false},["cancel"],"1.0.0"]',
      '[{"main":false,"docs":false},["cancel"],"1.0.0"]',
      '[{"main":false,"docs":false},["cancel","lease"],"1.0.0"]',
      '[{"main":false,"docs":false},["cancel","lease"],"1.0.1"]',
    ]);
    // A call without the declaration header (a response post may omit it) keeps what the polls said.
    await poll(state, hello("a", { capabilities: ["cancel", "lease"], clientVersion: "1.0.1" }), { holdMs: 0 });
    assert.equal(writes.length, 5);
  });
});

describe("session lifetime", () => {
  const onSession = (sessionId: string) => request(undefined, { headers: { "Mcp-Session-Id": [sessionId] } });
  /** Submit on the session and let `agent` take it, so the queue never fills. */
  async function use(state: TunnelState, agent: AgentHello, sessionId: string): Promise<void> {
    accepted(state.submit(onSession(sessionId)));
    assert.equal((await poll(state, agent, { holdMs: 0 })).length, 1);
  }

  test("a session unused for the idle window is forgotten, in storage too, and its next request gets 404", async () => {
    const { clock, store, state } = setup({ sessionIdleMs: 60_000 });
    const a = affine("a");
    const event = await initialize(state, a);
    const minted = event?.type === "final" ? event.headers["Mcp-Session-Id"]![0]! : "";
    await initialize(state, a, "s-kept");
    for (let t = 0; t < 120_000; t += 5000) {
      clock.advance(5000);
      // s-kept is used now and then; the minted session never again. The agent keeps polling.
      if (t % 40_000 === 0) await use(state, a, "s-kept");
      else await poll(state, a, { holdMs: 0 });
    }
    assert.equal(state.sessionAgent("main", minted), undefined);
    assert.equal(store.sessions.has(`main ${minted}`), false);
    assert.equal(state.sessionAgent("main", "s-kept"), "a");
    const error = refused(state.submit(onSession(minted)));
    assert.equal(error.status, 404);
    assert.equal(error.code, "mcp_session_not_found");
    assert.match(error.message, /initialize again/);
    // A backend's own id on a channel whose agents all pin sessions: 404 too once forgotten.
    clock.advance(61_000);
    await poll(state, a, { holdMs: 0 });
    assert.equal(store.sessions.size, 0);
    assert.equal(refused(state.submit(onSession("s-kept"))).status, 404);
    // A new initialize is never refused for the session id it carries.
    accepted(
      state.submit(
        request({ jsonrpc: "2.0", id: 0, method: "initialize" }, { headers: { "Mcp-Session-Id": ["s-kept"] } }),
      ),
    );
    // Where a connected agent does not pin sessions, an id the hub does not hold is refused the same way: the hub records every session it opens.
    await poll(state, hello("plain", { serverInfo: { version: 1, channels: [{ name: "main" }] } }), { holdMs: 0 });
    assert.equal(refused(state.submit(onSession("s-elsewhere"))).code, "mcp_session_not_found");
    assert.equal(refused(state.submit(onSession(minted))).status, 404);
  });

  test("last use is written back at most every few minutes, and a restart expires from what was written", async () => {
    const { clock, store, state } = setup({ sessionIdleMs: 3_600_000 });
    const a = affine("a");
    await initialize(state, a, "s-busy");
    const writes: number[] = [];
    const save = store.saveSession;
    store.saveSession = (key, session) => {
      writes.push(session.lastUsed);
      save(key, session);
    };
    const start = clock.now();
    for (let i = 0; i < 120; i++) {
      clock.advance(5000);
      await use(state, a, "s-busy");
    }
    // 120 requests over ten minutes: two writes, five minutes apart.
    assert.deepEqual(
      writes.map((at) => at - start),
      [300_000, 600_000],
    );
    const written = store.sessions.get("main s-busy")!.lastUsed;
    clock.advance(3_600_000 - (clock.now() - written));
    assert.equal(
      new TunnelState({ ...SETTINGS, sessionIdleMs: 3_600_000 }, store, clock).sessionAgent("main", "s-busy"),
      "a",
    );
    clock.advance(1);
    assert.equal(
      new TunnelState({ ...SETTINGS, sessionIdleMs: 3_600_000 }, store, clock).sessionAgent("main", "s-busy"),
      undefined,
    );
    assert.equal(store.sessions.size, 0);
  });

  test("a session with a call still open is in use, not idle", async () => {
    const { clock, state } = setup({ sessionIdleMs: 60_000, responseTimeoutMs: 120_000 });
    const a = affine("a");
    await initialize(state, a, "s-long");
    accepted(state.submit(onSession("s-long")));
    await poll(state, a, { holdMs: 0 });
    void poll(state, a, { limit: 0, holdMs: 90_000 });
    clock.advance(90_000);
    await poll(state, a, { holdMs: 0 });
    assert.equal(state.sessionAgent("main", "s-long"), "a");
  });

  test("a stored session from before sessions expired gets a fresh idle window at load", () => {
    const { clock, store } = setup({ sessionIdleMs: 60_000 });
    store.sessions.set("main s-old", {
      instanceId: "a",
      minted: false,
      since: clock.now() - 86_400_000,
    } as SessionRecord);
    const state = new TunnelState({ ...SETTINGS, sessionIdleMs: 60_000 }, store, clock);
    assert.equal(state.sessionAgent("main", "s-old"), "a");
  });

  test("sessions per tunnel are capped; the least recently used goes first", async () => {
    const { clock, store, state } = setup({ maxSessions: 3 });
    const a = affine("a");
    for (const id of ["s-1", "s-2", "s-3"]) {
      await initialize(state, a, id);
      clock.advance(1000);
    }
    await use(state, a, "s-1");
    await initialize(state, a, "s-4");
    assert.deepEqual(
      ["s-1", "s-2", "s-3", "s-4"].map((id) => state.sessionAgent("main", id)),
      ["a", undefined, "a", "a"],
    );
    assert.deepEqual([...store.sessions.keys()].sort(), ["main s-1", "main s-3", "main s-4"]);
    assert.equal(refused(state.submit(onSession("s-2"))).status, 404);
  });
});

describe("busy agents and the lease", () => {
  const leased = (instanceId: string) => hello(instanceId, { capabilities: ["lease"] });
  const onSession = (id: number, sessionId: string, method = "tools/call") =>
    request({ jsonrpc: "2.0", id, method, params: { name: "slow" } }, { headers: { "Mcp-Session-Id": [sessionId] } });
  /** With SETTINGS' 10 s liveness the sweep runs every 2.5 s: a lapse is noticed within 12.5 s (≤ 15 s). */
  const LAPSE_NOTICED_MS = 12_500;

  test("an agent whose slots are full holds a lease-only poll: it stays live with its sessions and is handed nothing", async () => {
    const { clock, state } = setup();
    const a = affine("a", ["lease"]);
    await initialize(state, a, "s-busy");
    const slow = accepted(state.submit(onSession(1, "s-busy")));
    const [taken] = await poll(state, a, { holdMs: 0 });
    const renewal = poll(state, a, { limit: 0, holdMs: 30_000 });
    accepted(state.submit(onSession(2, "s-busy")));
    accepted(state.submit(request()));
    clock.advance(29_000);
    assert.equal(state.isLive("a"), true);
    assert.equal(state.sessionAgent("main", "s-busy"), "a");
    assert.deepEqual(state.stats(), { queued: 2, pending: 3, waitingPolls: 1, sessions: 1 });
    clock.advance(1000);
    assert.deepEqual(await renewal, []);
    // The long call ends; a polls again and takes what waited for it.
    assert.equal(
      state.respond(a, taken!.shard_token, {
        request_id: taken!.request_id,
        ...final(200, { jsonrpc: "2.0", id: 1, result: {} }),
      }),
      "ok",
    );
    assert.equal((await slow.next())?.type, "final");
    assert.equal((await poll(state, a, { holdMs: 0 })).length, 2);
  });

  test("an agent that goes silent holding a call: the call ends with a JSON-RPC error naming it, within the window, never re-run", async () => {
    const { clock, state } = setup();
    const a = affine("agent-a", ["lease"]);
    const b = affine("agent-b", ["lease"]);
    await initialize(state, a, "s-lost");
    const call = accepted(state.submit(onSession(7, "s-lost")));
    await poll(state, a, { holdMs: 0 });
    const bPoll = poll(state, b, { holdMs: 30_000 });
    clock.advance(LAPSE_NOTICED_MS);
    const event = await settled(call.next());
    assert.ok(event?.type === "final", `expected a final JSON-RPC answer, got ${JSON.stringify(event)}`);
    assert.equal(event.status, 200);
    const error = event.message as { id: unknown; error: { code: number; message: string } };
    assert.equal(error.id, 7);
    assert.equal(error.error.code, -32603);
    assert.match(error.error.message, /Agent agent-a took this request and then stopped contacting the hub/);
    assert.match(error.error.message, /does not run tools\/call again/);
    assert.equal(await pending(bPoll), true, "the unsafe call is not handed to the survivor");
    // The session's next request fails at once; a new session goes to the survivor.
    const gone = refused(state.submit(onSession(8, "s-lost")));
    assert.deepEqual([gone.status, gone.code], [404, "mcp_session_agent_gone"]);
    accepted(state.submit(request({ jsonrpc: "2.0", id: 0, method: "initialize" })));
    assert.equal((await settled(bPoll))[0]?.jsonrpc?.method, "initialize");
  });

  test("a safe request held by a lost agent goes to another agent at once, and its answer reaches the client", async () => {
    const { clock, state } = setup();
    const a = leased("a");
    const b = leased("b");
    await poll(state, a, { holdMs: 0 });
    const list = accepted(state.submit(request({ jsonrpc: "2.0", id: 3, method: "tools/list" })));
    const [taken] = await poll(state, a, { holdMs: 0 });
    assert.ok(taken);
    const bPoll = poll(state, b, { holdMs: 60_000 });
    clock.advance(LAPSE_NOTICED_MS);
    const [again] = await settled(bPoll);
    assert.equal(again?.request_id, taken.request_id);
    assert.equal(
      state.respond(b, again!.shard_token, {
        request_id: again!.request_id,
        ...final(200, { jsonrpc: "2.0", id: 3, result: { tools: [] } }),
      }),
      "ok",
    );
    const event = await settled(list.next());
    assert.ok(event?.type === "final" && event.status === 200);
  });

  test("a tools/call is re-delivered only for a tool its server annotated readOnlyHint or idempotentHint", async () => {
    const { clock, state } = setup({ maxQueued: 10 });
    const a = leased("a");
    const b = leased("b");
    await poll(state, a, { holdMs: 0 });
    const list = accepted(state.submit(request({ jsonrpc: "2.0", id: 1, method: "tools/list" })));
    const [listed] = await poll(state, a, { holdMs: 0 });
    const tools = [
      { name: "lookup", annotations: { readOnlyHint: true } },
      { name: "upsert", annotations: { readOnlyHint: false, idempotentHint: true } },
      { name: "send", annotations: { destructiveHint: false } },
      { name: "plain" },
    ];
    state.respond(a, listed!.shard_token, {
      request_id: listed!.request_id,
      ...final(200, { jsonrpc: "2.0", id: 1, result: { tools } }),
    });
    await list.next();
    const calls = ["lookup", "upsert", "send", "plain", "never-listed"].map(
      (name, i) =>
        [
          name,
          accepted(
            state.submit(
              request({ jsonrpc: "2.0", id: 10 + i, method: "tools/call", params: { name, arguments: {} } }),
            ),
          ),
        ] as const,
    );
    assert.equal((await poll(state, a, { holdMs: 0 })).length, 5);
    const bPoll = poll(state, b, { holdMs: 60_000 });
    clock.advance(LAPSE_NOTICED_MS);
    // The held poll takes the first at once; the other waits in the queue for b's next poll.
    const taken = [...(await settled(bPoll)), ...(await poll(state, b, { holdMs: 0 }))];
    const redelivered = taken.map((c) => (c.jsonrpc as { params: { name: string } }).params.name);
    assert.deepEqual(redelivered, ["lookup", "upsert"]);
    for (const [name, exchange] of calls.slice(2)) {
      const event = await settled(exchange.next());
      assert.ok(event?.type === "final", name);
      assert.match(JSON.stringify(event.message), /stopped contacting the hub/, name);
    }
  });

  test("a safe request on the lost agent's pinned session is not re-delivered: that session is gone", async () => {
    const { clock, state } = setup();
    const a = affine("a", ["lease"]);
    await initialize(state, a, "s-pinned");
    const list = accepted(state.submit(onSession(4, "s-pinned", "tools/list")));
    await poll(state, a, { holdMs: 0 });
    void poll(state, affine("b", ["lease"]), { holdMs: 60_000 });
    clock.advance(LAPSE_NOTICED_MS);
    const event = await settled(list.next());
    assert.ok(event?.type === "final" && event.status === 200);
    assert.match(JSON.stringify(event.message), /in a new session/);
  });

  test("the lease is renewed by posts: an agent posting progress is not lost", async () => {
    const { clock, state } = setup();
    const a = leased("a");
    await poll(state, a, { holdMs: 0 });
    const call = accepted(
      state.submit(request({ jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "slow" } })),
    );
    const [taken] = await poll(state, a, { holdMs: 0 });
    for (let i = 0; i < 5; i++) {
      clock.advance(8000);
      assert.equal(state.isLive("a"), true, `after ${i} posts`);
      state.respond(a, taken!.shard_token, {
        request_id: taken!.request_id,
        resp_code: 200,
        resp_type: "jsonrpc_notify",
        resp_json: { jsonrpc: "2.0", method: "notifications/progress" },
      });
    }
    assert.equal(state.isLive("a"), true);
    for (let i = 0; i < 5; i++) assert.equal((await call.next())?.type, "notify");
    assert.equal(await pending(call.next()), true, "the call is still open");
  });

  test("an agent without the lease extension (tunnel-client) holding a long call stays live while silent; it is let go at the call's deadline", async () => {
    const { clock, state } = setup();
    const a = affine("a");
    await initialize(state, a, "s-busy");
    const slow = accepted(state.submit(onSession(1, "s-busy")));
    await poll(state, a, { holdMs: 0 });
    // Every slot of a is busy, so it does not poll (docs/protocol.md "Poll": backpressure): five windows of silence.
    clock.advance(50_000);
    assert.equal(state.isLive("a"), true);
    assert.equal(state.sessionAgent("main", "s-busy"), "a");
    assert.equal(state.stats().pending, 1, "the call is still open");
    clock.advance(10_000);
    const event = await settled(slow.next());
    assert.ok(event?.type === "failed" && event.error.status === 504);
    assert.equal(state.isLive("a"), false);
  });
});

describe("standalone GET streams (get-stream extension)", () => {
  test("405 unless a connected agent declared get-stream and cancel", async () => {
    const { state } = setup();
    await poll(state, hello("a", { capabilities: ["cancel"] }), { holdMs: 0 });
    const error = refused(state.submit(request(undefined, { kind: "stream_open", message: undefined })));
    assert.equal(error.status, 405);
  });

  test("the stream goes to a capable agent without a deadline and ends when that agent stops polling", async () => {
    const { clock, state } = setup();
    await poll(state, hello("plain"), { holdMs: 0 });
    const capable = hello("streamer", { capabilities: ["cancel", "get-stream"] });
    await poll(state, capable, { holdMs: 0 });
    const exchange = accepted(state.submit(request(undefined, { kind: "stream_open", message: undefined })));
    assert.deepEqual(await poll(state, hello("plain"), { holdMs: 0 }), []);
    const [command] = await poll(state, capable, { holdMs: 0 });
    assert.equal(command!.command_type, "airlock_stream_open");
    assert.equal(command!.response_timeout, undefined);
    state.respond(capable, command!.shard_token, {
      request_id: command!.request_id,
      resp_code: 200,
      resp_type: "jsonrpc_notify",
      resp_headers: { "Content-Type": ["text/event-stream"] },
    });
    assert.equal((await exchange.next())?.type, "notify");
    clock.advance(200_000);
    const end = await exchange.next();
    assert.ok(end?.type === "final");
  });
});

describe("multi round-trip affinity (the era bridge's paused calls and questions)", () => {
  const ALICE = { credential: "sha256:alice" };
  const call = { name: "trigger-elicitation-request", arguments: {} };
  const STATE = "airlock-mrtr-00000000-0000-4000-8000-000000000001";

  /** Agents `a` and `b` are live; `a` took a modern call and answered it `input_required` with `state`. */
  async function paused(state: TunnelState, requestState = STATE) {
    await poll(state, hello("b"), { holdMs: 0 });
    await poll(state, hello("a"), { holdMs: 0 });
    const first = accepted(
      state.submit(request({ jsonrpc: "2.0", id: 1, method: "tools/call", params: call }, { owner: ALICE })),
    );
    const [command] = await poll(state, hello("a"), { holdMs: 0 });
    const result = {
      resultType: "input_required",
      inputRequests: { "input-1": { method: "elicitation/create" } },
      requestState,
    };
    state.respond(hello("a"), command!.shard_token, {
      request_id: command!.request_id,
      ...final(200, { jsonrpc: "2.0", id: 1, result }),
    });
    assert.equal((await first.next())?.type, "final");
  }

  const retry = (requestState: string, owner = ALICE) =>
    request(
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { ...call, inputResponses: {}, requestState } },
      { owner },
    );

  /** Which of `agents` (polling in that order) takes the one queued command. */
  async function takenBy(state: TunnelState, ...agents: string[]): Promise<string | undefined> {
    for (const agent of agents) if ((await poll(state, hello(agent), { holdMs: 0 })).length > 0) return agent;
    return undefined;
  }

  test("a retry with the requestState an agent minted goes to that agent, though another polls first", async () => {
    const { state } = setup();
    await paused(state);
    accepted(state.submit(retry(STATE)));
    assert.equal(await takenBy(state, "b", "a"), "a");
    // A held poll of the other agent is passed over too.
    const held = poll(state, hello("b"));
    await tick();
    accepted(state.submit(retry(STATE)));
    assert.equal(await pending(held), true);
    assert.equal(await takenBy(state, "a"), "a");
  });

  test("without a mark the hub holds, the same request goes to whichever agent polls first", async () => {
    const { state } = setup();
    await paused(state);
    // A requestState the bridge did not mint (another server's own, passed through) steers nothing.
    accepted(state.submit(retry("server-state-123")));
    assert.equal(await takenBy(state, "b", "a"), "b");
    // Another channel's request with the same state is not this call's.
    accepted(state.submit({ ...retry(STATE), channel: "other" }));
    assert.equal(await takenBy(state, "b", "a"), "b");
  });

  test("the mark lasts as long as the agent keeps the paused call, then the retry goes anywhere", async () => {
    const { clock, state } = setup();
    await paused(state);
    clock.advance(300_000);
    await poll(state, hello("a"), { holdMs: 0 });
    accepted(state.submit(retry(STATE)));
    assert.equal(await takenBy(state, "b", "a"), "a");
    // The retry's answer was not input_required again, so nothing renewed the mark.
    clock.advance(300_001);
    await poll(state, hello("a"), { holdMs: 0 });
    accepted(state.submit(retry(STATE)));
    assert.equal(await takenBy(state, "b", "a"), "b");
  });

  test("when the agent holding the call is gone, the retry goes to a live one (which answers that it holds no call)", async () => {
    const { clock, state } = setup();
    await paused(state);
    clock.advance(SETTINGS.livenessMs + 1);
    await poll(state, hello("b"), { holdMs: 0 });
    accepted(state.submit(retry(STATE)));
    assert.equal(await takenBy(state, "b"), "b");
  });

  test("another client's retry with the requestState is refused with a JSON-RPC error and reaches no agent", async () => {
    const { state } = setup();
    await paused(state);
    const answer = await accepted(state.submit(retry(STATE, { credential: "sha256:mallory" }))).next();
    assert.ok(answer?.type === "final");
    const error = answer.message?.error as { code: number; message: string } | undefined;
    assert.deepEqual(answer.message?.id, 2);
    assert.equal(error?.code, -32602);
    assert.match(error?.message ?? "", /another client/);
    assert.equal(await takenBy(state, "a", "b"), undefined);
  });

  test("a session the agent's era bridge opened stays with that agent, though its channel has no proc_affinity", async () => {
    const { state } = setup();
    await poll(state, hello("b"), { holdMs: 0 });
    await initialize(state, hello("a"), "airlock-eras-0001");
    assert.equal(state.sessionAgent("main", "airlock-eras-0001"), "a");
    accepted(state.submit(request(undefined, { headers: { "Mcp-Session-Id": ["airlock-eras-0001"] } })));
    assert.equal(await takenBy(state, "b", "a"), "a");
    // A backend's own session on the same channel is not pinned.
    await initialize(state, hello("a"), "backend-session");
    assert.equal(state.sessionAgent("main", "backend-session"), undefined);
  });

  test("a legacy client's answer to a question an agent put on its stream goes to that agent; another owner's is refused", async () => {
    const { state } = setup();
    await poll(state, hello("b"), { holdMs: 0 });
    await poll(state, hello("a"), { holdMs: 0 });
    const callRequest = request({ jsonrpc: "2.0", id: 7, method: "tools/call", params: call }, { owner: ALICE });
    const first = accepted(state.submit(callRequest));
    const [command] = await poll(state, hello("a"), { holdMs: 0 });
    const question = { jsonrpc: "2.0", id: "airlock-input-q1", method: "elicitation/create", params: {} };
    state.respond(hello("a"), command!.shard_token, {
      request_id: command!.request_id,
      resp_code: 200,
      resp_type: "jsonrpc_notify",
      resp_json: question,
    });
    assert.equal((await first.next())?.type, "notify");
    const answer = { jsonrpc: "2.0", id: "airlock-input-q1", result: { action: "decline" } };
    accepted(state.submit(request(answer, { owner: ALICE })));
    assert.equal(await takenBy(state, "b", "a"), "a");
    // An answer to an id the bridge did not ask goes anywhere.
    accepted(state.submit(request({ ...answer, id: "client-1" }, { owner: ALICE })));
    assert.equal(await takenBy(state, "b", "a"), "b");
    const error = refused(state.submit(request(answer, { owner: { credential: "sha256:mallory" } })));
    assert.equal(error.status, 404);
    assert.equal(error.code, "pending_request_not_found");
  });
});
