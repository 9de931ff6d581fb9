/**
 * Exemplars: with tracing on, each command's latency observation carries its trace id, so a
 * slow bucket on a dashboard leads to the trace; with tracing off `/metrics` stays the plain
 * Prometheus text format tunnel-client's dashboards read, with no trace ids in it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createMetrics } from "../../agent/ops/metrics.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

function finish(metrics: ReturnType<typeof createMetrics>, traceId?: string): void {
  metrics.events.commandFinished({
    requestId: "req-1",
    channel: "main",
    method: "tools/call",
    target: "echo",
    outcome: "ok",
    durationMs: 42,
    ...(traceId ? { traceId } : {}),
  });
}

describe("exemplars on the command latency histogram", () => {
  test("tracing on: OpenMetrics, and the bucket the call fell in carries its trace_id", async () => {
    const metrics = createMetrics({ exemplars: true, processMetrics: false });
    finish(metrics, TRACE_ID);
    assert.match(metrics.registry.contentType, /^application\/openmetrics-text/);
    const text = await metrics.registry.metrics();
    const bucket = text
      .split("\n")
      .find((line) => line.startsWith('airlock_command_duration_seconds_bucket{le="0.05"'));
    assert.ok(bucket, text);
    assert.match(bucket, new RegExp(`# \\{trace_id="${TRACE_ID}"\\} 0\\.042`));
    // The trace id is an exemplar, never a series label.
    assert.doesNotMatch(text, /airlock_command_duration_seconds_count\{[^}]*trace_id/);
  });

  test("tracing on, a command without a trace: observed, no exemplar", async () => {
    const metrics = createMetrics({ exemplars: true, processMetrics: false });
    finish(metrics);
    const text = await metrics.registry.metrics();
    assert.match(text, /airlock_command_duration_seconds_count\{channel="main",outcome="ok"\} 1/);
    assert.doesNotMatch(text, /trace_id/);
  });

  test("tracing off: the Prometheus text format, and no trace id anywhere", async () => {
    const metrics = createMetrics({ processMetrics: false });
    finish(metrics, TRACE_ID);
    assert.match(metrics.registry.contentType, /^text\/plain; version=0\.0\.4/);
    const text = await metrics.registry.metrics();
    assert.match(text, /airlock_command_duration_seconds_count\{channel="main",outcome="ok"\} 1/);
    assert.ok(!text.includes(TRACE_ID));
  });
});
