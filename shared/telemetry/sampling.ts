/**
 * The operator's sampler setting, as both sides read it (`OTEL_TRACES_SAMPLER[_ARG]` on the
 * agent, `AIRLOCK_TRACES_SAMPLER[_ARG]` on the hub).
 *
 * The default is `always_on`, not the OpenTelemetry SDK's `parentbased_always_on`: a parent
 * based sampler lets whoever sends `traceparent` (any MCP client) decide what is recorded.
 * Operators who trust their callers' decision choose a `parentbased_*` sampler.
 * `traceidratio` decides from the trace id alone, so a hub and an agent with the same
 * ratio keep or drop the same traces.
 */
export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export interface SamplerSetting {
  sampler: SamplerName;
  /** Sampling ratio for the `*traceidratio` samplers, 0..1. */
  ratio: number;
}

/** Parse a sampler name and argument; the error says which of the two is wrong and what to set. */
export function parseSampler(
  name: string | undefined,
  arg: string | undefined,
): SamplerSetting | { error: "sampler" | "ratio"; message: string } {
  const raw = name?.trim().toLowerCase() || "always_on";
  if (!(SAMPLERS as readonly string[]).includes(raw)) {
    return { error: "sampler", message: `"${raw}" is not a sampler Airlock knows; use one of ${SAMPLERS.join(", ")}` };
  }
  const text = arg?.trim();
  const ratio = text ? Number(text) : 1;
  if (!(ratio >= 0 && ratio <= 1))
    return { error: "ratio", message: `"${text}" is not a ratio; set a number from 0 to 1` };
  return { sampler: raw as SamplerName, ratio };
}

/**
 * The OTLP/HTTP traces URL for a configured endpoint: a full `…/v1/traces` URL is kept, a
 * collector's base URL gets `/v1/traces` appended. Undefined with an error message when it is
 * not an http(s) URL.
 */
export function tracesUrl(endpoint: string, full: boolean): { url: string } | { message: string } {
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    return { message: `"${endpoint}" is not a URL; set the collector's OTLP/HTTP address, e.g. http://localhost:4318` };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { message: `"${endpoint}" must be an http:// or https:// URL (OTLP/HTTP; gRPC is not supported)` };
  }
  return { url: full ? endpoint : `${endpoint.replace(/\/+$/, "")}/v1/traces` };
}
