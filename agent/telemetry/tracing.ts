/**
 * The agent's tracing seam. Everything on the hot path checks `tracing.enabled` and
 * nothing else; the OpenTelemetry SDK (otel.ts) is imported only when an endpoint is
 * configured, so an agent without tracing never loads it.
 *
 * Context travels explicitly, as W3C {@link TraceCarrier}s in the command's headers,
 * not through an async context manager: the same carrier is what HTTP backends get as
 * `traceparent` and every backend gets in `_meta`, so there is one way a parent is found.
 */
import type { SpanAttributes, TraceCarrier } from "../../shared/telemetry/index.ts";
import type { TracingSettings } from "./settings.ts";

export type SpanKind = "internal" | "server" | "client" | "producer" | "consumer";

export interface SpanOptions {
  /** The parent; none starts a new trace. */
  parent?: TraceCarrier;
  attributes?: SpanAttributes;
  kind?: SpanKind;
  /** Epoch ms; default now. */
  startTime?: number;
}

/** One span being recorded (or a no-op when the sampler dropped it; its carrier still propagates). */
export interface TraceSpan {
  /** This span as the parent of what comes next. */
  readonly carrier: TraceCarrier;
  set(attributes: SpanAttributes): void;
  /** Mark the span failed with an `error.type`. */
  fail(errorType: string): void;
  /** End at `endTime` (epoch ms), default now. Later calls do nothing. */
  end(endTime?: number): void;
}

export interface Tracing {
  readonly enabled: boolean;
  start(name: string, options?: SpanOptions): TraceSpan;
  /** The execution span of each command being run, by request id: the parent of its response posts. */
  readonly running: Map<string, TraceCarrier>;
  /** Export what is buffered and stop. */
  shutdown(): Promise<void>;
}

const NO_SPAN: TraceSpan = { carrier: { traceparent: "" }, set() {}, fail() {}, end() {} };

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
