import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { createControlPlaneClient } from "../../agent/control-plane/client.ts";
import { createPoller } from "../../agent/control-plane/poller.ts";
import type { PollerOptions } from "../../agent/control-plane/poller.ts";
import { createPoster } from "../../agent/control-plane/poster.ts";
import { createDispatcher } from "../../agent/dispatcher.ts";
import type { AgentEvents, PollOutcome } from "../../agent/events.ts";
import { encodeServerInfo } from "../../shared/protocol/index.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import type { FakeControlPlane } from "../support/fake-control-plane.ts";
import { createManualClock, eventually, settle } from "../support/manual-clock.ts";
import { captureLog, createGate, createTestBackend } from "../support/test-backend.ts";
import type { Gate } from "../support/test-backend.ts";

interface Options {
  maxInflight?: number;
  poller?: Partial<PollerOptions>;
  /** Point the client at a port where nothing listens. */
  unreachable?: boolean;
  /** Hold every exchange until the test opens its gate. */
  holdWork?: boolean;
}

/** The whole receive path: fake control plane → client → poller → dispatcher → in-test backend → poster. */
async function setup(t: TestContext, options: Options = {}) {
  const cp: FakeControlPlane = await startFakeControlPlane();
  const clock = createManualClock();
  let baseUrl = cp.baseUrl;
  if (options.unreachable) {
    const gone = await startFakeControlPlane();
    baseUrl = gone.baseUrl;
    await gone.close();
  }
  const client = createControlPlaneClient({
    baseUrl,
    tunnelId: cp.tunnelId,
    apiKey: cp.apiKey,
    clientName: "airlock",
    clientVersion: "test",
    serverInfo: encodeServerInfo([{ name: "main", procAffinity: true }]),
    now: clock.now,
  });
  const capture = captureLog();
  const polls: PollOutcome[] = [];
  const events: AgentEvents = { pollFinished: (outcome) => polls.push(outcome) };
  const backend = createTestBackend();
  const gates: Gate[] = [];
  if (options.holdWork) {
    backend.onExchange = async ({ message }) => {
      const gate = createGate();
      gates.push(gate);
      await gate.promise;
      return { kind: "response", status: 200, headers: {}, message: { jsonrpc: "2.0", id: message.id, result: {} } };
    };
  }
  const poster = createPoster({ client, log: capture.log, sleep: async () => {}, now: clock.now });
  const dispatcher = createDispatcher({
    backends: () => backend,
    poster,
    log: capture.log,
    now: clock.now,
    sleep: clock.sleep,
    maxInflight: options.maxInflight ?? 20,
  });
  const poller = createPoller({
    client,
    dispatcher,
    log: capture.log,
    events,
    sleep: clock.sleep,
    now: clock.now,
    backoff: { random: () => 0 },
    timeoutMs: 20_000,
    ...options.poller,
  });
  t.after(async () => {
    await poller.stop();
    await dispatcher.drain(0);
    await cp.close();
  });
  return { cp, clock, poller, dispatcher, backend, gates, capture, polls };
}

