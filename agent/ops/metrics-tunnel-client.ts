/**
 * tunnel-client's metrics, under tunnel-client's names, types, units and labels, so the
 * dashboards and alerts an operator built on `tunnel-client` keep working after the switch.
 *
 * tunnel-client records with OpenTelemetry and exports through the OTel Prometheus exporter:
 * counters gain `_total`, a unit `s`/`ms`/`By` becomes a `_seconds`/`_milliseconds`/`_bytes`
 * suffix, and histograms use OTel's default buckets. The names below are those exported names,
 * and the buckets are OTel's, so `histogram_quantile` and `le` selectors behave the same.
 * otelhttp's `http_client_*` are in metrics-http-client.ts. What is not reproduced (the
 * `otel_scope_*` labels, `target_info`, `go_*`) is listed in docs/migrating.md.
 */
import { Counter, Gauge, Histogram, type Registry, type RegistryContentType } from "prom-client";
import type { AgentEvents, CommandReport } from "../events.ts";
import type { HarpoonCallRecord } from "../harpoon/call.ts";
import { AIRLOCK_STREAM_OPEN } from "../../shared/protocol/index.ts";
import { registerHttpClientMetrics } from "./metrics-http-client.ts";

/** OTel SDK's default explicit histogram boundaries (whatever the unit). */
export const OTEL_DEFAULT_BUCKETS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

export interface TunnelClientMetricsOptions {
  registry: Registry<RegistryContentType>;
  tunnelId: string;
  /** `control_plane.max_inflight_requests`: the command queue's capacity. */
  queueCapacity: number;
  /** `mcp.max_concurrent_requests`: the worker pool's capacity. */
  workerCapacity: number;
  /** Epoch ms of the last answered poll, read at scrape time. */
  lastPollOkAt?: () => number | undefined;
  /** tunnel-client's readiness (the lenient `/readyz`), read at scrape time. */
  ready?: () => boolean;
  /** Wall clock, epoch ms (command age is measured against the control plane's `created_at`). */
  now?: () => number;
}

/** tunnel-client's `harpoon_call_*{outcome}` for one call, from the history record Airlock keeps. */
export function harpoonOutcome(record: Pick<HarpoonCallRecord, "error">): string {
  const error = record.error;
  if (error === undefined) return "success";
  if (error === "response read failed") return "response_read_error";
  if (error === "response exceeds size limit") return "response_too_large";
  // The target was asked and failed (network, timeout, a blocked redirect): tunnel-client's request_error.
  if (error.startsWith("request failed") || error.startsWith("redirect")) return "request_error";
  return "invalid_input";
}

function statusClass(status: number): string {
  return status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : "none";
}

/** `request_kind` of tunnel-client's end-to-end latency: a call, a notification or a session termination. */
function requestKind(report: CommandReport): string {
  if (report.commandType === "session_termination") return "session_termination";
  return report.notification ? "notification" : "call";
}

/** Outcomes after which a response reached the control plane (tunnel-client records latency only then). */
const DELIVERED = new Set(["ok", "failure"]);

/** tunnel-client's Harpoon series; returns the hook that feeds them. */
function registerHarpoonMetrics(
  registers: Registry<RegistryContentType>[],
): NonNullable<AgentEvents["harpoonCallFinished"]> {
  const buckets = OTEL_DEFAULT_BUCKETS;
  const harpoonLabels = ["label", "status_class", "outcome"];
  const harpoonCalls = new Counter({
    name: "harpoon_call_total",
    help: "Count of Harpoon call_target invocations.",
    labelNames: harpoonLabels,
    registers,
  });
  const harpoonLatency = new Histogram({
    name: "harpoon_call_latency_milliseconds",
    help: "Latency of Harpoon call_target invocations in milliseconds.",
    labelNames: harpoonLabels,
    buckets,
    registers,
  });
  const harpoonSize = new Histogram({
    name: "harpoon_response_size_bytes",
    help: "Response payload size returned by Harpoon call_target in bytes.",
    labelNames: harpoonLabels,
    buckets,
    registers,
  });

  return (record) => {
    const labels = {
      label: record.label.trim() || "__unknown__",
      status_class: statusClass(record.status),
      outcome: harpoonOutcome(record),
    };
    harpoonCalls.inc(labels);
    harpoonLatency.observe(labels, Math.max(0, record.latencyMs));
    harpoonSize.observe(labels, Math.max(0, record.responseBytes));
  };
}

