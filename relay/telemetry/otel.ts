/**
 * {@link HubTracing} on the OpenTelemetry SDK (its browser build runs in workerd): spans
 * end into a buffer; `flush` serialises them with the SDK's OTLP/JSON serializer and posts
 * them with `fetch`, the one network API a Worker has.
 */
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import { createSampler, spanStarter } from "../../shared/telemetry/sdk.ts";
import type { HubTracing, HubTracingSettings } from "./tracing.ts";

/** Finished spans wait here for the next flush. */
class BufferExporter implements SpanExporter {
  spans: ReadableSpan[] = [];
  export(spans: ReadableSpan[], done: (result: { code: number }) => void): void {
    this.spans.push(...spans);
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

/** The most spans one flush carries; a burst beyond it goes in the next one. */
const MAX_SPANS_PER_EXPORT = 512;

export function createHubTracing(settings: HubTracingSettings): HubTracing {
  const buffer = new BufferExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": settings.serviceName }),
    sampler: createSampler(settings),
    spanProcessors: [new SimpleSpanProcessor({ exporter: buffer })],
  });
  let warned = false;
  return {
    enabled: true,
    start: spanStarter(provider.getTracer("airlock-hub")),
    async flush() {
      const spans = buffer.spans.splice(0, MAX_SPANS_PER_EXPORT);
      if (spans.length === 0) return;
      try {
        const body = JsonTraceSerializer.serializeRequest(spans) as Uint8Array<ArrayBuffer> | undefined;
        if (!body) throw new Error("the OTLP serializer produced nothing");
        const response = await fetch(settings.url, {
          method: "POST",
          headers: { ...settings.headers, "Content-Type": "application/json" },
          body,
        });
        await response.body?.cancel();
        if (!response.ok) throw new Error(`the collector answered HTTP ${response.status}`);
      } catch (error) {
        // Once per isolate: a collector that is down must not flood the Worker's log.
        if (!warned) console.error(`airlock hub: could not export spans to ${settings.url}:`, error);
        warned = true;
      }
    },
  };
}
