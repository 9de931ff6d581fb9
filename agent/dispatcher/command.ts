/** One accepted command as the dispatcher tracks it, and how it is reported when it ends. */
import { AIRLOCK_STREAM_OPEN, headerValue, tunnelFailure } from "../../shared/protocol/index.ts";
import type { FailureSpec, KnownCommand, StreamOpenCommand } from "../../shared/protocol/index.ts";
import { describeCall } from "../../shared/mcp/methods.ts";
import { clientTraceId } from "../../shared/telemetry/index.ts";
import type { CommandOutcome, CommandReport } from "../events.ts";
import type { CommandTrace } from "../telemetry/command.ts";
import { VERSION } from "../version.ts";

/** Why a command's signal aborted. */
export type AbortCause = "deadline" | "shutdown" | "cancelled";

export interface Entry {
  command: KnownCommand | StreamOpenCommand;
  /** Normalised channel; undefined when the name is invalid. */
  channel: string | undefined;
  receivedAt: number;
  deadline?: number;
  /** Stops the backend's work. */
  controller: AbortController;
  /**
   * Stops posting. The same controller for a command (once its work is abandoned nothing
   * is posted); a stream's own, so a stream told to end still posts that it ended.
   */
  posting: AbortController;
  /** Cancels the deadline timer once the command is done. */
  timer: AbortController;
  /** `streaming`: a standalone stream, outside the queue and the worker pool. */
  state: "queued" | "running" | "streaming" | "done";
  cause?: AbortCause;
  /** Its spans, when tracing is on. */
  trace?: CommandTrace;
}

/**
 * tunnel-client's correlation fields for a command's log lines (`pkg/log/logger.go`):
 * `request_id` (the control plane's), `cmd_request_id` (the command's `X-Request-Id`),
 * `rpc_request_id` (the JSON-RPC id of the message it carries) and `session_id` (its
 * `Mcp-Session-Id`). Only these ids: never arguments, results or other header values.
 * A session id a hub minted never gets here: the hub strips it before the agent sees the
 * command (relay/hub/tunnel-state.ts), so `session_id` is always the MCP server's own.
 */
export function commandLogFields(command: Entry["command"]): Record<string, string | number> {
  const headers = command.headers ?? undefined;
  const cmdRequestId = headerValue(headers, "X-Request-Id");
  const sessionId = headerValue(headers, "Mcp-Session-Id");
  const rpcId = command.command_type === "jsonrpc" && "id" in command.jsonrpc ? command.jsonrpc.id : undefined;
  return {
    request_id: command.request_id,
    ...(cmdRequestId ? { cmd_request_id: cmdRequestId } : {}),
    ...(typeof rpcId === "string" || typeof rpcId === "number" ? { rpc_request_id: rpcId } : {}),
    ...(sessionId ? { session_id: sessionId } : {}),
  };
}

/**
 * tunnel-client's fields for a synthesised failure (`tunnelFailureLogAttrs` in its
 * dispatcher): the same bounded `failure_source` and `transport_error_kind` values the posted
 * `tunnel_failure` carries, so a log pipeline can group failed commands without parsing the
 * answer. A failure without a finer kind logs `unknown`, as tunnel-client's classifier does.
 */
export function failureLogFields(spec: FailureSpec): Record<string, string | number | boolean> {
  const failure = tunnelFailure(spec);
  return {
    failure_source: failure.source,
    transport_error_kind: failure.transport_error_kind ?? "unknown",
    upstream_response_received: failure.upstream_response_received,
    tunnel_client_version: VERSION,
    ...(failure.upstream_status === undefined ? {} : { upstream_status: failure.upstream_status }),
  };
}

/** A command's report without its duration (the dispatcher adds that when it ends). */
export type Report = Omit<CommandReport, "durationMs">;

export function baseReport(entry: Entry, outcome: CommandOutcome): Report {
  const { command } = entry;
  const call =
    command.command_type === "jsonrpc"
      ? describeCall(command.jsonrpc)
      : command.command_type === AIRLOCK_STREAM_OPEN
        ? { method: AIRLOCK_STREAM_OPEN }
        : {};
  const notification = command.command_type === "jsonrpc" && !("id" in command.jsonrpc);
  const traceId = clientTraceId(command.headers ?? undefined, undefined);
  return {
    requestId: entry.command.request_id,
    channel: entry.channel ?? String(entry.command.channel),
    ...call,
    outcome,
    commandType: command.command_type,
    createdAt: command.created_at,
    ...(notification ? { notification } : {}),
    ...(traceId ? { traceId } : {}),
  };
}

/** Outcome of a command whose signal aborted: nothing was posted. */
export function abortedOutcome(entry: Entry): CommandOutcome {
  return entry.cause === "shutdown" ? "undelivered" : entry.cause === "cancelled" ? "cancelled" : "expired";
}
