/**
 * The seam between the tunnel (control-plane side) and MCP servers. Everything that
 * can serve a channel — one stdio child, one Streamable HTTP URL, or a routing-table
 * aggregate of several — implements {@link Backend}. The dispatcher knows nothing else.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";

/** One MCP interaction, as a polled `jsonrpc` command asks for it. */
export interface McpExchange {
  /**
   * The raw JSON-RPC message from the command: a request, a notification, or a client's
   * answer to an earlier server→client request. Forwarded untouched (ids kept).
   */
  message: JsonRpcMessage;
  /** The command's headers (`Mcp-Session-Id`, `Authorization`, …); they win over static ones. */
  headers: HeaderMap;
  /** Aborted at the command's deadline or on forced shutdown: stop work, the result is discarded. */
  signal: AbortSignal;
  /** Each server message that arrives before the final answer (progress, logging, server→client requests), in order. */
  notify(message: JsonRpcMessage, headers: HeaderMap): void;
}

/** How an exchange ended. */
export type ExchangeResult =
  /** The backend answered a request: a JSON-RPC result or a valid JSON-RPC error, posted as `jsonrpc_response`. */
  | { kind: "response"; status: number; headers: HeaderMap; message: JsonRpcMessage }
  /** A notification (or a client's response) was delivered: posted as `notify_ack` with the backend's status. */
  | { kind: "ack"; status: number; headers: HeaderMap }
  /** No valid MCP answer exists: the dispatcher synthesises `-32603` + `tunnel_failure`. */
  | { kind: "failure"; failure: FailureSpec; headers?: HeaderMap; detail?: string }
  /**
   * The client cancelled this request (`notifications/cancelled`): nothing is posted for it,
   * as a server honouring the cancellation sends nothing.
   */
  | { kind: "cancelled" };

/**
 * The backend's standalone server→client stream (MCP's `GET`), as the hub's `get-stream`
 * extension asks for it with `airlock_stream_open`.
 */
export interface McpStream {
  /** The command's headers (`Mcp-Session-Id`, `Last-Event-ID`, `Authorization`, …). */
  headers: HeaderMap;
  /** Aborted when the client went away (`airlock_cancel`), or to end the stream (shutdown, too many streams). */
  signal: AbortSignal;
  /** The stream is open, with the backend's headers. Called at most once, before any message. */
  opened(headers: HeaderMap): void;
  /** One server message on the open stream, in order. */
  notify(message: JsonRpcMessage): void;
}

/** How a standalone stream ended. */
export type StreamResult =
  /** The stream was open and has ended: the backend closed it, or the signal aborted. `detail` says why when it broke. */
  | { kind: "ended"; detail?: string }
  /** The server answered without opening a stream (405: it offers none); the client gets this status. */
  | { kind: "refused"; status: number; headers: HeaderMap; message?: JsonRpcMessage }
  /** The server could not be reached; posted like an exchange failure. */
  | { kind: "failure"; failure: FailureSpec; detail?: string };

/** Outcome of `session_termination`. */
export type TerminationResult =
  | { kind: "terminated"; status: number; headers: HeaderMap }
  | { kind: "failure"; failure: FailureSpec; detail?: string };

export type BackendState = "starting" | "up" | "restarting" | "failed" | "stopped";

/** What `/readyz`, `/metrics`, `doctor` and the admin UI show about one backend. */
export interface BackendHealth {
  name: string;
  transport: Backend["transport"];
  state: BackendState;
  /** Why the backend is not `up`, in words an operator can act on. */
  reason?: string;
  restarts: number;
  lastError?: string;
  /** Last lines the child wrote to stderr (stdio only), newest last. */
  stderrTail?: string[];
  /** Requests currently in flight. */
  inflight: number;
  /** Nested backends of an aggregate (routing table). */
  members?: BackendHealth[];
  /** The MCP generation the server speaks, once the era bridge had reason to find out (agent/bridge/). */
  era?: "legacy" | "modern";
  /** Legacy sessions the era bridge holds for 2026-07-28 clients. */
  bridgedSessions?: number;
  /** A stdio backend's process model (agent/backends/stdio/sessions.ts). */
  stdio?: StdioChildren;
}

/** How many processes a stdio backend runs, and for whom. */
export interface StdioChildren {
  /** Children alive now (one per session, plus the pool; 1 or 0 when shared). */
  children: number;
  /** MCP sessions with a child of their own. */
  sessions: number;
  /** Children started since the agent started (a restart of one counts in `restarts`, not here). */
  spawns: number;
  /** New sessions refused with 503 because every session child was busy at `max_sessions`. */
  refused: number;
  /** `share: true`: one child serves every client. */
  shared: boolean;
}

export interface Backend {
  readonly name: string;
  /** `memory`: a server inside the agent (Harpoon). */
  readonly transport: "stdio" | "http" | "aggregate" | "memory";
  /** True for process-local bindings (stdio, Harpoon): sessions must stay on the agent that initialised them. */
  readonly procAffinity: boolean;
  /** Start (spawn, connect). Must not throw for a backend that is merely down: health says so instead. */
  start(): Promise<void>;
  exchange(exchange: McpExchange): Promise<ExchangeResult>;
  terminateSession(headers: HeaderMap, signal: AbortSignal): Promise<TerminationResult>;
  /**
   * Open the backend's standalone stream and forward its messages until it ends or
   * `stream.signal` aborts. A backend without one leaves this out (the client gets 405).
   */
  openStream?(stream: McpStream): Promise<StreamResult>;
  health(): BackendHealth;
  /** Stop children and connections; in-flight exchanges end as `transport_closed` failures. */
  close(): Promise<void>;
}