/** tunnel-client's gauges read at scrape time: last poll, queue and worker pool, liveness, readiness. */
function registerScrapeGauges(options: TunnelClientMetricsOptions, queued: () => number, running: () => number): void {
  const registers = [options.registry];
  const observed = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  observed(
    "commands_poll_last_successful_timestamp_seconds",
    "Unix timestamp in seconds of the last successful poll.",
    () => Math.floor((options.lastPollOkAt?.() ?? 0) / 1000),
  );
  observed(
    "commands_queue_capacity",
    "Capacity of the dispatcher queue that receives commands from the poller.",
    () => options.queueCapacity,
  );
  observed(
    "commands_queue_length",
    "Current occupancy (length) of the dispatcher queue that receives commands from the poller.",
    queued,
  );
  observed("dispatcher_worker_pool_capacity", "Capacity of the dispatcher worker pool.", () => options.workerCapacity);
  observed(
    "dispatcher_worker_pool_occupancy",
    "Current occupancy (running workers) of the dispatcher worker pool.",
    running,
  );
  observed("liveness", "Reports 1 when the tunnel client process is live", () => 1);
  observed("readiness", "Reports 1 when the tunnel client reports readiness", () =>
    (options.ready?.() ?? true) ? 1 : 0,
  );
}

/**
 * Register tunnel-client's metrics on `registry` and return the event hooks that feed them.
 * The gauges read their values at scrape time.
 */
export function registerTunnelClientMetrics(options: TunnelClientMetricsOptions): AgentEvents {
  const registers = [options.registry];
  const now = options.now ?? Date.now;
  const buckets = OTEL_DEFAULT_BUCKETS;
  const polled = new Counter({
    name: "commands_polled_total",
    help: "Total number of control-plane commands fetched by the poller.",
    registers,
  });
  const enqueued = new Counter({
    name: "commands_enqueued_total",
    help: "Total number of control-plane commands successfully enqueued.",
    registers,
  });
  const cycles = new Counter({
    name: "commands_poll_cycles_total",
    help: "Total number of poll cycles initiated by the poller.",
    registers,
  });
  const pollLatency = new Histogram({
    name: "commands_poll_latency_seconds",
    help: "Latency in seconds for completed poll requests.",
    labelNames: ["error"],
    buckets,
    registers,
  });
  const pollErrors = new Counter({
    name: "commands_poll_errors_total",
    help: "Total number of control-plane poll errors encountered.",
    labelNames: ["error_kind"],
    registers,
  });
  const drops = new Counter({
    name: "commands_queue_drops_total",
    help: "Total number of commands dropped when enqueueing into the dispatcher queue.",
    labelNames: ["drop_reason"],
    registers,
  });
  const age = new Histogram({
    name: "commands_age_seconds",
    help: "Age in seconds between control-plane enqueue and client poll.",
    buckets,
    registers,
  });
  const endToEnd = new Histogram({
    name: "command_end_to_end_latency_milliseconds",
    help: "Latency in milliseconds from control-plane enqueue to final response delivery.",
    labelNames: ["latency_type", "tunnel_id", "tunnel_service_status", "request_kind", "request_method", "channel"],
    buckets,
    registers,
  });
  const unsupported = new Counter({
    name: "command_unsupported_channel_total",
    help: "Count of polled commands dropped due to unsupported channels.",
    labelNames: ["tunnel_id", "channel", "command_type"],
    registers,
  });
  const harpoonCallFinished = registerHarpoonMetrics(registers);

  let queued = 0;
  let running = 0;
  registerScrapeGauges(
    options,
    () => queued,
    () => running,
  );

  const httpRequestFinished = registerHttpClientMetrics(options.registry);

  return {
    httpRequestFinished,
    pollFinished(outcome, durationMs, count, errorKind) {
      cycles.inc();
      const failed = outcome === "error" || outcome === "unauthorized";
      pollLatency.observe({ error: String(failed) }, durationMs / 1000);
      if (failed) pollErrors.inc({ error_kind: errorKind ?? "other" });
      if (count > 0) {
        polled.inc(count);
        enqueued.inc(count);
      }
    },
    queueChanged(pending, active) {
      queued = Math.max(0, pending - active);
      running = active;
    },
    commandFinished(report) {
      const createdAt = report.createdAt === undefined ? Number.NaN : Date.parse(report.createdAt);
      const polledAt = now() - report.durationMs;
      if (report.outcome === "ignored") drops.inc({ drop_reason: "invalid_command_type" });
      else if (Number.isFinite(createdAt) && polledAt >= createdAt) age.observe((polledAt - createdAt) / 1000);
      if (report.outcome === "unroutable") {
        unsupported.inc({
          tunnel_id: options.tunnelId,
          channel: report.channel,
          command_type: report.commandType ?? "unknown",
        });
      }
      // A standalone stream (Airlock hub extension) lives as long as its client listens: not a command latency.
      if (!DELIVERED.has(report.outcome) || report.commandType === AIRLOCK_STREAM_OPEN) return;
      const labels: Record<string, string> = {
        tunnel_id: options.tunnelId,
        tunnel_service_status: "200",
        request_kind: requestKind(report),
        channel: report.channel,
      };
      if (report.method !== undefined && report.commandType === "jsonrpc") labels.request_method = report.method;
      if (Number.isFinite(createdAt) && now() >= createdAt)
        endToEnd.observe({ ...labels, latency_type: "enqueue_to_response" }, now() - createdAt);
      endToEnd.observe({ ...labels, latency_type: "poll_to_response" }, report.durationMs);
    },
    harpoonCallFinished,
  };
}
