/**
 * Retry timing shared by the poll loop and the response poster: exponential backoff
 * with jitter, `Retry-After` parsing, and an abortable sleep. Time and randomness are
 * injectable so tests drive them instead of waiting.
 */

/** Wait `ms`, or less when `signal` aborts first. Never rejects. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** Timers take at most a signed 32-bit delay; a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const timer = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(handle);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const handle = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/** The real-time {@link Sleep}; long waits (a `response_timeout` of days) are chained timers. */
export const sleep: Sleep = async (ms, signal) => {
  let left = Math.max(0, ms);
  do {
    const chunk = Math.min(left, MAX_TIMER_MS);
    await timer(chunk, signal);
    left -= chunk;
  } while (left > 0 && !signal?.aborted);
};

export interface BackoffOptions {
  /** First delay before jitter, ms (default 200). */
  initialMs?: number;
  /** Ceiling before jitter, ms (default 10 000). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /**
   * `equal` (default) keeps half of the step and randomises the other half, so a
   * failing peer is never hammered with near-zero delays; `full` randomises it all.
   */
  jitter?: "full" | "equal";
  /** A number in [0, 1); defaults to `Math.random`. */
  random?: () => number;
}

export interface Backoff {
  /**
   * The delay before the next attempt, ms. `minimumMs` (from `Retry-After`) is a floor:
   * the server's hint wins when it is longer than our own step.
   */
  next(minimumMs?: number): number;
  /** Back to the first step after a success. */
  reset(): void;
  /** Failures since the last reset. */
  readonly attempts: number;
}

/** Exponential backoff with jitter: about 200 ms doubling to 10 s by default. */
export function createBackoff(options: BackoffOptions = {}): Backoff {
  const initial = options.initialMs ?? 200;
  const max = options.maxMs ?? 10_000;
  const factor = options.factor ?? 2;
  const random = options.random ?? Math.random;
  const jitter = options.jitter ?? "equal";
  let attempts = 0;
  return {
    next(minimumMs) {
      const step = Math.min(max, initial * factor ** attempts);
      attempts++;
      const delay = jitter === "full" ? random() * step : step / 2 + random() * (step / 2);
      return Math.round(Math.max(delay, minimumMs ?? 0));
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/** A server cannot make us wait longer than this, whatever `Retry-After` says. */
export const RETRY_AFTER_CAP_MS = 60_000;

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
// RFC 9110 §5.6.7: IMF-fixdate, plus the obsolete RFC 850 and asctime forms recipients must accept.
const IMF_FIXDATE = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850 = /^[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/** An HTTP date in epoch ms, parsed by hand because `Date.parse` differs between engines. */
export function parseHttpDate(text: string): number | undefined {
  let parts: [day: string, month: string, year: number, h: string, m: string, s: string] | undefined;
  const imf = IMF_FIXDATE.exec(text);
  const rfc850 = imf ? null : RFC850.exec(text);
  const asctime = imf || rfc850 ? null : ASCTIME.exec(text);
  if (imf) parts = [imf[1]!, imf[2]!, Number(imf[3]), imf[4]!, imf[5]!, imf[6]!];
  else if (rfc850) {
    // Two-digit years: the POSIX pivot (69 → 2069, 70 → 1970) is close enough for a retry hint.
    const yy = Number(rfc850[3]);
    parts = [rfc850[1]!, rfc850[2]!, yy + (yy < 70 ? 2000 : 1900), rfc850[4]!, rfc850[5]!, rfc850[6]!];
  } else if (asctime) {
    parts = [asctime[2]!.trim(), asctime[1]!, Number(asctime[6]), asctime[3]!, asctime[4]!, asctime[5]!];
  }
  if (!parts) return undefined;
  const [day, monthName, year, h, m, s] = parts;
  const month = MONTHS.indexOf(monthName.toLowerCase());
  const values = [Number(day), Number(h), Number(m), Number(s)];
  if (month < 0 || values[0]! < 1 || values[0]! > 31 || values[1]! > 23 || values[2]! > 59 || values[3]! > 60)
    return undefined;
  return Date.UTC(year, month, values[0], values[1], values[2], values[3]);
}

/**
 * `Retry-After` as a delay in ms: delta-seconds (`120`) or an HTTP date. Invalid values
 * and dates in the past are ignored (`undefined`); valid ones are capped at `capMs` so one
 * response cannot stall the agent for long.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number = Date.now(),
  capMs: number = RETRY_AFTER_CAP_MS,
): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^[0-9]+$/.test(text)) return Math.min(Number(text) * 1000, capMs);
  const at = parseHttpDate(text);
  if (at === undefined) return undefined;
  const delay = at - nowMs;
  if (delay <= 0) return undefined;
  return Math.min(delay, capMs);
}
