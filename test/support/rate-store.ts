/**
 * A {@link RateStore} in memory that counts its writes, as the hub's Durable Object storage
 * would receive them: for tests of how often rate-limit counters are written.
 */
import type { RateStore, RateWindow } from "../../shared/policy/rate-limit.ts";

export function countingRateStore(): RateStore & { records: Map<string, RateWindow>; writes: number } {
  const records = new Map<string, RateWindow>();
  return {
    records,
    writes: 0,
    load: () => [...records.entries()].map(([key, window]) => [key, { ...window }]),
    save(key, window) {
      this.writes++;
      records.set(key, { ...window });
    },
    delete(key) {
      this.writes++;
      records.delete(key);
    },
  };
}
