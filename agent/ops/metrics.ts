/**
 * Prometheus metrics for the agent, fed by the {@link AgentEvents} hooks and by a backend
 * health callback read at scrape time. Each call makes its own Registry (never prom-client's
 * global one) so several agents, or tests, can live in one process.
 *
 * Labels carry names only (channel, backend, outcome): never URLs, commands, header values
 * or tool arguments, so nothing secret and nothing unbounded reaches `/metrics`.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type RegistryContentType } from "prom-client";
import { combineEvents, type AgentEvents } from "../events.ts";
import { registerTunnelClientMetrics, type TunnelClientMetricsOptions } from "./metrics-tunnel-client.ts";
import type { BackendHealth, BackendState } from "../backends/types.ts";
import { RUNTIME, VERSION } from "../version.ts";
import { AIRLOCK_STREAM_OPEN } from "../../shared/protocol/extensions.ts";

export interface MetricsOptions {
  /** Current backend health, read on every scrape (the routing table's `health()` list). */
  backends?: () => readonly BackendHealth[];
  /** Process and runtime metrics (CPU, memory, event loop); on by default. */
  processMetrics?: boolean;
  /**
   * Exemplars on the latency histograms: each command's observation carries its `trace_id`,
   * so a slow bucket leads to the trace. Only with tracing on, since exemplars need the
   * OpenMetrics exposition format (Prometheus reads it; a plain 0.0.4 text parser may not).
   */
  exemplars?: boolean;
  /** Also export tunnel-client's metric names (the agent always does; see metrics-tunnel-client.ts). */
  tunnelClient?: Omit<TunnelClientMetricsOptions, "registry">;
}

export interface AgentMetrics {
  registry: Registry<RegistryContentType>;
  /** Give these to the poller, dispatcher and poster (combine with others via `combineEvents`). */
  events: Required<AgentEvents>;
}

const STATES: readonly BackendState[] = ["starting", "up", "restarting", "failed", "stopped"];
const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** MCP method names (`tools/call`); anything else is counted as `other`, never as a new series. */
const METHOD = /^[a-z][a-zA-Z/_]{0,63}$/;
const POLL_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 35, 60, 120];
const COMMAND_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Channels come from the control plane: anything not shaped like a name is one bucket, not a new series. */
function nameLabel(value: string | undefined): string {
  if (value === undefined || value === "") return "";
  return value.split("/").every((part) => NAME.test(part)) ? value : "invalid";
}

/** Aggregates report their members; flatten them as `aggregate/member`. */
function flatten(list: readonly BackendHealth[], prefix = ""): Array<BackendHealth & { label: string }> {
  return list.flatMap((health) => {
    const label = nameLabel(prefix + health.name);
    return [{ ...health, label }, ...flatten(health.members ?? [], `${prefix}${health.name}/`)];
  });
}

/**
 * The backend health series, read from `backends` at each scrape (so they need no events): state,
 * restarts, in-flight requests, and the stdio children and sessions of stdio backends.
 */
function registerBackendHealth(
  registers: Registry<RegistryContentType>[],
  backends: () => Array<BackendHealth & { label: string }>,
): void {
  new Gauge({
    name: "airlock_backend_up",
    help: "1 when the backend is up",
    labelNames: ["backend", "transport"],
    registers,
    collect() {
      this.reset();
      for (const b of backends()) this.set({ backend: b.label, transport: b.transport }, b.state === "up" ? 1 : 0);
    },
  });
  new Gauge({
    name: "airlock_backend_state",
    help: "1 for the backend's current state (starting, up, restarting, failed, stopped)",
    labelNames: ["backend", "state"],
    registers,
    collect() {
      this.reset();
      for (const b of backends())
        for (const state of STATES) this.set({ backend: b.label, state }, b.state === state ? 1 : 0);
    },
  });
  new Counter({
    name: "airlock_backend_restarts_total",
    help: "Restarts of the backend since the agent started",
    labelNames: ["backend"],
    registers,
    collect() {
      // The backend keeps the count; mirror it (it only grows, so this stays a valid counter).
      this.reset();
      for (const b of backends()) this.inc({ backend: b.label }, b.restarts);
    },
  });
  new Gauge({
    name: "airlock_stdio_children",
    help: "Child processes a stdio backend runs now (one per MCP session plus the pool, or one when shared)",
    labelNames: ["backend"],
    registers,
    collect() {
      this.reset();
      for (const b of backends()) if (b.stdio) this.set({ backend: b.label }, b.stdio.children);
    },
  });
  new Gauge({
    name: "airlock_stdio_sessions",
    help: "MCP sessions with a stdio child of their own",
    labelNames: ["backend"],
    registers,
    collect() {
      this.reset();
      for (const b of backends()) if (b.stdio) this.set({ backend: b.label }, b.stdio.sessions);
    },
  });
  new Counter({
    name: "airlock_stdio_spawns_total",
    help: "stdio children started for sessions and the pool (restarts are airlock_backend_restarts_total)",
    labelNames: ["backend"],
    registers,
    collect() {
      this.reset();
      for (const b of backends()) if (b.stdio) this.inc({ backend: b.label }, b.stdio.spawns);
    },
  });
  new Counter({
    name: "airlock_stdio_sessions_refused_total",
    help: "New MCP sessions a stdio backend refused (HTTP 503) because every session child was busy at max_sessions",
    labelNames: ["backend"],
    registers,
    collect() {
      this.reset();
      for (const b of backends()) if (b.stdio) this.inc({ backend: b.label }, b.stdio.refused);
    },
  });
  new Gauge({
    name: "airlock_backend_inflight",
    help: "Requests in flight at the backend",
    labelNames: ["backend"],
    registers,
    collect() {
      this.reset();
      for (const b of backends()) this.set({ backend: b.label }, b.inflight);
    },
  });
}

