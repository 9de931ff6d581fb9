/**
 * Time in tests. A clock tests move by hand: `now()` and an abortable `sleep()` with the
 * agent's {@link Sleep} signature, so backoff, deadlines and grace periods run without
 * waiting; plus `eventually` and `settle` for waiting on real asynchronous work.
 */
import type { Sleep } from "../../agent/control-plane/backoff.ts";

interface Sleeper {
  wakeAt: number;
  resolve: () => void;
}

export interface ManualClock {
  now(): number;
  sleep: Sleep;
  /** Every duration passed to `sleep`, in call order. */
  readonly sleeps: number[];
  /** Sleeps not yet woken. */
  readonly pending: number;
  /**
   * Move time forward by `ms`, waking due sleepers in time order. Between wake-ups it
   * yields to the event loop so code woken by one sleeper can schedule the next.
   */
  advance(ms: number): Promise<void>;
  /** Resolves once at least `count` sleepers are waiting (real time, bounded by `timeoutMs`). */
  waitForSleepers(count: number, timeoutMs?: number): Promise<void>;
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export function createManualClock(start = 1_000): ManualClock {
  let time = start;
  const sleepers: Sleeper[] = [];
  const sleeps: number[] = [];
  return {
    now: () => time,
    sleeps,
    get pending() {
      return sleepers.length;
    },
    sleep(ms, signal) {
      sleeps.push(ms);
      return new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const sleeper: Sleeper = {
          wakeAt: time + Math.max(0, ms),
          resolve: () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          },
        };
        const onAbort = () => {
          sleepers.splice(sleepers.indexOf(sleeper), 1);
          sleeper.resolve();
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        sleepers.push(sleeper);
      });
    },
    async advance(ms) {
      const target = time + ms;
      for (;;) {
        await tick();
        sleepers.sort((a, b) => a.wakeAt - b.wakeAt);
        const next = sleepers[0];
        if (!next || next.wakeAt > target) break;
        sleepers.shift();
        time = Math.max(time, next.wakeAt);
        next.resolve();
      }
      time = target;
      await tick();
    },
    async waitForSleepers(count, timeoutMs = 5_000) {
      await eventually(() => sleepers.length >= count, timeoutMs, `${count} sleepers on the manual clock`);
    },
  };
}

/** Resolves with `predicate`'s first truthy value, re-checked every few ms; rejects after `timeoutMs`. */
export async function eventually<T>(
  predicate: () => T | undefined | false,
  timeoutMs = 30_000,
  what = "condition",
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Let already-scheduled work run (a few event-loop turns, no I/O wait). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}
