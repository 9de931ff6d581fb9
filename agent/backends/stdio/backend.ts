/**
 * A stdio MCP server as a {@link Backend}: one supervised child process (`child.ts`) — the
 * whole backend with `share: true`, else one session's child or a pool child (`sessions.ts`) —
 * newline-delimited JSON-RPC on its stdin/stdout (`framing.ts`), many exchanges in flight at
 * once through one {@link McpMultiplexer}: several MCP clients may share the child and their
 * ids may collide, so each request goes out under a fresh internal id.
 *
 * Routing of server-initiated messages (stdio carries no relation to a request):
 * - `notifications/progress` → the exchange whose progress token it names; a notification of a
 *   2026-07-28 `subscriptions/listen` → that listen's exchange (its `subscriptionId` stamp names
 *   the internal id, and is given the client's id back);
 * - any other notification or server→client request (sampling, elicitation, roots, ping)
 *   → the most recently started exchange still in flight;
 * - with nothing in flight, to the standalone streams open on this backend (`openStream`,
 *   the hub's `get-stream`): a notification to every one of them (the child is one server
 *   shared by all its clients), a request to the newest only (one client answers it).
 *   With no stream open either, a notification is dropped and a request is answered with
 *   a JSON-RPC error, so the server does not wait forever.
 * Server→client request ids pass through unchanged: there is one server, so they cannot collide.
 *
 * A client's `notifications/cancelled` is forwarded under the internal id, and the
 * cancelled request ends as `cancelled`: nothing is posted for it, as with a server that
 * honours the cancellation.
 *
 * A dead child fails every in-flight exchange (`transport_closed`); after a restart the
 * last `initialize` (and `notifications/initialized`) is replayed so the new child serves
 * the clients' existing sessions.
 */
import type { HeaderMap } from "../../../shared/protocol/commands.ts";
import { headerValue } from "../../../shared/protocol/headers.ts";
import { isNotification, isRequest, isResponse } from "../../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../../shared/jsonrpc.ts";
import type { Logger } from "../../../shared/log.ts";
import { cancelNotice, McpMultiplexer, noCarrierAnswer } from "../../mcp/multiplexer.ts";
import { InflightCounter, NOT_JSON_RPC } from "../inflight.ts";
import type {
  Backend,
  BackendHealth,
  ExchangeResult,
  McpExchange,
  McpStream,
  StreamResult,
  TerminationResult,
} from "../types.ts";
import { ChildSupervisor, CLOSED } from "./child.ts";
import type { ChildOptions, ChildRun } from "./child.ts";

export type StdioBackendOptions = ChildOptions;

const RESPONSE_HEADERS: HeaderMap = { "Content-Type": ["application/json"] };
const ACK: ExchangeResult = { kind: "ack", status: 202, headers: {} };
const PIPE_CLOSED: ExchangeResult = {
  kind: "failure",
  failure: { source: "transport_closed", kind: "closed_pipe" },
  detail: "stdin of the MCP server is closed",
};

/** What a request sent to the child is routed back to. */
interface StdioRequest {
  /** Undefined for the backend's own requests (the `initialize` replay). */
  exchange?: McpExchange;
  session?: string;
  settle(result: ExchangeResult): void;
}

/** Build the stdio backend. Nothing is spawned until `start()` (or the first exchange). */
export function createStdioBackend(options: StdioBackendOptions): Backend {
  return new StdioBackend(options);
}

class StdioBackend implements Backend {
  readonly name: string;
  readonly transport = "stdio";
  readonly procAffinity = true;
  readonly #log: Logger;
  readonly #child: ChildSupervisor;
  readonly #mux = new McpMultiplexer<StdioRequest>();
  readonly #inflight = new InflightCounter();
  /** Open standalone streams, oldest first, each with what ends it. */
  readonly #streams = new Map<McpStream, () => void>();
  /** The clients' handshake, replayed to a restarted child. */
  #lastInitialize: JsonRpcMessage | undefined;
  #sawInitialized = false;

