/**
 * What the agent's moving parts report as they work. Metrics, the admin UI's recent
 * calls and tests subscribe; the poller and dispatcher only call these hooks, so they
 * stay free of any metrics library. Every hook is optional.
 */
import type { ResponseType } from "../shared/protocol/responses.ts";
import type { HarpoonCallRecord } from "./harpoon/call.ts";
import type { OutboundRequest } from "./runtime/http-client.ts";

export type PollOutcome = "commands" | "empty" | "error" | "unauthorized";

export type CommandOutcome =
  /** A final response (result, backend JSON-RPC error, ack or termination) was posted. */
  | "ok"
  /** A synthesised `-32603` + `tunnel_failure` was posted. */
  | "failure"
  /** The deadline passed before or during work: nothing was posted. */
  | "expired"
  /** The hub said the client went away (`airlock_cancel`): aborted, nothing was posted. */
  | "cancelled"
  /** The channel is unknown or invalid: a 400 error was posted. */
  | "unroutable"
  /** Unknown `command_type` or a malformed command: logged, nothing posted. */
  | "ignored"
  /** The final response could not be delivered to the control plane. */
  | "undelivered";

export interface CommandReport {
  requestId: string;
  channel: string;
  /** JSON-RPC method, when the command carried one; `airlock_stream_open` for a standalone stream. */
  method?: string;
  /** `params.name` of `tools/call` / `prompts/get`, `params.uri` of resource calls. */
  target?: string;
  backend?: string;
  outcome: CommandOutcome;
  /** `resp_code` of the final response, when one was posted. */
  respCode?: number;
  /** Receipt at poll to final post (or drop), milliseconds. */
  durationMs: number;
  /** The command's `command_type` (`jsonrpc`, `session_termination`, …), when it had one. */
  commandType?: string;
  /** A JSON-RPC message without an `id` (tunnel-client's `request_kind="notification"`). */
  notification?: boolean;
  /** The command's `created_at` (control-plane clock), for enqueue-to-response latency. */
  createdAt?: string;
  /** W3C trace id from the command's `traceparent` (the hub's trace, or the client's): finds the call in a trace backend and the audit log. */
  traceId?: string;
}

/** One call an aggregated channel made to one of its backends (routed or fanned out). */
export interface BackendCallReport {
  channel: string;
  /** The member backend's name (not the channel's). */
  backend: string;
  /** JSON-RPC method sent to the backend. */
  method: string;
  /** `ok`: a result or an ack; `error`: a JSON-RPC error answer; `failure`: no valid answer (transport, timeout); `cancelled`: by the client. */
  outcome: "ok" | "error" | "failure" | "cancelled";
  durationMs: number;
}

/** Why a poll failed, as tunnel-client's `commands_poll_errors_total{error_kind}` names it. */
export type PollErrorKind = "timeout" | "context_canceled" | "other";

export interface AgentEvents {
  pollFinished?(outcome: PollOutcome, durationMs: number, commands: number, errorKind?: PollErrorKind): void;
  commandFinished?(report: CommandReport): void;
  /** Commands accepted but not finished (queued + running), and how many are running. */
  queueChanged?(pending: number, running: number): void;
  responsePosted?(type: ResponseType, outcome: "ok" | "gone" | "failed", attempts: number): void;
  /** Per-backend calls of a routing-table aggregate (a single-backend channel reports through `commandFinished`). */
  backendCallFinished?(report: BackendCallReport): void;
  /** Every Harpoon `call_target` attempt, refused ones included (tunnel-client's `harpoon_call_*` metrics). */
  harpoonCallFinished?(record: HarpoonCallRecord): void;
  /** Every outbound HTTP request to the control plane or an MCP server (tunnel-client's `http_client_*` metrics). */
  httpRequestFinished?(request: OutboundRequest): void;
}

/** Fan one event stream out to several listeners. */
export function combineEvents(...listeners: AgentEvents[]): AgentEvents {
  return {
    pollFinished: (...args) => {
      for (const l of listeners) l.pollFinished?.(...args);
    },
    commandFinished: (...args) => {
      for (const l of listeners) l.commandFinished?.(...args);
    },
    queueChanged: (...args) => {
      for (const l of listeners) l.queueChanged?.(...args);
    },
    responsePosted: (...args) => {
      for (const l of listeners) l.responsePosted?.(...args);
    },
    backendCallFinished: (...args) => {
      for (const l of listeners) l.backendCallFinished?.(...args);
    },
    harpoonCallFinished: (...args) => {
      for (const l of listeners) l.harpoonCallFinished?.(...args);
    },
    httpRequestFinished: (...args) => {
      for (const l of listeners) l.httpRequestFinished?.(...args);
    },
  };
}
