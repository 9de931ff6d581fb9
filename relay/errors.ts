/**
 * Every error the hub returns uses the upstream service's envelope
 * (`APIErrorResponse`: `{"error":{"message","type","param","code"}}`) with the
 * contract's stable codes, so OpenAI's own tunnel-client and MCP clients read it
 * the same way. A {@link HubError} is a plain value: it crosses the Durable Object
 * RPC boundary and becomes a Response only at the edge.
 */
import { apiError } from "../shared/protocol/index.ts";

/** Stable codes from `APIErrorBody.code` in docs/openapi.json, plus the few the hub adds (marked). */
export type HubErrorCode =
  | "invalid_tunnel_id_format"
  | "invalid_channel_format"
  | "invalid_json_payload"
  | "missing_mcp_session_id"
  | "pending_request_not_found"
  | "request_body_too_large"
  | "tunnel_client_not_connected"
  | "tunnel_queue_full"
  | "tunnel_request_mismatch"
  | "tunnel_use_forbidden"
  | "rate_limit_exceeded"
  /** OpenAI's platform code for a wrong or missing API key. */
  | "invalid_api_key"
  /** Hub: the agent that owned an MCP session is gone; the client must initialize again. */
  | "mcp_session_agent_gone"
  /** Hub: the MCP session is not (or no longer) known: it ended, or expired idle; the client must initialize again. */
  | "mcp_session_not_found"
  /** Hub: no final response arrived before the command's deadline. */
  | "tunnel_response_timeout"
  /** Hub: the standalone GET stream needs an agent that declared the `get-stream` extension. */
  | "method_not_allowed"
  /** Hub: the Worker's own configuration is invalid. */
  | "hub_misconfigured"
  /** Hub admin API: the tunnel comes from AIRLOCK_TUNNELS and cannot be changed at runtime. */
  | "tunnel_read_only";

export interface HubError {
  status: number;
  code: HubErrorCode | null;
  message: string;
  /** Query parameter or field the error is about, when there is one. */
  param?: string;
  /** Seconds, for 429/503. */
  retryAfter?: number;
}

function errorType(status: number): string {
  if (status === 401 || status === 403) return "authentication_error";
  if (status === 429) return "rate_limit_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

/** The envelope body for an error. */
export function errorBody(error: HubError): ReturnType<typeof apiError> {
  const body = apiError(error.message, errorType(error.status), error.code);
  if (error.param) body.error.param = error.param;
  return body;
}

/** Render an error as its HTTP response (JSON envelope, `Retry-After` when set). */
export function errorResponse(error: HubError, extraHeaders?: HeadersInit): Response {
  const headers = new Headers(extraHeaders);
  headers.set("Content-Type", "application/json");
  if (error.retryAfter !== undefined) headers.set("Retry-After", String(Math.max(1, Math.ceil(error.retryAfter))));
  return new Response(JSON.stringify(errorBody(error)), { status: error.status, headers });
}

/** The error for a tunnel id that is not `tunnel_` + 32 lowercase alphanumerics. */
export function invalidTunnelId(id: string): HubError {
  return {
    status: 400,
    code: "invalid_tunnel_id_format",
    message: `"${id.slice(0, 80)}" is not a tunnel id: tunnel ids are "tunnel_" followed by 32 lowercase letters or digits. Use the exact id the hub was configured with.`,
  };
}

/** The error for a channel name outside `[a-z0-9][a-z0-9_-]{0,63}`. */
export function invalidChannel(channel: string, where: string): HubError {
  return {
    status: 400,
    code: "invalid_channel_format",
    param: "channel",
    message: `${where}: "${channel.slice(0, 80)}" is not a channel name; use lowercase letters, digits, '-' and '_' (at most 64).`,
  };
}
