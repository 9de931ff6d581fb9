/**
 * Synthesised failures. Only when the backend gave no valid MCP answer does the agent
 * invent one: JSON-RPC `-32603` whose `data.tunnel_failure` says, in bounded terms,
 * where the failure happened. It never carries URLs, bodies, exception text or secrets.
 */
import { z } from "zod";

export const FAILURE_SOURCES = [
  "target_http",
  "dns",
  "tls",
  "connect",
  "transport_closed",
  "timeout",
  "protocol",
  "client_internal",
] as const;
export const FailureSource = z.enum(FAILURE_SOURCES);
export type FailureSource = z.infer<typeof FailureSource>;

export const TRANSPORT_ERROR_KINDS = [
  "closed_pipe",
  "connection_aborted",
  "connection_closed",
  "connection_refused",
  "connection_reset",
  "dial",
  "dns",
  "eof",
  "host_unreachable",
  "http_status",
  "invalid_mcp_error",
  "invalid_protocol_response",
  "malformed_json",
  "network_unreachable",
  "non_protocol_response",
  "response_body_missing",
  "response_body_too_large",
  "response_body_unreadable",
  "timeout",
  "tls",
  "unexpected_eof",
  "unknown",
] as const;
export const TransportErrorKind = z.enum(TRANSPORT_ERROR_KINDS);
export type TransportErrorKind = z.infer<typeof TransportErrorKind>;

export interface TunnelFailure {
  version: 1;
  source: FailureSource;
  transport_error_kind?: TransportErrorKind;
  upstream_response_received: boolean;
  upstream_status?: number;
}

const failureCommon = {
  version: z.literal(1),
  transport_error_kind: TransportErrorKind.optional(),
};

/**
 * `error.data.tunnel_failure` as Airlock writes it (the contract publishes it as
 * `x-tunnel-failure-schema`): an upstream status only with `target_http` (which always
 * received a response), and `transport_closed` never received one.
 */
export const TunnelFailureProvenance = z.union([
  z.strictObject({
    ...failureCommon,
    source: z.literal("target_http"),
    upstream_response_received: z.literal(true),
    upstream_status: z.int().min(400).max(599),
  }),
  z.strictObject({
    ...failureCommon,
    source: z.literal("transport_closed"),
    upstream_response_received: z.literal(false),
  }),
  z.strictObject({
    ...failureCommon,
    source: FailureSource.exclude(["target_http", "transport_closed"]),
    upstream_response_received: z.boolean(),
  }),
]);

/** A failure as the backend layer reports it, before it becomes a wire payload. */
export type FailureSpec =
  | { source: "target_http"; status: number; kind?: TransportErrorKind }
  | { source: Exclude<FailureSource, "target_http">; kind?: TransportErrorKind; upstreamResponseReceived?: boolean };

const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** The HTTP reason phrase for a status, as Go's `http.StatusText` would give it. */
export function reasonPhrase(status: number): string {
  return REASON_PHRASES[status] ?? (status >= 500 ? "Internal Server Error" : status >= 400 ? "Bad Request" : "OK");
}

/** The `resp_code` a synthesised failure is posted with: the upstream's 4xx/5xx, else 502 (504 for timeouts). */
export function failureStatus(spec: FailureSpec): number {
  if (spec.source === "target_http") return spec.status;
  return spec.source === "timeout" ? 504 : 502;
}

/** Build the bounded provenance object; enforces the schema's conditional rules. */
export function tunnelFailure(spec: FailureSpec): TunnelFailure {
  if (spec.source === "target_http") {
    return {
      version: 1,
      source: "target_http",
      transport_error_kind: spec.kind ?? "http_status",
      upstream_response_received: true,
      upstream_status: spec.status,
    };
  }
  const received = spec.source === "transport_closed" ? false : (spec.upstreamResponseReceived ?? false);
  const failure: TunnelFailure = { version: 1, source: spec.source, upstream_response_received: received };
  if (spec.kind) failure.transport_error_kind = spec.kind;
  return failure;
}

/** The JSON-RPC error message for a synthesised failure, answering request `id`. */
export function failureMessage(
  id: unknown,
  spec: FailureSpec,
): { jsonrpc: "2.0"; id: unknown; error: { code: -32603; message: string; data: { tunnel_failure: TunnelFailure } } } {
  return {
    jsonrpc: "2.0",
    id: id ?? null,
    error: { code: -32603, message: reasonPhrase(failureStatus(spec)), data: { tunnel_failure: tunnelFailure(spec) } },
  };
}