describe("poller: asking for work", () => {
  test("ready at once: the first poll is not held, so an accepted key shows before a whole hold passes", async (t) => {
    const { cp, poller } = await setup(t);
    poller.start();
    await cp.waitFor(() => cp.polls.length === 2 && cp.heldPolls === 1, 5_000, "the second (held) poll");
    assert.equal(cp.polls[0]!.timeoutMs, 1);
    assert.equal(cp.polls[0]!.status, 204);
    const status = poller.status();
    assert.equal(status.state, "polling");
    assert.ok(status.lastSuccessAt !== undefined, "a poll was accepted while the next one is still held");
    cp.assertNoViolations();
  });

  test("asks for min(free slots, 25)", async (t) => {
    const { cp, poller } = await setup(t, { maxInflight: 40 });
    poller.start();
    assert.equal((await cp.waitForPolls(1)).limit, 25);
    assert.equal(cp.polls[0]!.timeoutMs, 1, "the first poll asks for an answer at once");
    assert.equal((await cp.waitForPolls(2)).timeoutMs, 20_000, "then polls are held");
    cp.assertNoViolations();
  });

  test("asks for what is free, and does not poll at all while the queue is full", async (t) => {
    const { cp, poller, gates } = await setup(t, { maxInflight: 3, holdWork: true });
    cp.enqueue({}, {});
    poller.start();
    assert.equal((await cp.waitForPolls(1)).limit, 3);
    assert.equal((await cp.waitForPolls(2)).limit, 1, "two commands are running");
    await cp.waitFor(() => cp.heldPolls === 1, 5_000, "the second poll to be held");
    cp.enqueue({});
    await eventually(() => gates.length === 3, 5_000, "three exchanges");
    await settle(10);
    assert.equal(cp.polls.length, 2, "no poll while the queue is full");
    assert.equal(cp.heldPolls, 0);
    gates[0]!.open();
    assert.equal((await cp.waitForPolls(3)).limit, 1);
    for (const gate of gates) gate.open();
    cp.assertNoViolations();
  });

  test("toward a hub that offers `lease`, a full agent keeps holding lease-only polls, and polls for work once a slot frees", async (t) => {
    const { cp, poller, gates } = await setup(t, { maxInflight: 1, holdWork: true });
    cp.scriptPoll({ status: 200, commands: [{}], headers: { "X-Airlock-Capabilities": "cancel,lease" } });
    cp.scriptPoll({ status: 204, headers: { "X-Airlock-Capabilities": "cancel,lease" } });
    poller.start();
    await eventually(() => gates.length === 1, 5_000, "the command to run");
    const renewal = await cp.waitForPolls(3);
    assert.equal(cp.polls[1]!.headers["x-airlock-lease"], "renew", "the full agent's poll is lease-only");
    assert.equal(renewal.headers["x-airlock-lease"], "renew", "and it keeps holding one");
    assert.equal(renewal.limit, 1, "a valid poll: limit is 1..25");
    await cp.waitFor(() => cp.heldPolls === 1, 5_000, "the lease-only poll to be held");
    gates[0]!.open();
    const next = await cp.waitForPolls(4);
    assert.equal(next.headers["x-airlock-lease"], undefined, "a slot is free: an ordinary poll");
    cp.assertNoViolations();
  });

  test("hands every command of an answer to the dispatcher, even beyond the limit", async (t) => {
    const { cp, poller } = await setup(t, { maxInflight: 2 });
    const commands = Array.from({ length: 7 }, (_, i) => ({ request_id: `req_burst_${i}` }));
    cp.scriptPoll({ status: 200, commands });
    poller.start();
    for (const command of commands) await cp.waitForFinal(command.request_id);
    assert.equal(cp.polls[0]!.limit, 2);
    cp.assertNoViolations();
  });

  test("204 and an empty list are answered by polling again at once", async (t) => {
    const { cp, clock, poller, polls } = await setup(t);
    assert.equal(poller.status().state, "stopped");
    cp.scriptPoll({ status: 204 });
    cp.scriptPoll({ status: 200, commands: [] });
    poller.start();
    await cp.waitForPolls(3);
    assert.deepEqual(clock.sleeps, [], "no pause between polls");
    assert.deepEqual(polls, ["empty", "empty"]);
    const status = poller.status();
    assert.deepEqual(status, { state: "polling", lastSuccessAt: clock.now(), consecutiveFailures: 0 });
    cp.assertNoViolations();
  });

  test("only polls the configured channels when told to", async (t) => {
    const { cp, poller } = await setup(t, { poller: { channels: ["main", "harpoon"] } });
    poller.start();
    assert.deepEqual((await cp.waitForPolls(1)).channels, ["main", "harpoon"]);
  });

  test("stop aborts a held poll and ends the loop", async (t) => {
    const { cp, poller } = await setup(t);
    poller.start();
    poller.start();
    await cp.waitFor(() => cp.heldPolls === 1, 5_000, "a held poll");
    await poller.stop();
    assert.equal(poller.status().state, "stopped");
    await cp.waitFor(() => cp.heldPolls === 0, 5_000, "the held poll to end");
    assert.equal(cp.polls.length, 1);
  });
});

