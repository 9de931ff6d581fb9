/**
 * How the tunnel's hub writes rate-limit counters (relay/hub/hub-service.ts): counts wait in
 * memory for one timed flush, a full window is written at once, and a new hub over the same
 * storage carries on. Driven by a clock whose timers the test fires.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSettings } from "../../relay/config.ts";
import { RATE_FLUSH_MS, TunnelHubService } from "../../relay/hub/hub-service.ts";
import { memoryStore, type Clock } from "../../relay/hub/tunnel-state.ts";
import type { RateBucket } from "../../shared/policy/rate-limit.ts";
import { countingRateStore } from "../support/rate-store.ts";

/** Time stands still; timers wait until the test fires them. */
function heldClock(): Clock & { timers: Array<{ callback: () => void; ms: number }>; fire(): void } {
  const timers: Array<{ callback: () => void; ms: number }> = [];
  return {
    timers,
    now: () => 1_000,
    setTimeout(callback, ms) {
      timers.push({ callback, ms });
      return timers.length;
    },
    clearTimeout() {},
    fire() {
      for (const timer of timers.splice(0)) timer.callback();
    },
  };
}

const bucket = (subject: string): RateBucket => ({
  limit: "rate_limits.sums",
  key: JSON.stringify(["rate_limits.sums", subject, "get-sum"]),
  calls: 3,
  windowMs: 60_000,
});

test("counts are flushed once per interval, a full window at once, and a new hub carries on", async () => {
  const clock = heldClock();
  const rates = countingRateStore();
  const hub = new TunnelHubService(parseSettings({}), memoryStore(), clock, {}, rates);
  assert.deepEqual(await hub.takeRate([bucket("alice")]), { ok: true });
  assert.deepEqual(await hub.takeRate([bucket("bob")]), { ok: true });
  assert.deepEqual(await hub.takeRate([bucket("bob")]), { ok: true });
  assert.equal(rates.writes, 0, "nothing written while the calls come in");
  assert.deepEqual(
    clock.timers.map((timer) => timer.ms),
    [RATE_FLUSH_MS],
    "one flush scheduled for them all",
  );
  clock.fire();
  assert.equal(rates.writes, 2, "one write per counter");

  assert.deepEqual(await hub.takeRate([bucket("bob")]), { ok: true });
  assert.equal(rates.writes, 3, "bob's window filled: written at once");
  assert.equal(clock.timers.length, 0, "and nothing left to flush");

  const restarted = new TunnelHubService(parseSettings({}), memoryStore(), heldClock(), {}, rates);
  const refused = await restarted.takeRate([bucket("bob")]);
  assert.equal(refused.ok, false);
  assert.deepEqual(await restarted.takeRate([bucket("alice")]), { ok: true }, "alice had used one of three");
});
