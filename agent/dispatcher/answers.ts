/** What the dispatcher posts for each way a backend's work can end. */
import { apiError, failureMessage, failureStatus, filterResponseHeaders } from "../../shared/protocol/index.ts";
import type { FailureSpec } from "../../shared/protocol/index.ts";
import type { ExchangeResult, StreamResult, TerminationResult } from "../backends/types.ts";
import type { FinalAnswer } from "../control-plane/poster.ts";
import type { Entry } from "./command.ts";

/** A backend that threw: reported like a failure it returned. */
export type InternalFailure = { kind: "failure"; failure: FailureSpec };

/** At most this much of an invalid channel name is quoted back. */
const MAX_QUOTED_CHANNEL = 80;

/**
 * The 400 answer for a channel this agent cannot route; a session termination gets its own
 * response type with no body, as tunnel-client answers it (the service expects that type).
 */
export function unroutable(entry: Entry, id: unknown): FinalAnswer {
  if (entry.command.command_type === "session_termination")
    return { type: "session_termination_response", status: 400 };
  const raw = String(entry.command.channel ?? "").slice(0, MAX_QUOTED_CHANNEL);
  const message =
    entry.channel === undefined
      ? `invalid channel ${JSON.stringify(raw)}: channel names use lowercase letters, digits, '-' and '_'`
      : `unknown channel ${JSON.stringify(entry.channel)}: no MCP server is configured for it on this agent`;
  return {
    type: "jsonrpc_response",
    status: 400,
    message: { jsonrpc: "2.0", id: id ?? null, error: { code: -32603, message } },
  };
}

/** The final answer for an exchange result; failures become `-32603` with the request's id; a cancelled request gets none. */
export function exchangeAnswer(result: ExchangeResult | InternalFailure, id: unknown): FinalAnswer | undefined {
  switch (result.kind) {
    case "cancelled":
      return undefined;
    case "response":
      return { type: "jsonrpc_response", status: result.status, headers: result.headers, message: result.message };
    case "ack":
      return { type: "notify_ack", status: result.status, headers: result.headers };
    case "failure": {
      const answer: FinalAnswer = {
        type: "jsonrpc_response",
        status: failureStatus(result.failure),
        message: failureMessage(id, result.failure),
      };
      if ("headers" in result && result.headers) answer.headers = result.headers;
      return answer;
    }
  }
}

/** A stream that was open ended: the client's SSE response ends too. */
export const STREAM_ENDED: FinalAnswer = { type: "notify_ack", status: 200 };

/** The final answer for a stream that never opened: the backend's status, or a synthesised failure. */
export function streamAnswer(result: StreamResult | InternalFailure): FinalAnswer {
  switch (result.kind) {
    case "ended":
      return STREAM_ENDED;
    case "refused":
      return result.message
        ? { type: "jsonrpc_response", status: result.status, headers: result.headers, message: result.message }
        : { type: "notify_ack", status: result.status, headers: result.headers };
    case "failure":
      return {
        type: "jsonrpc_response",
        status: failureStatus(result.failure),
        message: failureMessage(null, result.failure),
      };
  }
}

/** Session termination always answers `session_termination_response`, without a body, failures included. */
export function terminationAnswer(result: TerminationResult | InternalFailure): FinalAnswer {
  return result.kind === "terminated"
    ? { type: "session_termination_response", status: result.status, headers: result.headers }
    : { type: "session_termination_response", status: failureStatus(result.failure) };
}

/**
 * The answer to `oauth_discovery`, as tunnel-client posts it: the protected-resource metadata
 * document with the status it was served with. A command on another channel, or on an agent
 * whose main channel has no HTTP MCP server, gets tunnel-client's 400 `unsupported_channel`;
 * a discovery that found nothing gets 502 naming why (tunnel-client posts nothing then, and
 * the service waits for its timeout).
 */
export function oauthDiscoveryAnswer(
  result:
    | { metadata?: { document: Record<string, unknown>; status: number; headers: Headers }; error?: string }
    | string,
): FinalAnswer {
  if (typeof result === "string")
    return {
      type: "oauth_discovery_response",
      status: 400,
      message: apiError(result, "invalid_request_error", "unsupported_channel"),
    };
  if (!result.metadata)
    return {
      type: "oauth_discovery_response",
      status: 502,
      message: apiError(result.error ?? "oauth discovery failed", "server_error", "oauth_discovery_failed"),
    };
  return {
    type: "oauth_discovery_response",
    status: result.metadata.status,
    message: result.metadata.document,
    headers: filterResponseHeaders(result.metadata.headers),
  };
}
