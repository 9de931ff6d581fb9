/** The span interface both sides record through (agent: agent/telemetry/, hub: relay/telemetry/). */
import type { SpanAttributes } from "./spans.ts";
import type { TraceCarrier } from "./trace-context.ts";

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
  /** The trace this span belongs to (32 hex digits). */
  readonly traceId: string;
  set(attributes: SpanAttributes): void;
  /** Mark the span failed with an `error.type`. */
  fail(errorType: string): void;
  /** End at `endTime` (epoch ms), default now. Later calls do nothing. */
  end(endTime?: number): void;
}

/** Start a span. */
export type StartSpan = (name: string, options?: SpanOptions) => TraceSpan;

/** What `start` returns when tracing is off: nothing is recorded, nothing propagates. */
export const NO_SPAN: TraceSpan = { carrier: { traceparent: "" }, traceId: "", set() {}, fail() {}, end() {} };

/**
 * Run `work` as `span`: `describe` annotates it from the result, an exception marks it
 * failed (and is rethrown); the span ends either way.
 */
export async function inSpan<T>(
  span: TraceSpan,
  work: () => Promise<T> | T,
  describe?: (result: T, span: TraceSpan) => void,
): Promise<T> {
  try {
    const result = await work();
    describe?.(result, span);
    return result;
  } catch (error) {
    span.fail("exception");
    throw error;
  } finally {
    span.end();
  }
}
