/**
 * The agent's tracing seam. Everything on the hot path checks `tracing.enabled` and
 * nothing else; the OpenTelemetry SDK (otel.ts) is imported only when an endpoint is
 * configured, so an agent without tracing never loads it.
 *
 * Context travels explicitly, as W3C {@link TraceCarrier}s in the command's headers,
 * not through an async context manager: the same carrier is what HTTP backends get as
 * `traceparent` and every backend gets in `_meta`, so there is one way a parent is found.
 */
import { NO_SPAN } from "../../shared/telemetry/index.ts";
import type { StartSpan, TraceCarrier } from "../../shared/telemetry/index.ts";
import type { TracingSettings } from "./settings.ts";

export type { SpanOptions, TraceSpan } from "../../shared/telemetry/index.ts";

export interface Tracing {
  readonly enabled: boolean;
  start: StartSpan;
  /** The execution span of each command being run, by request id: the parent of its response posts. */
  readonly running: Map<string, TraceCarrier>;
  /** Export what is buffered and stop. */
  shutdown(): Promise<void>;
}

/** Tracing off: `start` is never called on it (callers check `enabled`), but is harmless. */
export const TRACING_OFF: Tracing = {
  enabled: false,
  start: () => NO_SPAN,
  running: new Map(),
  shutdown: async () => {},
};

/** Tracing as `settings` ask for it; loads the OpenTelemetry SDK. */
export async function startTracing(settings: TracingSettings | undefined, version: string): Promise<Tracing> {
  if (!settings) return TRACING_OFF;
  const { createOtelTracing } = await import("./otel.ts");
  return createOtelTracing(settings, version);
}
