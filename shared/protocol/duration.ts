/**
 * `response_timeout` is `<digits><unit>` with unit one of ns us ms s m h. Anything
 * else — absent, null, a number, a fraction, a sign, spaces, a compound like `1m30s`,
 * an unknown unit, or a value too large to represent — means "no deadline". That is
 * the contract's legacy behaviour, so a malformed value must never shorten a call.
 */
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** The contract's `response_timeout` syntax. */
export const RESPONSE_TIMEOUT_PATTERN = /^([0-9]+)(ns|us|ms|s|m|h)$/;

/** Milliseconds, or `undefined` for "no deadline". `0s` is a valid, already-expired deadline. */
export function parseResponseTimeout(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const match = RESPONSE_TIMEOUT_PATTERN.exec(value);
  if (!match) return undefined;
  const digits = match[1]!;
  const unit = match[2]!;
  const amount = Number(digits);
  if (!Number.isSafeInteger(amount)) return undefined;
  const ms = amount * UNIT_MS[unit]!;
  // Beyond ~292 years Go's time.Duration overflows; the reference treats that as invalid too.
  if (!Number.isFinite(ms) || ms > 9_223_372_036_854) return undefined;
  return ms;
}

/** Go-style durations in config (`30s`, `1m30s`, `250ms`): a sum of `<number><unit>` parts. */
export function parseDuration(value: string): number | undefined {
  const text = value.trim();
  if (text === "0") return 0;
  // The micro sign written as \u00b5: one non-ASCII character would make the bundle chunk holding this
  // file a two-byte string in V8's memory (scripts/build.mjs).
  const part = /([0-9]+(?:\.[0-9]+)?)(ns|us|\u00b5s|ms|s|m|h)/y;
  let total = 0;
  let index = 0;
  while (index < text.length) {
    part.lastIndex = index;
    const match = part.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * UNIT_MS[match[2] === "µs" ? "us" : match[2]!]!;
    index = part.lastIndex;
  }
  return index === 0 ? undefined : total;
}
