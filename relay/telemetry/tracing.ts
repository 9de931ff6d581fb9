/**
 * The hub's tracing: configured by the AIRLOCK_OTLP_* / AIRLOCK_TRACES_* variables
 * (relay/config.ts), off when no endpoint is set. The SDK part (otel.ts) is evaluated only
 * when tracing is on; with it off, a request pays one cached lookup.
 *
 * Workers give no background time outside a request, so spans are buffered and sent with
 * one OTLP/JSON `fetch` that the request's `waitUntil` keeps alive ({@link HubTracing.flush}).
 */
import { NO_SPAN, parseSampler, tracesUrl } from "../../shared/telemetry/index.ts";
import type { SamplerSetting, StartSpan } from "../../shared/telemetry/index.ts";
import { HubConfigError, type HubVars } from "../config.ts";

export interface HubTracingSettings extends SamplerSetting {
  url: string;
  headers: Record<string, string>;
  serviceName: string;
}

export interface HubTracing {
  readonly enabled: boolean;
  start: StartSpan;
  /** Send the spans ended so far; never rejects (a collector that is down loses spans, not requests). */
  flush(): Promise<void>;
}

export const HUB_TRACING_OFF: HubTracing = { enabled: false, start: () => NO_SPAN, flush: async () => {} };

/** `name=value,…` as OTEL_EXPORTER_OTLP_HEADERS writes it (values URL-encoded). */
function parseHeaders(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (raw ?? "").split(",")) {
    if (!pair.trim()) continue;
    const at = pair.indexOf("=");
    if (at <= 0)
      throw new HubConfigError(
        "invalid hub setting: env.AIRLOCK_OTLP_HEADERS: expected name=value pairs separated by commas",
      );
    out[pair.slice(0, at).trim()] = decodeURIComponent(pair.slice(at + 1).trim());
  }
  return out;
}

/** The tracing settings `vars` ask for, or undefined when tracing is off. Throws {@link HubConfigError} naming a bad variable. */
export function hubTracingSettings(vars: HubVars): HubTracingSettings | undefined {
  const endpoint = vars.AIRLOCK_OTLP_ENDPOINT?.trim();
  if (!endpoint) return undefined;
  const url = tracesUrl(endpoint, false);
  if ("message" in url) throw new HubConfigError(`invalid hub setting: env.AIRLOCK_OTLP_ENDPOINT: ${url.message}`);
  const sampler = parseSampler(vars.AIRLOCK_TRACES_SAMPLER, vars.AIRLOCK_TRACES_SAMPLER_ARG);
  if ("error" in sampler) {
    throw new HubConfigError(
      `invalid hub setting: env.${sampler.error === "sampler" ? "AIRLOCK_TRACES_SAMPLER" : "AIRLOCK_TRACES_SAMPLER_ARG"}: ${sampler.message}`,
    );
  }
  return {
    url: url.url,
    headers: parseHeaders(vars.AIRLOCK_OTLP_HEADERS),
    serviceName: vars.AIRLOCK_OTEL_SERVICE_NAME?.trim() || "airlock-hub",
    ...sampler,
  };
}

let cached: { key: string; tracing: Promise<HubTracing> } | undefined;

/** The hub's tracing for `vars`, created once per isolate and settings. */
export function hubTracing(vars: HubVars): Promise<HubTracing> {
  const key = [
    vars.AIRLOCK_OTLP_ENDPOINT,
    vars.AIRLOCK_OTLP_HEADERS,
    vars.AIRLOCK_OTEL_SERVICE_NAME,
    vars.AIRLOCK_TRACES_SAMPLER,
    vars.AIRLOCK_TRACES_SAMPLER_ARG,
  ].join("\n");
  if (cached?.key === key) return cached.tracing;
  const settings = hubTracingSettings(vars);
  const tracing = settings
    ? import("./otel.ts").then(({ createHubTracing }) => createHubTracing(settings))
    : Promise.resolve(HUB_TRACING_OFF);
  cached = { key, tracing };
  return tracing;
}