export function createMetrics(options: MetricsOptions = {}): AgentMetrics {
  const exemplars = options.exemplars ?? false;
  const registry = new Registry<RegistryContentType>();
  if (exemplars) registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  const registers = [registry];
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  new Gauge({
    name: "airlock_build_info",
    help: "Airlock version and JavaScript runtime (always 1)",
    labelNames: ["version", "runtime", "runtime_version"],
    registers,
  }).set({ version: VERSION, runtime: RUNTIME.name, runtime_version: RUNTIME.version }, 1);

  const polls = new Counter({
    name: "airlock_polls_total",
    help: "Control-plane polls by outcome",
    labelNames: ["outcome"],
    registers,
  });
  const pollSeconds = new Histogram({
    name: "airlock_poll_duration_seconds",
    help: "Poll round-trip time (long polls included) by outcome",
    labelNames: ["outcome"],
    buckets: POLL_BUCKETS,
    registers,
  });
  const polled = new Counter({
    name: "airlock_polled_commands_total",
    help: "Commands received from the control plane",
    registers,
  });
  const commands = new Counter({
    name: "airlock_commands_total",
    help: "Finished commands by channel, backend and outcome",
    labelNames: ["channel", "backend", "outcome"],
    registers,
  });
  // `trace_id` is an exemplar label only, never a series label.
  const commandSeconds = new Histogram<"channel" | "outcome" | "trace_id">({
    name: "airlock_command_duration_seconds",
    help: "Receipt to final post (or drop) by channel and outcome",
    labelNames: ["channel", "outcome"],
    buckets: COMMAND_BUCKETS,
    registers,
    enableExemplars: exemplars,
  });
  const pending = new Gauge({
    name: "airlock_queue_pending",
    help: "Commands accepted and not finished (queued + running)",
    registers,
  });
  const running = new Gauge({ name: "airlock_queue_running", help: "Commands being worked on", registers });
  const posts = new Counter({
    name: "airlock_responses_posted_total",
    help: "Response posts to the control plane by type and outcome",
    labelNames: ["type", "outcome"],
    registers,
  });
  const retries = new Counter({
    name: "airlock_response_post_retries_total",
    help: "Extra attempts needed to deliver responses, by type",
    labelNames: ["type"],
    registers,
  });
  const backendCalls = new Counter({
    name: "airlock_backend_calls_total",
    help: "Calls an aggregated channel made to its backends (backend label channel/backend), by method and outcome",
    labelNames: ["backend", "method", "outcome"],
    registers,
  });
  const backendCallSeconds = new Histogram({
    name: "airlock_backend_call_duration_seconds",
    help: "Duration of an aggregated channel's calls to one backend (backend label channel/backend)",
    labelNames: ["backend"],
    buckets: COMMAND_BUCKETS,
    registers,
  });

  registerBackendHealth(registers, () => flatten(options.backends?.() ?? []));

  const airlock: Omit<Required<AgentEvents>, "harpoonCallFinished" | "httpRequestFinished"> = {
    pollFinished(outcome, durationMs, count) {
      polls.inc({ outcome });
      pollSeconds.observe({ outcome }, durationMs / 1000);
      if (count > 0) polled.inc(count);
    },
    commandFinished(report) {
      const channel = nameLabel(report.channel);
      commands.inc({ channel, backend: nameLabel(report.backend), outcome: report.outcome });
      // A standalone stream lives as long as its client listens: not a call latency.
      if (report.method === AIRLOCK_STREAM_OPEN) return;
      const labels = { channel, outcome: report.outcome };
      const value = report.durationMs / 1000;
      // An exemplar-enabled histogram only takes the object form (positional arguments throw).
      if (exemplars)
        commandSeconds.observe({ labels, value, exemplarLabels: report.traceId ? { trace_id: report.traceId } : {} });
      else commandSeconds.observe(labels, value);
    },
    queueChanged(queued, active) {
      pending.set(queued);
      running.set(active);
    },
    responsePosted(type, outcome, attempts) {
      posts.inc({ type, outcome });
      if (attempts > 1) retries.inc({ type }, attempts - 1);
    },
    backendCallFinished(report) {
      // Same label as the health gauges give an aggregate's member: `channel/backend`.
      const backend = nameLabel(`${report.channel}/${report.backend}`);
      backendCalls.inc({
        backend,
        method: METHOD.test(report.method) ? report.method : "other",
        outcome: report.outcome,
      });
      backendCallSeconds.observe({ backend }, report.durationMs / 1000);
    },
  };
  const compat = options.tunnelClient ? registerTunnelClientMetrics({ ...options.tunnelClient, registry }) : {};
  const events = combineEvents(airlock, compat) as Required<AgentEvents>;
  return { registry, events };
}
