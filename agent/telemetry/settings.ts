/**
 * Tracing settings from the standard OpenTelemetry environment variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
 *
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  where spans go, the full URL (…/v1/traces)
 *   OTEL_EXPORTER_OTLP_ENDPOINT         the collector's base URL; `/v1/traces` is appended
 *   OTEL_SERVICE_NAME                   the `service.name` of the agent's spans (default airlock-agent)
 *   OTEL_TRACES_SAMPLER[_ARG]           always_on (default), always_off, traceidratio,
 *                                       parentbased_always_on, parentbased_always_off, parentbased_traceidratio
 *   OTEL_BSP_SCHEDULE_DELAY             ms between two exports of buffered spans (5000)
 *   OTEL_SDK_DISABLED=true              tracing off whatever else is set
 *
 * Without an endpoint tracing is off and the SDK is never loaded.
 *
 * The default sampler is `always_on`, not the SDK's `parentbased_always_on`: a parent
 * based sampler lets whoever sends `traceparent` (any MCP client, through the hub) decide
 * what the agent records. Operators who trust their callers' decision choose a
 * `parentbased_*` sampler. `traceidratio` decides from the trace id alone, so a hub and an
 * agent with the same ratio keep or drop the same traces.
 */
import { ConfigError } from "../config/errors.ts";

export const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const;
export type SamplerName = typeof SAMPLERS[number];

export interface TracingSettings {
  /** The OTLP/HTTP traces URL. */
  url: string;
  serviceName: string;
  sampler: SamplerName;
  /** Sampling ratio for the `*traceidratio` samplers, 0..1. */
  ratio: number;
  /** Ms between two exports of the batch processor. */
  batchDelayMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

function tracesUrl(env: Env): string | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  return base ? `${base.replace(/\/+$/, "")}/v1/traces` : undefined;
}

function checkedUrl(url: string, env: Env): string {
  const name = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError([{ path: name, message: `"${url}" is not a URL; set it to the collector's OTLP/HTTP address, e.g. http://localhost:4318` }]);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new ConfigError([{ path: name, message: `"${url}" must be an http:// or https:// URL (OTLP/HTTP; gRPC is not supported)` }]);
  }
  return url;
}

function sampler(env: Env): { sampler: SamplerName; ratio: number } {
  const raw = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || "always_on";
  if (!(SAMPLERS as readonly string[]).includes(raw)) {
    throw new ConfigError([{ path: "OTEL_TRACES_SAMPLER", message: `"${raw}" is not a sampler Airlock knows; use one of ${SAMPLERS.join(", ")}` }]);
  }
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const ratio = arg ? Number(arg) : 1;
  if (!(ratio >= 0 && ratio <= 1)) {
    throw new ConfigError([{ path: "OTEL_TRACES_SAMPLER_ARG", message: `"${arg}" is not a ratio; set a number from 0 to 1` }]);
  }
  return { sampler: raw as SamplerName, ratio };
}

/** The settings `env` asks for, or undefined when tracing is off. Throws a {@link ConfigError} naming a bad variable. */
export function tracingSettings(env: Env): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return undefined;
  const url = tracesUrl(env);
  if (!url) return undefined;
  const delay = env.OTEL_BSP_SCHEDULE_DELAY?.trim();
  const batchDelayMs = delay ? Number(delay) : 5000;
  if (!Number.isSafeInteger(batchDelayMs) || batchDelayMs < 0) {
    throw new ConfigError([{ path: "OTEL_BSP_SCHEDULE_DELAY", message: `"${delay}" is not a delay; set a whole number of milliseconds` }]);
  }
  return { url: checkedUrl(url, env), serviceName: env.OTEL_SERVICE_NAME?.trim() || "airlock-agent", ...sampler(env), batchDelayMs };
}
