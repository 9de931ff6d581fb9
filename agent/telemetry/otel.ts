/**
 * {@link Tracing} on the OpenTelemetry JS SDK: a tracer provider with the operator's
 * sampler, a batch processor and the OTLP/HTTP (JSON) exporter. Loaded lazily by
 * tracing.ts, only when an endpoint is configured. The provider is not registered
 * globally: spans are started from this tracer with explicit parents only.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, createTraceState, trace } from "@opentelemetry/api";
import type { Span, SpanContext } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider,
} from "@opentelemetry/sdk-trace";
import type { Sampler } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { ATTR, formatTraceparent, parseTraceparent } from "../../shared/telemetry/index.ts";
import type { TraceCarrier } from "../../shared/telemetry/index.ts";
import type { SpanKind as Kind, SpanOptions, TraceSpan, Tracing } from "./tracing.ts";
import type { SamplerName, TracingSettings } from "./settings.ts";

const KINDS: Record<Kind, SpanKind> = {
  internal: SpanKind.INTERNAL, server: SpanKind.SERVER, client: SpanKind.CLIENT, producer: SpanKind.PRODUCER, consumer: SpanKind.CONSUMER,
};

function createSampler(name: SamplerName, ratio: number): Sampler {
  const root = name.endsWith("always_off") ? new AlwaysOffSampler()
    : name.endsWith("traceidratio") ? new TraceIdRatioBasedSampler(ratio) : new AlwaysOnSampler();
  return name.startsWith("parentbased_") ? new ParentBasedSampler({ root }) : root;
}

/** The remote parent a carrier names, as an OpenTelemetry context. */
function parentContext(carrier: TraceCarrier | undefined) {
  const parsed = carrier ? parseTraceparent(carrier.traceparent) : undefined;
  if (!carrier || !parsed) return ROOT_CONTEXT;
  const parent: SpanContext = {
    traceId: parsed.traceId, spanId: parsed.spanId, isRemote: true,
    traceFlags: parsed.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    ...(carrier.tracestate ? { traceState: createTraceState(carrier.tracestate) } : {}),
  };
  return trace.setSpanContext(ROOT_CONTEXT, parent);
}

function carrierOf(span: Span, parent: TraceCarrier | undefined): TraceCarrier {
  const context = span.spanContext();
  const traceparent = formatTraceparent({ traceId: context.traceId, spanId: context.spanId, sampled: (context.traceFlags & TraceFlags.SAMPLED) === 1 });
  // tracestate belongs to the vendors that wrote it; it passes on unchanged.
  const tracestate = context.traceState?.serialize() || parent?.tracestate;
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

function wrap(span: Span, parent: TraceCarrier | undefined): TraceSpan {
  let ended = false;
  return {
    carrier: carrierOf(span, parent),
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

export function createOtelTracing(settings: TracingSettings, version: string): Tracing {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName, [ATTR_SERVICE_VERSION]: version }),
    sampler: createSampler(settings.sampler, settings.ratio),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: settings.url }), scheduledDelayMillis: settings.batchDelayMs })],
  });
  const tracer = provider.getTracer("airlock", version);
  return {
    enabled: true,
    running: new Map(),
    start(name: string, options: SpanOptions = {}) {
      const span = tracer.startSpan(name, {
        kind: KINDS[options.kind ?? "internal"],
        ...(options.attributes ? { attributes: options.attributes } : {}),
        ...(options.startTime !== undefined ? { startTime: options.startTime } : {}),
      }, parentContext(options.parent));
      return wrap(span, options.parent);
    },
    shutdown: () => provider.shutdown(),
  };
}
