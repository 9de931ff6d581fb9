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
 * The default sampler is `always_on`: see shared/telemetry/sampling.ts for why.
 */
import { parseSampler, tracesUrl, type SamplerSetting } from "../../shared/telemetry/index.ts";
import { ConfigError } from "../config/errors.ts";

export interface TracingSettings extends SamplerSetting {
  /** The OTLP/HTTP traces URL. */
  url: string;
  serviceName: string;
  /** Ms between two exports of the batch processor. */
  batchDelayMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The traces URL from the endpoint variables; a {@link ConfigError} names the one that is wrong. */
function endpoint(env: Env): string | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!traces && !base) return undefined;
  const url = tracesUrl((traces || base)!, Boolean(traces));
  if ("message" in url)
    throw new ConfigError([
      { path: traces ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT", message: url.message },
    ]);
  return url.url;
}

/** The settings `env` asks for, or undefined when tracing is off. Throws a {@link ConfigError} naming a bad variable. */
export function tracingSettings(env: Env): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return undefined;
  const url = endpoint(env);
  if (!url) return undefined;
  const sampler = parseSampler(env.OTEL_TRACES_SAMPLER, env.OTEL_TRACES_SAMPLER_ARG);
  if ("error" in sampler)
    throw new ConfigError([
      {
        path: sampler.error === "sampler" ? "OTEL_TRACES_SAMPLER" : "OTEL_TRACES_SAMPLER_ARG",
        message: sampler.message,
      },
    ]);
  const delay = env.OTEL_BSP_SCHEDULE_DELAY?.trim();
  const batchDelayMs = delay ? Number(delay) : 5000;
  if (!Number.isSafeInteger(batchDelayMs) || batchDelayMs < 0) {
    throw new ConfigError([
      { path: "OTEL_BSP_SCHEDULE_DELAY", message: `"${delay}" is not a delay; set a whole number of milliseconds` },
    ]);
  }
  return { url, serviceName: env.OTEL_SERVICE_NAME?.trim() || "airlock-agent", ...sampler, batchDelayMs };
}
