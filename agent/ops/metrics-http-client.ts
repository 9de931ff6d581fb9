/**
 * tunnel-client's otelhttp client metrics for the agent's outbound HTTP (control plane and MCP
 * servers over HTTP), as its OTel Prometheus exporter writes them: otelhttp v0.63 records the
 * stable semantic conventions' `http.client.request.duration` (s, otelhttp's own buckets) and
 * `http.client.request.body.size` (By, OTel's default buckets), labelled with the method, the
 * server's address, its port when not the scheme's default, the scheme, the protocol, the
 * response status (absent when no response came) and, from tunnel-client's labeler, `http_route`
 * (the request's path). Durations run to the response headers, as a RoundTripper measures them.
 *
 * This sits on the hot path (every poll and post, every MCP call): label sets are resolved once
 * per URL and status, then each request is two `observe` calls on cached children.
 */
import { Histogram, type Registry, type RegistryContentType } from "prom-client";
import type { OutboundRequest } from "../runtime/http-client.ts";
import { OTEL_DEFAULT_BUCKETS } from "./metrics-tunnel-client.ts";

/** otelhttp's explicit boundaries for `http.client.request.duration`. */
export const OTELHTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

const LABELS = [
  "http_request_method",
  "server_address",
  "server_port",
  "url_scheme",
  "network_protocol_name",
  "network_protocol_version",
  "http_response_status_code",
  "http_route",
] as const;
type Labels = Partial<Record<(typeof LABELS)[number], string>>;

/** The methods the conventions know; anything else is `_OTHER`, never a new series. */
const KNOWN_METHODS = new Set(["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]);
const DEFAULT_PORTS: Record<string, string> = { "http:": "80", "https:": "443" };
/** Distinct URLs remembered; past this the cache starts over (URLs carry ids, so it must stay bounded). */
const MAX_TARGETS = 256;

interface Children {
  duration: { observe(value: number): void };
  size: { observe(value: number): void };
}

/** The labels one URL gives, and the children per method and status seen for it. */
interface Target {
  base: Labels;
  children: Map<string, Children>;
}

/** What {@link registerHttpClientMetrics} returns: give it to every outbound `fetch` as its observer. */
export type HttpClientObserver = (request: OutboundRequest) => void;

function targetLabels(url: string): Labels {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { http_route: "/" };
  }
  const labels: Labels = {
    server_address: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    url_scheme: parsed.protocol.slice(0, -1),
    network_protocol_name: "http",
    // What Go's client request says it is (`req.Proto`), whatever the connection negotiates.
    network_protocol_version: "1.1",
    http_route: parsed.pathname || "/",
  };
  if (parsed.port !== "" && parsed.port !== DEFAULT_PORTS[parsed.protocol]) labels.server_port = parsed.port;
  return labels;
}

/** Register the two histograms on `registry`; the returned observer records one request. */
export function registerHttpClientMetrics(registry: Registry<RegistryContentType>): HttpClientObserver {
  const registers = [registry];
  const duration = new Histogram({
    name: "http_client_request_duration_seconds",
    help: "Duration of HTTP client requests.",
    labelNames: LABELS,
    buckets: OTELHTTP_DURATION_BUCKETS,
    registers,
  });
  const size = new Histogram({
    name: "http_client_request_body_size_bytes",
    help: "Size of HTTP client request bodies.",
    labelNames: LABELS,
    buckets: OTEL_DEFAULT_BUCKETS,
    registers,
  });
  const targets = new Map<string, Target>();
  const target = (url: string): Target => {
    let found = targets.get(url);
    if (!found) {
      if (targets.size >= MAX_TARGETS) targets.clear();
      found = { base: targetLabels(url), children: new Map() };
      targets.set(url, found);
    }
    return found;
  };
  return (request) => {
    const { base, children } = target(request.url);
    const key = request.status === undefined ? request.method : `${request.method} ${request.status}`;
    let child = children.get(key);
    if (!child) {
      const method = request.method.toUpperCase();
      const labels: Labels = { ...base, http_request_method: KNOWN_METHODS.has(method) ? method : "_OTHER" };
      if (request.status !== undefined) labels.http_response_status_code = String(request.status);
      child = { duration: duration.labels(labels), size: size.labels(labels) };
      children.set(key, child);
    }
    child.duration.observe(request.seconds);
    child.size.observe(request.bodyBytes);
  };
}
