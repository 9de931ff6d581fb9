/**
 * Per-identity rate limits (shared/policy/rate-limit.ts): parsing, which buckets a call
 * counts against, and the fixed-window counter driven by explicit times (no clock).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  parsePolicy,
  rateBuckets,
  rateDecision,
  RateCounter,
  type CallerIdentity,
  type Policy,
} from "../../shared/policy/index.ts";
import { countingRateStore } from "../support/rate-store.ts";

function policy(limits: string): Policy {
  const parsed = parsePolicy(`policy_version: 1\ndefault: allow\nrate_limits:\n${limits}`);
  assert.ok(parsed.ok, parsed.ok ? "" : parsed.errors.join("\n"));
  return parsed.policy;
}

const alice: CallerIdentity = { subject: "alice", groups: [], method: "oauth" };
const bob: CallerIdentity = { subject: "bob", groups: [], method: "oauth" };
const call = (name: string) => ({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: {} } });

test("a limit counts per subject and per tool, and resets when its window ends", () => {
  const { rateLimits } = policy("  - { name: searches, per: subject, tools: [search*], calls: 2, window: 1m }\n");
  const counter = new RateCounter();
  const take = (who: CallerIdentity, tool: string, at: number) =>
    counter.take(rateBuckets(rateLimits, call(tool), who), at);
  assert.deepEqual(take(alice, "search", 0), { ok: true });
  assert.deepEqual(take(alice, "search", 1_000), { ok: true });
  const over = take(alice, "search", 20_000);
  assert.deepEqual(over, {
    ok: false,
    limit: "rate_limits.searches",
    calls: 2,
    windowMs: 60_000,
    retryAfterMs: 40_000,
  });
  assert.deepEqual(take(alice, "search-docs", 20_000), { ok: true }, "another tool has its own count");
  assert.deepEqual(take(bob, "search", 20_000), { ok: true }, "another person has their own count");
  assert.deepEqual(take(alice, "search", 60_000), { ok: true }, "a new window");
  const decision = rateDecision(over as Extract<typeof over, { ok: false }>);
  assert.equal(decision.rule, "rate_limits.searches");
  assert.match(decision.reason, /over 2 calls per 60s .*retry in 40s/);
});

test("only limited tools/calls by someone are counted; a refusal uses up no other limit", () => {
  const { rateLimits } = policy(
    "  - { per: subject, tools: [a], calls: 1, window: 1m }\n  - { name: all, per: subject, calls: 2, window: 1h }\n",
  );
  assert.deepEqual(rateBuckets(rateLimits, { jsonrpc: "2.0", id: 1, method: "tools/list" }, alice), []);
  assert.deepEqual(rateBuckets(rateLimits, call("a"), undefined), [], "no identity, nothing to count");
  assert.deepEqual(
    rateBuckets(rateLimits, call("b"), alice).map((bucket) => bucket.limit),
    ["rate_limits.all"],
  );
  const counter = new RateCounter();
  const take = (at: number) => counter.take(rateBuckets(rateLimits, call("a"), alice), at);
  assert.equal(take(0).ok, true);
  const refused = take(1);
  assert.equal(refused.ok ? "" : refused.limit, "rate_limits[0]");
  // The refused call did not count against "all": after the minute, one of its two calls is left.
  assert.equal(take(60_000).ok, true);
  const second = take(120_000);
  assert.equal(second.ok ? "" : second.limit, "rate_limits.all");
});

test("bad limits are refused naming the key", () => {
  const bad = parsePolicy(
    "policy_version: 1\ndefault: allow\nrate_limits:\n  - { per: client, calls: 0, window: soon, tool: [x] }\n",
  );
  assert.equal(bad.ok, false);
  const errors = bad.ok ? "" : bad.errors.join("\n");
  assert.match(errors, /rate_limits\[0\]\.per: expected subject/);
  assert.match(errors, /rate_limits\[0\]\.calls: expected a number of calls > 0/);
  assert.match(errors, /rate_limits\[0\]\.window: expected a duration/);
  assert.match(errors, /unknown key "tool"; did you mean "tools"\?/);
});

test("with a store: a full window is written at once, other counts once per flush, and a new counter carries on", () => {
  const { rateLimits } = policy("  - { name: sums, per: subject, tools: [sum], calls: 3, window: 1m }\n");
  const store = countingRateStore();
  const counter = new RateCounter(store);
  const take = (who: CallerIdentity, at: number, on = counter) =>
    on.take(rateBuckets(rateLimits, call("sum"), who), at);
  assert.equal(take(alice, 0).ok, true);
  assert.equal(take(alice, 1).ok, true);
  assert.equal(take(bob, 2).ok, true);
  assert.equal(store.writes, 0, "no write on the hot path while windows have room");
  assert.equal(counter.unflushed, true);
  counter.flush();
  assert.equal(store.writes, 2, "one write per changed counter, however many calls it counted");
  assert.equal(counter.unflushed, false);
  assert.equal(take(alice, 3).ok, true, "alice's third call fills her window");
  assert.equal(store.writes, 3, "a full window is written at once, before any flush");
  assert.equal(counter.unflushed, false);

  // A restart: a new counter over the same store still refuses alice and remembers bob's one call.
  const restarted = new RateCounter(store);
  const refused = take(alice, 4, restarted);
  assert.equal(refused.ok, false);
  assert.equal(refused.ok ? 0 : refused.retryAfterMs, 59_996);
  assert.equal(take(bob, 5, restarted).ok, true);
  assert.equal(take(bob, 6, restarted).ok, true);
  assert.equal(take(bob, 7, restarted).ok, false, "bob's count carried over the restart");

  // Expired windows are deleted from the store at the next flush.
  assert.equal(take(alice, 60_002, restarted).ok, true);
  restarted.flush();
  assert.deepEqual(
    [...store.records.values()].map((window) => [window.start, window.count]),
    [[60_002, 1]],
    "only alice's new window is left",
  );
});

test("without a store nothing waits for a flush", () => {
  const { rateLimits } = policy("  - { per: subject, calls: 5, window: 1m }\n");
  const counter = new RateCounter();
  assert.equal(counter.take(rateBuckets(rateLimits, call("a"), alice), 0).ok, true);
  assert.equal(counter.unflushed, false);
});