  constructor(options: StdioBackendOptions) {
    this.name = options.name;
    this.#log = options.log.child({ backend: options.name });
    this.#child = new ChildSupervisor(
      { ...options, log: this.#log },
      {
        message: (run, message) => this.#fromChild(run, message),
        prepare: (run) => this.#replayHandshake(run),
        ended: (failure, detail) => this.#failWaiting({ kind: "failure", failure, detail }),
      },
    );
  }

  async start(): Promise<void> {
    this.#child.ensureStarted();
  }

  exchange(exchange: McpExchange): Promise<ExchangeResult> {
    const message = exchange.message;
    if (isRequest(message)) return this.#inflight.track(() => this.#request(exchange, message));
    if (isNotification(message) || isResponse(message)) return this.#send(exchange, message);
    return Promise.resolve(NOT_JSON_RPC);
  }

  /** A stream of what the child sends with no request in flight; it ends when the client goes or the backend closes. */
  async openStream(stream: McpStream): Promise<StreamResult> {
    if (this.#child.closed) return { kind: "failure", failure: CLOSED, detail: "backend closed" };
    this.#child.ensureStarted();
    stream.opened({ "Content-Type": ["text/event-stream"] });
    await new Promise<void>((resolve) => {
      const end = () => {
        stream.signal.removeEventListener("abort", end);
        this.#streams.delete(stream);
        resolve();
      };
      if (stream.signal.aborted) return end();
      this.#streams.set(stream, end);
      stream.signal.addEventListener("abort", end, { once: true });
    });
    return { kind: "ended" };
  }

  async terminateSession(): Promise<TerminationResult> {
    // stdio has no sessions; the child keeps serving everyone else.
    return { kind: "terminated", status: 405, headers: {} };
  }

  health(): BackendHealth {
    const child = this.#child;
    const health: BackendHealth = {
      name: this.name,
      transport: "stdio",
      state: child.state,
      restarts: child.restarts,
      inflight: this.#inflight.count,
      stderrTail: child.stderrTail(),
    };
    const alive = child.state !== "stopped" && child.state !== "failed";
    health.stdio = { children: alive ? 1 : 0, sessions: 0, spawns: child.started ? 1 : 0, refused: 0, shared: true };
    if (child.reason !== undefined) health.reason = child.reason;
    if (child.lastError !== undefined) health.lastError = child.lastError;
    return health;
  }

  async close(): Promise<void> {
    if (this.#child.closed) return;
    this.#child.markClosed();
    this.#failWaiting({ kind: "failure", failure: CLOSED, detail: "backend closed" });
    for (const end of [...this.#streams.values()]) end();
    await this.#child.stop();
  }

  #failWaiting(result: ExchangeResult): void {
    for (const entry of this.#mux.waiting()) entry.context.settle(result);
  }

  /** After a restart, replay the clients' handshake before letting exchanges through. */
  async #replayHandshake(run: ChildRun): Promise<void> {
    const initialize = this.#lastInitialize;
    if (this.#child.restarts === 0 || !initialize) return;
    const answer = await new Promise<ExchangeResult>((resolve) => {
      let internalId = 0;
      const timeout = setTimeout(() => {
        this.#mux.forget(internalId);
        resolve({ kind: "failure", failure: { source: "timeout" } });
      }, this.#child.readyWaitMs);
      const routed = this.#mux.send(
        initialize,
        {
          settle: (result) => {
            clearTimeout(timeout);
            this.#mux.forget(internalId);
            resolve(result);
          },
        },
        undefined,
      );
      internalId = routed.entry.internalId;
      if (!this.#child.write(run, routed.message)) routed.entry.context.settle({ kind: "failure", failure: CLOSED });
    });
    if (answer.kind !== "response" || "error" in answer.message)
      this.#log.warn("replaying initialize to the restarted MCP server failed", { result: answer.kind });
    if (this.#sawInitialized) this.#child.write(run, { jsonrpc: "2.0", method: "notifications/initialized" });
  }

  async #request(exchange: McpExchange, message: JsonRpcMessage & { id: JsonRpcId }): Promise<ExchangeResult> {
    const run = await this.#child.usable(exchange.signal);
    if (!("process" in run)) return run;
    if (message.method === "initialize") this.#lastInitialize = { ...message };
    return new Promise<ExchangeResult>((resolve) => {
      const onAbort = () => {
        if (!this.#mux.has(entry.internalId)) return;
        // Tell the server to stop working on it; the result would be discarded anyway.
        this.#child.write(run, cancelNotice(entry.internalId, "deadline passed"));
        entry.context.settle({
          kind: "failure",
          failure: { source: "timeout", kind: "timeout" },
          detail: "exchange aborted",
        });
      };
      const { entry, message: outgoing } = this.#mux.send(
        message,
        {
          exchange,
          session: headerValue(exchange.headers, "mcp-session-id"),
          settle: (result) => {
            this.#mux.forget(entry.internalId);
            exchange.signal.removeEventListener("abort", onAbort);
            resolve(result);
          },
        },
        message.id,
      );
      exchange.signal.addEventListener("abort", onAbort, { once: true });
      if (exchange.signal.aborted) onAbort();
      else if (!this.#child.write(run, outgoing)) entry.context.settle(PIPE_CLOSED);
    });
  }

  /** Notifications and client responses: written to the child, acknowledged at once. */
  async #send(exchange: McpExchange, message: JsonRpcMessage): Promise<ExchangeResult> {
    const run = await this.#child.usable(exchange.signal);
    if (!("process" in run)) return run;
    if (message.method === "notifications/cancelled") {
      // Same original id, same session when both are known, newest first. An unknown id may
      // be another client's internal id: never forward it unmapped.
      const session = headerValue(exchange.headers, "mcp-session-id");
      const target = this.#mux
        .cancelled(
          message,
          ({ context }) =>
            context.exchange !== undefined &&
            (session === undefined || context.session === undefined || context.session === session),
        )
        .at(-1);
      if (!target) return ACK;
      if (!this.#child.write(run, target.message))
        return { kind: "failure", failure: { source: "transport_closed", kind: "closed_pipe" } };
      target.entry.context.settle({ kind: "cancelled" });
      return ACK;
    }
    if (message.method === "notifications/initialized") this.#sawInitialized = true;
    return this.#child.write(run, message) ? ACK : PIPE_CLOSED;
  }

  #fromChild(run: ChildRun, message: JsonRpcMessage): void {
    if (isResponse(message)) {
      const answer = this.#mux.answer(message);
      if (answer)
        answer.entry.context.settle({
          kind: "response",
          status: 200,
          headers: RESPONSE_HEADERS,
          message: answer.message,
        });
      else this.#log.debug("MCP server answered a request that is no longer waiting", { id: message.id });
      return;
    }
    const progress = this.#mux.progress(message) ?? this.#mux.subscription(message);
    if (progress?.entry.context.exchange) {
      this.#deliver(progress.entry.context.exchange, progress.message);
      return;
    }
    const latest = this.#mux.waiting().findLast((entry) => entry.context.exchange)?.context.exchange;
    if (latest) {
      this.#deliver(latest, message);
      return;
    }
    const open = [...this.#streams.keys()];
    if (isRequest(message)) {
      const newest = open.at(-1);
      if (newest) {
        this.#deliver(newest, message);
        return;
      }
      // Nobody can answer; say so rather than leave the server waiting.
      this.#child.write(run, noCarrierAnswer(message.id));
      this.#log.warn("MCP server sent a request while no client request or stream was open; answered with an error", {
        method: message.method,
      });
      return;
    }
    if (!isNotification(message)) return;
    for (const stream of open) this.#deliver(stream, message);
    if (open.length === 0)
      this.#log.debug("MCP server notification with no request in flight and no stream open; dropped", {
        method: message.method,
      });
  }

  #deliver(target: Pick<McpExchange, "notify">, message: JsonRpcMessage): void {
    try {
      target.notify(message, {});
    } catch (error) {
      this.#log.warn("notify handler failed", { error });
    }
  }
}
