/**
 * Per-identity rate limits (`rate_limits:` in docs/policy.md): how many `tools/call`s one
 * caller may make of one tool per window. Pure: the buckets a call counts against, the
 * counter (fixed windows, time passed in), and the refusal naming the limit. Whoever holds
 * a tunnel's one consistent state (the hub's per-tunnel Durable Object) keeps the counter.
 *
 * Counts are per subject *and* per tool: `calls: 10` on `tools: [search, fetch]` lets a
 * person call search 10 times and fetch 10 times a window. A call without an identity
 * (a tunnel without hub tokens) has no subject to count and is not limited.
 */
import { compileGlob, type Glob } from "./glob.ts";
import type { CallerIdentity } from "./identity.ts";
import type { PolicyDecision } from "./evaluate.ts";
import type { PolicyDocument } from "./schema.ts";
import { parseDuration } from "../protocol/duration.ts";

/** One limit, compiled. */
export interface CompiledRateLimit {
  /** How refusals name it: `rate_limits.<name>`, or `rate_limits[<index>]` when unnamed. */
  readonly name: string;
  readonly tools?: readonly Glob[];
  readonly calls: number;
  readonly windowMs: number;
}

/** One counter a call takes from: the limit's name, its key (limit, subject, tool) and size. */
export interface RateBucket {
  limit: string;
  key: string;
  calls: number;
  windowMs: number;
}

/** A refused take: which limit and how long until its window resets. */
export type RateVerdict =
  | { ok: true }
  | { ok: false; limit: string; calls: number; windowMs: number; retryAfterMs: number };

/** Compile `rate_limits:`; a limit without a name is named by its position. */
export function compileRateLimits(document: PolicyDocument): CompiledRateLimit[] {
  return (document.rate_limits ?? []).map((limit, index) => ({
    name: limit.name ? `rate_limits.${limit.name}` : `rate_limits[${index}]`,
    ...(limit.tools ? { tools: limit.tools.map(compileGlob) } : {}),
    calls: limit.calls,
    windowMs: parseDuration(limit.window)!,
  }));
}

function toolOf(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return undefined;
  const { method, params } = message as { method?: unknown; params?: unknown };
  if (method !== "tools/call" || typeof params !== "object" || params === null) return undefined;
  const name = (params as { name?: unknown }).name;
  return typeof name === "string" ? name : undefined;
}

/** The buckets one JSON-RPC message counts against (none unless it is a limited `tools/call` by someone). */
export function rateBuckets(
  limits: readonly CompiledRateLimit[],
  message: unknown,
  identity: CallerIdentity | undefined,
): RateBucket[] {
  const tool = toolOf(message);
  if (tool === undefined || !identity || limits.length === 0) return [];
  return limits
    .filter((limit) => !limit.tools || limit.tools.some((glob) => glob.test(tool)))
    .map((limit) => ({
      limit: limit.name,
      key: JSON.stringify([limit.name, identity.subject, tool]),
      calls: limit.calls,
      windowMs: limit.windowMs,
    }));
}

/** One counter's window: when it started, how many calls it has counted, how long it lasts. */
export interface RateWindow {
  start: number;
  count: number;
  windowMs: number;
}

/** Where counters outlive their holder (the hub's Durable Object storage); keys are bucket keys. */
export interface RateStore {
  load(): Array<[string, RateWindow]>;
  save(key: string, window: RateWindow): void;
  delete(key: string): void;
}

/**
 * Fixed-window counters. `take` is all-or-nothing: a call refused by one limit does not
 * use up another's allowance. Expired windows are dropped as they are met, so memory
 * stays bounded by the callers active within a window.
 *
 * With a {@link RateStore} the counters survive their holder. Writes stay off the hot path:
 * a window that fills is written at once (so a restart never reopens a spent allowance), every
 * other change waits for {@link flush}, which writes each changed counter once however many
 * calls it counted since. Counts taken after the last flush are lost with a crash, which errs
 * towards allowing, by at most that many calls.
 */
export class RateCounter {
  readonly #windows = new Map<string, RateWindow>();
  readonly #store: RateStore | undefined;
  /** Keys changed since the last flush; one missing from the windows is to be deleted. */
  readonly #dirty = new Set<string>();

  constructor(store?: RateStore) {
    this.#store = store;
    for (const [key, window] of store?.load() ?? []) this.#windows.set(key, window);
  }

  /** True while some change waits for {@link flush}. */
  get unflushed(): boolean {
    return this.#dirty.size > 0;
  }

  take(buckets: readonly RateBucket[], now: number): RateVerdict {
    for (const [key, window] of this.#windows) {
      if (now - window.start < window.windowMs) continue;
      this.#windows.delete(key);
      this.#changed(key);
    }
    const current = buckets.map((bucket) => ({
      bucket,
      window: this.#windows.get(bucket.key) ?? { start: now, count: 0, windowMs: bucket.windowMs },
    }));
    const full = current.find(({ bucket, window }) => window.count >= bucket.calls);
    if (full) {
      const { bucket, window } = full;
      return {
        ok: false,
        limit: bucket.limit,
        calls: bucket.calls,
        windowMs: bucket.windowMs,
        retryAfterMs: window.start + bucket.windowMs - now,
      };
    }
    for (const { bucket, window } of current) {
      const next = { ...window, count: window.count + 1 };
      this.#windows.set(bucket.key, next);
      if (next.count < bucket.calls) this.#changed(bucket.key);
      else {
        this.#store?.save(bucket.key, next);
        this.#dirty.delete(bucket.key);
      }
    }
    return { ok: true };
  }

  /** Write every counter changed since the last flush (one write each), and forget the expired. */
  flush(): void {
    if (!this.#store) return;
    for (const key of this.#dirty) {
      const window = this.#windows.get(key);
      if (window) this.#store.save(key, window);
      else this.#store.delete(key);
    }
    this.#dirty.clear();
  }

  #changed(key: string): void {
    if (this.#store) this.#dirty.add(key);
  }
}

/** The refusal of a call over its limit, naming the limit as a rule refusal names its rule. */
export function rateDecision(verdict: Extract<RateVerdict, { ok: false }>): PolicyDecision {
  const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
  return {
    decision: "deny",
    rule: verdict.limit,
    reason: `over ${verdict.calls} calls per ${verdict.windowMs / 1000}s for this caller and tool; retry in ${seconds}s`,
  };
}
