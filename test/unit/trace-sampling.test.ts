/**
 * Sampling is the operator's setting, never the client's: spans started through
 * shared/telemetry/sdk.ts (what the agent and the hub both use) under each sampler, with a
 * client parent that says "sampled" or "not sampled".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { createSampler, spanStarter } from "../../shared/telemetry/sdk.ts";
import { parseSampler, parseTraceparent, type SamplerName } from "../../shared/telemetry/index.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const parent = (sampled: boolean) => ({
  traceparent: `00-${TRACE}-00f067aa0ba902b7-${sampled ? "01" : "00"}`,
  tracestate: "vendor=x",
});

function record(sampler: SamplerName, sampled: boolean) {
  const exporter = new InMemorySpanExporter();
  const setting = parseSampler(sampler, undefined);
  assert.ok(!("error" in setting));
  const provider = new TracerProvider({
    sampler: createSampler(setting),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const span = spanStarter(provider.getTracer("test"))("airlock.test", { parent: parent(sampled) });
  span.end();
  return { recorded: exporter.getFinishedSpans().length, carrier: span.carrier, traceId: span.traceId };
}

test("always_on (the default) records whatever the client's flag says, and says so downstream", () => {
  for (const sampled of [true, false]) {
    const { recorded, carrier, traceId } = record("always_on", sampled);
    assert.equal(recorded, 1);
    assert.equal(traceId, TRACE, "the span joins the client's trace");
    assert.equal(parseTraceparent(carrier.traceparent)?.sampled, true);
    assert.equal(carrier.tracestate, "vendor=x", "tracestate passes on unchanged");
  }
});

test("always_off records nothing even when the client asks for it; context still propagates", () => {
  const { recorded, carrier } = record("always_off", true);
  assert.equal(recorded, 0);
  assert.equal(parseTraceparent(carrier.traceparent)?.traceId, TRACE);
  assert.equal(parseTraceparent(carrier.traceparent)?.sampled, false);
});

test("only a parentbased_* sampler, chosen by the operator, follows the client's flag", () => {
  assert.equal(record("parentbased_always_on", false).recorded, 0);
  assert.equal(record("parentbased_always_on", true).recorded, 1);
  assert.equal(record("parentbased_always_off", true).recorded, 1);
});
