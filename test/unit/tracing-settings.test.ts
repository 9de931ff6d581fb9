import { test } from "node:test";
import assert from "node:assert/strict";
import { tracingSettings } from "../../agent/telemetry/settings.ts";
import { hubTracingSettings } from "../../relay/telemetry/tracing.ts";
import { ConfigError } from "../../agent/config/errors.ts";
import { HubConfigError } from "../../relay/config.ts";

test("agent: off without an endpoint or with OTEL_SDK_DISABLED; the standard variables otherwise", () => {
  assert.equal(tracingSettings({}), undefined);
  assert.equal(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }), undefined);
  assert.deepEqual(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" }), {
    url: "http://c:4318/v1/traces",
    serviceName: "airlock-agent",
    sampler: "always_on",
    ratio: 1,
    batchDelayMs: 5000,
  });
  const full = tracingSettings({
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://api.honeycomb.io/v1/traces",
    OTEL_SERVICE_NAME: "edge-agent",
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.25",
  });
  assert.deepEqual(full, {
    url: "https://api.honeycomb.io/v1/traces",
    serviceName: "edge-agent",
    sampler: "parentbased_traceidratio",
    ratio: 0.25,
    batchDelayMs: 5000,
  });
});

test("agent: a bad variable is a ConfigError naming it and what to set", () => {
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4317" }, "OTEL_EXPORTER_OTLP_ENDPOINT", /http:\/\/ or https:\/\//],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "not a url" }, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", /not a URL/],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_SAMPLER: "sometimes" },
      "OTEL_TRACES_SAMPLER",
      /use one of always_on/,
    ],
    [
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_TRACES_SAMPLER: "traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "2",
      },
      "OTEL_TRACES_SAMPLER_ARG",
      /number from 0 to 1/,
    ],
  ];
  for (const [env, path, message] of cases) {
    assert.throws(
      () => tracingSettings(env),
      (error: unknown) => error instanceof ConfigError && error.path === path && message.test(error.message),
      path,
    );
  }
});

test("hub: AIRLOCK_OTLP_* and AIRLOCK_TRACES_* with the same rules; errors name the variable", () => {
  assert.equal(hubTracingSettings({}), undefined);
  assert.deepEqual(
    hubTracingSettings({
      AIRLOCK_OTLP_ENDPOINT: "https://api.honeycomb.io",
      AIRLOCK_OTLP_HEADERS: "x-honeycomb-team=abc%3D, x-other = 1",
    }),
    {
      url: "https://api.honeycomb.io/v1/traces",
      headers: { "x-honeycomb-team": "abc=", "x-other": "1" },
      serviceName: "airlock-hub",
      sampler: "always_on",
      ratio: 1,
    },
  );
  assert.throws(
    () => hubTracingSettings({ AIRLOCK_OTLP_ENDPOINT: "http://c:4318", AIRLOCK_OTLP_HEADERS: "novalue" }),
    (e: unknown) => e instanceof HubConfigError && /AIRLOCK_OTLP_HEADERS/.test(e.message),
  );
  assert.throws(
    () => hubTracingSettings({ AIRLOCK_OTLP_ENDPOINT: "http://c:4318", AIRLOCK_TRACES_SAMPLER: "x" }),
    (e: unknown) => e instanceof HubConfigError && /env\.AIRLOCK_TRACES_SAMPLER: "x"/.test(e.message),
  );
});
