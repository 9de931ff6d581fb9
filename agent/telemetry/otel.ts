/**
 * {@link Tracing} on the OpenTelemetry JS SDK: a tracer provider with the operator's
 * sampler, a batch processor and the OTLP/HTTP (JSON) exporter. Loaded lazily by
 * tracing.ts, only when an endpoint is configured.
 */
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { createSampler, spanStarter } from "../../shared/telemetry/sdk.ts";
import type { Tracing } from "./tracing.ts";
import type { TracingSettings } from "./settings.ts";

export function createOtelTracing(settings: TracingSettings, version: string): Tracing {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName, [ATTR_SERVICE_VERSION]: version }),
    sampler: createSampler(settings),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: settings.url }),
        scheduledDelayMillis: settings.batchDelayMs,
      }),
    ],
  });
  return {
    enabled: true,
    running: new Map(),
    start: spanStarter(provider.getTracer("airlock", version)),
    shutdown: () => provider.shutdown(),
  };
}
