/**
 * tunnel-client's metric names, types and labels, fed by the agent's events: the values an
 * operator's existing dashboards and alerts read.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createMetrics } from "../../agent/ops/metrics.ts";
import { harpoonOutcome } from "../../agent/ops/metrics-tunnel-client.ts";

const TUNNEL = "tunnel_0123456789abcdef0123456789abcdef";

function setup() {
  let clock = Date.parse("2026-01-01T00:00:10Z");
  let ready = false;
  const metrics = createMetrics({
    processMetrics: false,
    tunnelClient: {
      tunnelId: TUNNEL,
      queueCapacity: 20,
      workerCapacity: 10,
      now: () => clock,
      lastPollOkAt: () => Date.parse("2026-01-01T00:00:07.900Z"),
      ready: () => ready,
    },
  });
  return {
    metrics,
    setReady: (value: boolean) => {
      ready = value;
    },
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

describe("tunnel-client metrics", () => {
  test("polls, queue, workers, readiness and end-to-end latency under tunnel-client's names", async () => {
    const { metrics, setReady } = setup();
    const { events } = metrics;
    events.pollFinished("commands", 1500, 2);
    events.pollFinished("error", 35_000, 0, "timeout");
    events.pollFinished("unauthorized", 20, 0, "other");
    events.queueChanged(5, 3);
    events.commandFinished({
      requestId: "a",
      channel: "main",
      method: "tools/call",
      commandType: "jsonrpc",
      createdAt: "2026-01-01T00:00:09Z",
      outcome: "ok",
      durationMs: 250,
    });
    events.commandFinished({
      requestId: "b",
      channel: "main",
      method: "notifications/initialized",
      commandType: "jsonrpc",
      notification: true,
      outcome: "ok",
      durationMs: 4,
    });
    events.commandFinished({
      requestId: "c",
      channel: "nope",
      commandType: "session_termination",
      outcome: "unroutable",
      durationMs: 1,
    });
    events.commandFinished({ requestId: "d", channel: "", commandType: "mystery", outcome: "ignored", durationMs: 0 });
    events.commandFinished({
      requestId: "e",
      channel: "main",
      method: "airlock_stream_open",
      commandType: "airlock_stream_open",
      outcome: "ok",
      durationMs: 3_600_000,
    });
    let text = await metrics.registry.metrics();
    const expected = [
      "# TYPE commands_polled_total counter",
      "commands_polled_total 2",
      "commands_enqueued_total 2",
      "commands_poll_cycles_total 3",
      "# TYPE commands_poll_latency_seconds histogram",
      'commands_poll_latency_seconds_count{error="false"} 1',
      'commands_poll_latency_seconds_count{error="true"} 2',
      'commands_poll_errors_total{error_kind="timeout"} 1',
      'commands_poll_errors_total{error_kind="other"} 1',
      'commands_queue_drops_total{drop_reason="invalid_command_type"} 1',
      "commands_poll_last_successful_timestamp_seconds 1767225607",
      "commands_queue_capacity 20",
      "commands_queue_length 2",
      "dispatcher_worker_pool_capacity 10",
      "dispatcher_worker_pool_occupancy 3",
      "liveness 1",
      "readiness 0",
      `command_end_to_end_latency_milliseconds_count{tunnel_id="${TUNNEL}",tunnel_service_status="200",request_kind="call",channel="main",request_method="tools/call",latency_type="enqueue_to_response"} 1`,
      `command_end_to_end_latency_milliseconds_sum{tunnel_id="${TUNNEL}",tunnel_service_status="200",request_kind="call",channel="main",request_method="tools/call",latency_type="poll_to_response"} 250`,
      `command_end_to_end_latency_milliseconds_count{tunnel_id="${TUNNEL}",tunnel_service_status="200",request_kind="notification",channel="main",request_method="notifications/initialized",latency_type="poll_to_response"} 1`,
      `command_unsupported_channel_total{tunnel_id="${TUNNEL}",channel="nope",command_type="session_termination"} 1`,
      'command_end_to_end_latency_milliseconds_bucket{le="1000"',
      "commands_age_seconds_sum 0.75",
    ];
    for (const line of expected) assert.ok(text.includes(line), `missing ${line}\n${text}`);
    assert.match(text, /command_end_to_end_latency_milliseconds_sum\{[^}]*latency_type="enqueue_to_response"\} 1000/);
    assert.doesNotMatch(text, /3600000/, "a standalone stream's life is not a command latency");
    setReady(true);
    text = await metrics.registry.metrics();
    assert.ok(text.includes("readiness 1"));
  });

  test("Harpoon calls by label, status class and outcome", async () => {
    const { metrics } = setup();
    const base = { at: "", method: "GET", url: "", requestBytes: 0, latencyMs: 12 };
    metrics.events.harpoonCallFinished({ ...base, label: "auth", status: 200, responseBytes: 300 });
    metrics.events.harpoonCallFinished({
      ...base,
      label: "auth",
      status: 200,
      responseBytes: 0,
      error: "response exceeds size limit",
    });
    metrics.events.harpoonCallFinished({
      ...base,
      label: " ",
      status: 0,
      responseBytes: 0,
      error: "label is required",
    });
    const text = await metrics.registry.metrics();
    for (const line of [
      'harpoon_call_total{label="auth",status_class="2xx",outcome="success"} 1',
      'harpoon_call_total{label="auth",status_class="2xx",outcome="response_too_large"} 1',
      'harpoon_call_total{label="__unknown__",status_class="none",outcome="invalid_input"} 1',
      'harpoon_call_latency_milliseconds_sum{label="auth",status_class="2xx",outcome="success"} 12',
      'harpoon_response_size_bytes_sum{label="auth",status_class="2xx",outcome="success"} 300',
    ])
      assert.ok(text.includes(line), `missing ${line}\n${text}`);
  });

  test("Harpoon outcomes follow tunnel-client's classes", () => {
    assert.equal(harpoonOutcome({}), "success");
    assert.equal(harpoonOutcome({ error: "request failed (connection refused)" }), "request_error");
    assert.equal(harpoonOutcome({ error: "redirect limit exceeded (max_redirects 0)" }), "request_error");
    assert.equal(harpoonOutcome({ error: "response read failed" }), "response_read_error");
    assert.equal(harpoonOutcome({ error: "unknown target; known labels: a" }), "invalid_input");
  });
});
