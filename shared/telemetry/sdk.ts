/**
 * Spans on the OpenTelemetry JS SDK (`@opentelemetry/sdk-trace`), for both the agent and the
 * hub Worker (the SDK's browser build runs in workerd). Never imported on a path that runs
 * with tracing off: the agent loads it lazily, the Worker only when an endpoint is set.
 * Providers are never registered globally; spans are started with explicit parents.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, createTraceState, trace } from "@opentelemetry/api";
import type { Span, SpanContext, Tracer } from "@opentelemetry/api";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace";
import type { Sampler } from "@opentelemetry/sdk-trace";
import type { SamplerSetting } from "./sampling.ts";
import type { SpanKind as Kind, StartSpan, TraceSpan } from "./span-api.ts";
import { ATTR } from "./spans.ts";
import { formatTraceparent, parseTraceparent, type TraceCarrier } from "./trace-context.ts";

const KINDS: Record<Kind, SpanKind> = {
  internal: SpanKind.INTERNAL,
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
};

/** The SDK sampler for the operator's setting. */
export function createSampler({ sampler, ratio }: SamplerSetting): Sampler {
  const root = sampler.endsWith("always_off")
    ? new AlwaysOffSampler()
    : sampler.endsWith("traceidratio")
      ? new TraceIdRatioBasedSampler(ratio)
      : new AlwaysOnSampler();
  return sampler.startsWith("parentbased_") ? new ParentBasedSampler({ root }) : root;
}

/** The remote parent a carrier names, as an OpenTelemetry context. */
function parentContext(carrier: TraceCarrier | undefined) {
  const parsed = carrier ? parseTraceparent(carrier.traceparent) : undefined;
  if (!carrier || !parsed) return ROOT_CONTEXT;
  const parent: SpanContext = {
    traceId: parsed.traceId,
    spanId: parsed.spanId,
    isRemote: true,
    traceFlags: parsed.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    ...(carrier.tracestate ? { traceState: createTraceState(carrier.tracestate) } : {}),
  };
  return trace.setSpanContext(ROOT_CONTEXT, parent);
}

function carrierOf(span: Span, parent: TraceCarrier | undefined): TraceCarrier {
  const context = span.spanContext();
  const traceparent = formatTraceparent({
    traceId: context.traceId,
    spanId: context.spanId,
    sampled: (context.traceFlags & TraceFlags.SAMPLED) === 1,
  });
  // tracestate belongs to the vendors that wrote it; it passes on unchanged.
  const tracestate = context.traceState?.serialize() || parent?.tracestate;
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

function wrap(span: Span, parent: TraceCarrier | undefined): TraceSpan {
  let ended = false;
  return {
    carrier: carrierOf(span, parent),
    traceId: span.spanContext().traceId,
    set: (attributes) => void span.setAttributes(attributes),
    fail(errorType) {
      span.setAttribute(ATTR.errorType, errorType);
      span.setStatus({ code: SpanStatusCode.ERROR });
    },
    end(endTime) {
      if (ended) return;
      ended = true;
      span.end(endTime);
    },
  };
}

/** {@link StartSpan} on an SDK tracer. */
export function spanStarter(tracer: Tracer): StartSpan {
  return (name, options = {}) =>
    wrap(
      tracer.startSpan(
        name,
        {
          kind: KINDS[options.kind ?? "internal"],
          ...(options.attributes ? { attributes: options.attributes } : {}),
          ...(options.startTime !== undefined ? { startTime: options.startTime } : {}),
        },
        parentContext(options.parent),
      ),
      options.parent,
    );
}
