/**
 * The three log layouts are tunnel-client's (Go's log/slog): log pipelines built on
 * tunnel-client's output keep parsing Airlock's.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, type LogFormat } from "../../shared/log.ts";

function lines(format: LogFormat) {
  const out: string[] = [];
  const records: Array<Record<string, unknown>> = [];
  const at = new Date(2026, 0, 2, 15, 4, 5, 123);
  const log = createLogger(
    {
      format,
      now: () => at,
      sink: (line, record) => {
        out.push(line);
        records.push(record);
      },
      secrets: () => ["sk-hidden-1234"],
    },
    { client_instance_id: "abc", tunnel_id: "tunnel_x" },
  );
  log.child({ component: "controlplane" }).warn("poll failed; backing off", {
    reason: "HTTP 503 — key sk-hidden-1234",
    retry_in_ms: 400,
    empty: "",
    plain: "word",
  });
  return { out, records, iso: at.toISOString() };
}

describe("log layouts", () => {
  test("json: slog's JSONHandler record, upper-case level, bound fields on every line", () => {
    const { out, records, iso } = lines("json");
    assert.deepEqual(JSON.parse(out[0]!), {
      time: iso,
      level: "WARN",
      msg: "poll failed; backing off",
      client_instance_id: "abc",
      tunnel_id: "tunnel_x",
      component: "controlplane",
      reason: "HTTP 503 — key [REDACTED]",
      retry_in_ms: 400,
      empty: "",
      plain: "word",
    });
    assert.ok(out[0]!.startsWith(`{"time":"${iso}","level":"WARN","msg":`), "slog's key order");
    assert.equal(records[0]!.level, "warn", "records keep the lower-case level for in-process readers");
  });

  test("struct-text: slog's TextHandler key=value, quoted only where slog quotes", () => {
    const { out, iso } = lines("text");
    assert.equal(
      out[0],
      `time=${iso} level=WARN msg="poll failed; backing off" client_instance_id=abc tunnel_id=tunnel_x component=controlplane reason="HTTP 503 — key [REDACTED]" retry_in_ms=400 empty="" plain=word`,
    );
  });

  test("default (no format): Go's default logger layout, local time", () => {
    const { out } = lines("default");
    assert.equal(
      out[0],
      `2026/01/02 15:04:05 WARN poll failed; backing off client_instance_id=abc tunnel_id=tunnel_x component=controlplane reason="HTTP 503 — key [REDACTED]" retry_in_ms=400 empty="" plain=word`,
    );
  });
});