describe("poller: failures", () => {
  test("5xx and 429 back off exponentially, with Retry-After as a floor; a success resets", async (t) => {
    const { cp, clock, poller, polls, capture } = await setup(t);
    cp.scriptPoll({ status: 503, code: "tunnel_transport_unavailable" });
    cp.scriptPoll({ status: 429, retryAfter: "4", code: "rate_limit_exceeded" });
    cp.scriptPoll({ status: 500 });
    cp.scriptPoll({ status: 204 });
    cp.scriptPoll({ status: 502 });
    poller.start();
    await clock.waitForSleepers(1);
    assert.deepEqual(clock.sleeps, [100]);
    assert.deepEqual(poller.status().state, "backing_off");
    assert.equal(poller.status().consecutiveFailures, 1);
    assert.match(poller.status().lastError!, /HTTP 503 tunnel_transport_unavailable/);
    await clock.advance(100);
    await clock.waitForSleepers(1);
    assert.deepEqual(clock.sleeps, [100, 4_000], "Retry-After beats the 200 ms step");
    await clock.advance(3_999);
    assert.equal(cp.polls.length, 2, "not before Retry-After");
    await clock.advance(1);
    await clock.waitForSleepers(1);
    assert.deepEqual(clock.sleeps, [100, 4_000, 400]);
    assert.equal(poller.status().consecutiveFailures, 3);
    await clock.advance(400);
    await clock.waitForSleepers(1);
    assert.deepEqual(clock.sleeps, [100, 4_000, 400, 100], "the 204 reset the backoff");
    assert.equal(poller.status().consecutiveFailures, 1);
    assert.deepEqual(polls, ["error", "error", "error", "empty", "error"]);
    assert.match(capture.text(), /poll failed; backing off/);
    cp.scriptPoll({ status: 204 });
    await clock.advance(100);
    await cp.waitFor(() => cp.heldPolls === 1, 5_000, "a held poll after the 204");
    assert.equal(poller.status().state, "polling");
    assert.equal(poller.status().lastError, undefined);
    assert.match(capture.text(), /reachable again/);
  });

  test("an unreachable control plane backs off, growing to the cap", async (t) => {
    const { clock, poller } = await setup(t, { unreachable: true });
    poller.start();
    for (let i = 0; i < 8; i++) {
      await clock.waitForSleepers(1);
      await clock.advance(clock.sleeps.at(-1)!);
    }
    assert.deepEqual(
      clock.sleeps.slice(0, 8),
      [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000],
      "equal jitter at random()=0 halves each step",
    );
    assert.equal(poller.status().state, "backing_off");
    assert.match(poller.status().lastError!, /control plane unreachable/);
  });

  test("401 says loudly what is missing, shows as unauthorized, backs off like any failure (Retry-After honoured), and recovers", async (t) => {
    const { cp, clock, poller, polls, capture } = await setup(t);
    cp.scriptPoll({
      status: 401,
      code: "tunnel_use_forbidden",
      message: "The caller does not have tunnel use permission for any default principal.",
      requestId: "req_service_7",
    });
    cp.scriptPoll({ status: 403, code: "tunnel_use_forbidden", message: "still no permission", retryAfter: "3" });
    cp.scriptPoll({ status: 204 });
    poller.start();
    await clock.waitForSleepers(1);
    const status = poller.status();
    assert.equal(status.state, "unauthorized");
    assert.match(status.lastError!, /HTTP 401 tunnel_use_forbidden/);
    assert.match(status.lastError!, /runtime key of a principal with access to the tunnel/);
    const loud = capture.records.find((r) => r.level === "error");
    assert.ok(loud, "an error-level log line");
    assert.match(loud.msg, /refused this agent's credentials/);
    assert.equal(loud.code, "tunnel_use_forbidden");
    assert.equal(loud.tunnel_request_id, "req_service_7", "tunnel-client's correlation field");
    assert.deepEqual(clock.sleeps, [100], "the first backoff step, as tunnel-client (not a one-minute pause)");
    assert.deepEqual(polls, ["unauthorized"]);
    await clock.advance(100);
    await clock.waitForSleepers(1);
    assert.deepEqual(clock.sleeps, [100, 3_000], "Retry-After is a floor for 401/403 too");
    const refused = capture.records.filter((r) => r.level === "error");
    assert.equal(refused.length, 2, "every refused poll is logged loudly");
    assert.equal(refused[1]!.tunnel_request_id, "missing_request_id", "as tunnel-client words an absent id");
    await clock.advance(2_999);
    assert.equal(cp.polls.length, 2, "not before Retry-After");
    await clock.advance(1);
    await cp.waitForPolls(4);
    assert.equal(poller.status().state, "polling");
    assert.equal(poller.status().lastSuccessAt, clock.now());
  });

  test("403 with another code names that code's fix", async (t) => {
    const { cp, clock, poller } = await setup(t);
    cp.scriptPoll({
      status: 403,
      code: "tunnel_active_organization_required",
      message: "organization context required",
    });
    poller.start();
    await clock.waitForSleepers(1);
    assert.equal(poller.status().state, "unauthorized");
    assert.match(poller.status().lastError!, /control_plane\.organization_id/);
  });

  test("other 4xx (a wrong tunnel id) are logged as errors with the fix and retried within 10 s", async (t) => {
    const { cp, clock, poller, capture } = await setup(t);
    // One failure more than the pauses advanced: the last poll fails too, so the state read
    // below is the pause after it (not a race with an eleventh poll that would succeed).
    for (let i = 0; i < 11; i++) cp.scriptPoll({ status: 400, code: "invalid_tunnel_id_format", message: "bad id" });
    poller.start();
    for (let i = 0; i < 10; i++) {
      await clock.waitForSleepers(1);
      await clock.advance(clock.sleeps.at(-1)!);
    }
    await clock.waitForSleepers(1);
    assert.ok(Math.max(...clock.sleeps) <= 10_000, `never more than 10 s between tries: ${clock.sleeps.join(",")}`);
    assert.equal(clock.sleeps[0], 100);
    assert.equal(poller.status().state, "backing_off");
    assert.match(poller.status().lastError!, /control_plane\.tunnel_id/);
    assert.match(capture.text(), /rejected the poll/);
    assert.ok(capture.records.filter((r) => r.level === "error").length >= 10);
  });
});
