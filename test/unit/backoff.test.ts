import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  createBackoff,
  parseHttpDate,
  parseRetryAfter,
  RETRY_AFTER_CAP_MS,
  sleep,
} from "../../agent/control-plane/backoff.ts";

describe("createBackoff", () => {
  test("doubles from about 200 ms and stops growing at 10 s", () => {
    const backoff = createBackoff({ random: () => 0.999_999 });
    const delays = Array.from({ length: 9 }, () => backoff.next());
    assert.deepEqual(delays, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    assert.equal(backoff.attempts, 9);
  });

  test("equal jitter keeps at least half of each step", () => {
    const backoff = createBackoff({ random: () => 0 });
    assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [100, 200, 400]);
  });

  test("full jitter may go down to zero", () => {
    const backoff = createBackoff({ jitter: "full", random: () => 0.5 });
    assert.deepEqual([backoff.next(), backoff.next()], [100, 200]);
    assert.equal(createBackoff({ jitter: "full", random: () => 0 }).next(), 0);
  });

  test("a Retry-After hint is a floor, not a replacement", () => {
    const backoff = createBackoff({ random: () => 0 });
    assert.equal(backoff.next(5_000), 5_000);
    assert.equal(backoff.next(10), 200);
  });

  test("reset goes back to the first step", () => {
    const backoff = createBackoff({ random: () => 0.999_999 });
    backoff.next();
    backoff.next();
    backoff.reset();
    assert.equal(backoff.attempts, 0);
    assert.equal(backoff.next(), 200);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);

  test("delta seconds", () => {
    assert.equal(parseRetryAfter("0", now), 0);
    assert.equal(parseRetryAfter("3", now), 3_000);
    assert.equal(parseRetryAfter(" 7 ", now), 7_000);
  });

  test("is capped at a minute", () => {
    assert.equal(parseRetryAfter("3600", now), RETRY_AFTER_CAP_MS);
    assert.equal(parseRetryAfter("99999999999999999999999", now), RETRY_AFTER_CAP_MS);
    assert.equal(parseRetryAfter("120", now, 5_000), 5_000);
  });

  test("HTTP dates, in all three forms", () => {
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 12:00:05 GMT", now), 5_000);
    assert.equal(parseRetryAfter("Thursday, 01-Jan-26 12:00:09 GMT", now), 9_000);
    assert.equal(parseRetryAfter("Thu Jan  1 12:00:02 2026", now), 2_000);
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 13:00:00 GMT", now), RETRY_AFTER_CAP_MS);
  });

  test("dates in the past and invalid values are ignored", () => {
    for (const value of [
      "Thu, 01 Jan 2026 11:59:00 GMT",
      "1.5",
      "-1",
      "+3",
      "soon",
      "",
      "   ",
      "3s",
      "Thu, 32 Jan 2026 12:00:00 GMT",
      "Thu, 01 Foo 2026 12:00:00 GMT",
      "2026-01-01T12:00:05Z",
      null,
      undefined,
    ]) {
      assert.equal(parseRetryAfter(value, now), undefined, String(value));
    }
  });

  test("parseHttpDate reads IMF-fixdate", () => {
    assert.equal(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), Date.UTC(1994, 10, 6, 8, 49, 37));
    assert.equal(parseHttpDate("Sun, 06 Nov 1994 08:49:37 UTC"), undefined);
  });
});

describe("sleep", () => {
  test("ends early when its signal aborts, without rejecting", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = sleep(60_000, controller.signal);
    controller.abort();
    await pending;
    assert.ok(Date.now() - started < 5_000);
    await sleep(10_000, controller.signal);
  });

  test("waits longer than a timer can hold instead of firing at once", async () => {
    const controller = new AbortController();
    let done = false;
    const pending = sleep(30 * 24 * 3_600_000, controller.signal).then(() => {
      done = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(done, false);
    controller.abort();
    await pending;
    assert.equal(done, true);
  });
});
