/**
 * A stdio MCP server run as one child per MCP session: the default process model.
 *
 * A stdio server is one client's server (the MCP stdio transport has exactly one client),
 * and most servers keep per-client state in the process: the client's info and
 * capabilities, the negotiated protocol version, subscriptions, log level, tools
 * registered on the fly. One child shared by every user leaks that state between them, and
 * the first client fixes the protocol era for all. So:
 *
 * - an `initialize` without a session starts a new child and the session's id is minted
 *   here, in the answer's `Mcp-Session-Id` (stdio has no session id of its own; the hub
 *   then pins the session to this agent and passes the id on every later request and on
 *   `DELETE`, as for an HTTP server's own id);
 * - a request carrying the id goes to that session's child; an id this agent does not hold
 *   (reaped, evicted, agent restarted) gets HTTP 404, so the client starts a new session;
 * - `DELETE` (session termination) stops the session's child;
 * - at most `maxSessions` children: past the bound the least recently used evictable one
 *   stops — nothing in flight, no stream open, and no request for {@link EVICTION_GRACE_MS}
 *   (a session that has just answered `initialize` is about to send `notifications/initialized`:
 *   stopping it would answer that 404). With none evictable the new session is refused (HTTP 503,
 *   `Retry-After`, a JSON-RPC error naming `max_sessions`) rather than a live one cut off;
 * - a child with nothing in flight and no request for `idleTimeoutMs` stops, even with a GET
 *   stream open (the stream ends cleanly; a client that only listens for hours would otherwise
 *   hold a child forever; its next request gets 404 and, as the spec has it, it starts a new session);
 * - a request without a session (a modern, stateless one) goes to a small shared pool; a
 *   legacy one there (a client that ignores session ids) first has the pool child given the
 *   latest client `initialize`, as the one shared child had seen it before. The pool is split
 *   by era: a child serves the era of the first request it took, and the other era gets a
 *   child of its own, so a legacy handshake never reaches a child modern clients use;
 * - each child is a {@link createStdioBackend} with its own supervision: a crash fails that
 *   session's requests in flight, restarts that child only and replays its handshake.
 *
 * `share: true` in the config keeps one child for everyone instead (the factory builds a
 * plain {@link createStdioBackend}); that is right for servers known to be stateless.
 */
import type { HeaderMap } from "../../../shared/protocol/commands.ts";
import { headerValue } from "../../../shared/protocol/headers.ts";
import { isRequest, type JsonRpcId, type JsonRpcMessage } from "../../../shared/jsonrpc.ts";
import { isModernMessage } from "../../../shared/mcp/era.ts";
import type {
  Backend,
  BackendHealth,
  StdioChildren,
  ExchangeResult,
  McpExchange,
  McpStream,
  StreamResult,
  TerminationResult,
} from "../types.ts";
import { createStdioBackend, type StdioBackendOptions } from "./backend.ts";
import { CLOSED } from "./child.ts";

export interface StdioPoolSettings {
  /** Children kept for sessions at once. Default {@link DEFAULT_MAX_SESSIONS}. */
  maxSessions?: number;
  /** A session's child with nothing in flight and no request this long is stopped. Default 10 min. */
  idleTimeoutMs?: number;
  /** A session is not evicted for a new one until it has had no request this long. Default {@link EVICTION_GRACE_MS}. */
  evictionGraceMs?: number;
  /** Children serving requests that carry no session. Default 1. */
  poolSize?: number;
  now?: () => number;
}

export const DEFAULT_MAX_SESSIONS = 32;
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_POOL_SIZE = 1;
/**
 * How long a session must have been quiet before a new session may evict it: long enough for a
 * client's handshake (`initialize`, then `notifications/initialized`, `tools/list`) and the
 * next call of a working client, short enough that abandoned sessions make room soon.
 */
export const EVICTION_GRACE_MS = 30_000;
/** A refused new session: -32000 opens JSON-RPC's range for implementation-defined server errors. */
const SESSIONS_EXHAUSTED = -32000;
const SESSION_HEADER = "Mcp-Session-Id";
const JSON_HEADERS: HeaderMap = { "Content-Type": ["application/json"] };
/** What the SDKs' Streamable HTTP servers answer for an unknown session. */
const SESSION_NOT_FOUND = -32001;
/** The sweep runs this often at most (a short `idle_timeout` sweeps faster). */
const MAX_SWEEP_MS = 30_000;

interface SessionChild {
  backend: Backend;
  lastUsed: number;
  /** Streams open on the session: a client listening is not idle. */
  streams: number;
}

/** The stdio backend with one child per MCP session (see the module comment). */
export function createStdioSessionBackend(
  options: StdioBackendOptions,
  settings: StdioPoolSettings = {},
): Backend & { sweep(): void } {
  return new StdioSessionBackend(options, settings);
}

class StdioSessionBackend implements Backend {
  // Children are started lazily by their first exchange; start() starts the pool.
  readonly name: string;
  readonly transport = "stdio";
  readonly procAffinity = true;
  readonly #options: StdioBackendOptions;
  readonly #maxSessions: number;
  readonly #idleMs: number;
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #sessions = new Map<string, SessionChild>();
  readonly #pool: Backend[] = [];
  #next = 0;
  #spawns = 0;
  /** New sessions refused because every session was busy. */
  #refused = 0;
  /** Restarts of children already stopped, so the restart counter never goes back. */
  #retiredRestarts = 0;
  #lastStopped: BackendHealth | undefined;
  /** The latest successful client `initialize`, for pool children reached by legacy requests without a session. */
  #lastInitialize: JsonRpcMessage | undefined;
  readonly #handshaken = new WeakSet<Backend>();
  /** The era each pool child serves, from the first request without a session it took. */
  readonly #poolEras = new WeakMap<Backend, "legacy" | "modern">();
  #sweep: ReturnType<typeof setInterval> | undefined;
  /** Children being stopped (reaped, evicted, ended): `close()` waits for them too, so none outlives the agent. */
  readonly #stopping = new Set<Promise<void>>();
  #closed = false;

  constructor(options: StdioBackendOptions, settings: StdioPoolSettings) {
    this.name = options.name;
    this.#options = options;
    this.#maxSessions = settings.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.#idleMs = settings.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#graceMs = Math.min(settings.evictionGraceMs ?? EVICTION_GRACE_MS, this.#idleMs);
    this.#now = settings.now ?? Date.now;
    for (let i = 0; i < (settings.poolSize ?? DEFAULT_POOL_SIZE); i++) this.#pool.push(this.#spawn());
  }

  async start(): Promise<void> {
    // The pool starts with the agent, so a broken command shows at once (readiness, doctor).
    await Promise.all(this.#pool.map((child) => child.start()));
    this.#sweep ??= setInterval(() => this.sweep(), Math.max(10, Math.min(MAX_SWEEP_MS, this.#idleMs / 4)));
    this.#sweep.unref?.();
  }

  exchange(exchange: McpExchange): Promise<ExchangeResult> {
    const sessionId = headerValue(exchange.headers, SESSION_HEADER);
    if (sessionId !== undefined) {
      const session = this.#use(sessionId);
      return session
        ? this.#exchangeOn(session, exchange)
        : Promise.resolve(unknownSession(exchange.message, sessionId));
    }
    if (isRequest(exchange.message) && exchange.message.method === "initialize") return this.#open(exchange);
    const modern = isModernMessage(exchange.message);
    const child = this.#pooled(modern ? "modern" : "legacy");
    const initialize = this.#lastInitialize;
    if (!initialize || modern || this.#handshaken.has(child)) return child.exchange(exchange);
    return this.#handshake(child, initialize, exchange.signal).then(() => child.exchange(exchange));
  }

  /** A legacy request without a session expects an initialised server: give the pool child the latest handshake once. */
  async #handshake(child: Backend, initialize: JsonRpcMessage, signal: AbortSignal): Promise<void> {
    this.#handshaken.add(child);
    const answer = await child.exchange({
      message: { ...initialize, id: "airlock-pool-initialize" },
      headers: {},
      signal,
      notify: () => {},
    });
    if (answer.kind === "response" && !("error" in answer.message)) {
      await child.exchange({
        message: { jsonrpc: "2.0", method: "notifications/initialized" },
        headers: {},
        signal,
        notify: () => {},
      });
    }
  }

  async openStream(stream: McpStream): Promise<StreamResult> {
    const sessionId = headerValue(stream.headers, SESSION_HEADER);
    const session = sessionId === undefined ? undefined : this.#use(sessionId);
    if (sessionId !== undefined && !session) {
      return { kind: "refused", status: 404, headers: JSON_HEADERS, message: sessionNotFound(null, sessionId) };
    }
    // A standalone stream is a 2025-era thing: without a session it belongs to the legacy part of the pool.
    const target = session?.backend ?? this.#pooled("legacy");
    if (!target.openStream) return { kind: "refused", status: 405, headers: {} };
    if (session) session.streams++;
    try {
      return await target.openStream(stream);
    } finally {
      if (session) {
        session.streams--;
        session.lastUsed = this.#now();
      }
    }
  }

  async terminateSession(headers: HeaderMap): Promise<TerminationResult> {
    const sessionId = headerValue(headers, SESSION_HEADER);
    if (sessionId === undefined) return { kind: "terminated", status: 400, headers: {} };
    const session = this.#sessions.get(sessionId);
    if (!session) return { kind: "terminated", status: 404, headers: {} };
    await this.#stop(sessionId, session);
    return { kind: "terminated", status: 204, headers: {} };
  }

  health(): BackendHealth {
    const live = [...this.#pool, ...[...this.#sessions.values()].map((s) => s.backend)].map((b) => b.health());
    // The state shown is the pool's (it always exists); a session child's trouble is its session's.
    const first = live[0] ?? this.#lastStopped!;
    const health: BackendHealth = {
      ...first,
      name: this.name,
      restarts: this.#retiredRestarts + live.reduce((sum, h) => sum + h.restarts, 0),
      inflight: live.reduce((sum, h) => sum + h.inflight, 0),
      stdio: this.children(),
    };
    return health;
  }

  children(): StdioChildren {
    return {
      children: this.#pool.length + this.#sessions.size,
      sessions: this.#sessions.size,
      spawns: this.#spawns,
      refused: this.#refused,
      shared: false,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    const all = [...this.#pool, ...[...this.#sessions.values()].map((s) => s.backend)];
    this.#sessions.clear();
    await Promise.all([...all.map((b) => b.close()), ...this.#stopping]);
  }

  /**
   * Stop children with nothing in flight and no request for `idleTimeoutMs`, open GET streams
   * or not: closing the child ends its streams cleanly (run on a timer; exposed for tests with a manual clock).
   */
  sweep(): void {
    const now = this.#now();
    for (const [id, session] of [...this.#sessions]) {
      if (session.backend.health().inflight === 0 && now - session.lastUsed >= this.#idleMs) {
        this.#options.log.info("stopping idle stdio child of an MCP session", {
          backend: this.name,
          idleMs: now - session.lastUsed,
          streams: session.streams,
        });
        void this.#stop(id, session);
      }
    }
  }

  #spawn(): Backend {
    this.#spawns++;
    return createStdioBackend(this.#options);
  }

  /**
   * A pool child for a request of `era`: one that serves that era already, or one no request
   * has reached yet; with none, one more child joins the pool for that era (so the pool holds
   * at most one child beyond its size). Dual-era servers (SDK v2, Python 2.x) fix the era per
   * connection with the first client's, so modern and legacy clients never share a child.
   */
  #pooled(era: "legacy" | "modern"): Backend {
    let fitting = this.#pool.filter((child) => (this.#poolEras.get(child) ?? era) === era);
    if (fitting.length === 0) {
      this.#options.log.info("starting a stdio pool child for the other MCP era", { backend: this.name, era });
      const child = this.#spawn();
      this.#pool.push(child);
      fitting = [child];
    }
    const child = fitting[this.#next % fitting.length]!;
    this.#next++;
    this.#poolEras.set(child, era);
    return child;
  }

  /** Idle time counts from the end of the last exchange: a slow start or a long call is not idleness. */
  async #exchangeOn(session: SessionChild, exchange: McpExchange): Promise<ExchangeResult> {
    try {
      return await session.backend.exchange(exchange);
    } finally {
      session.lastUsed = this.#now();
    }
  }

  #use(sessionId: string): SessionChild | undefined {
    const session = this.#sessions.get(sessionId);
    if (!session) return undefined;
    // Map order is recency order: the first entry is the least recently used.
    this.#sessions.delete(sessionId);
    this.#sessions.set(sessionId, session);
    session.lastUsed = this.#now();
    return session;
  }

  /** A new session: a new child, its `initialize`, the minted id on the answer. */
  async #open(exchange: McpExchange): Promise<ExchangeResult> {
    if (this.#closed) return { kind: "failure", failure: CLOSED, detail: "backend closed" };
    if (!this.#makeRoom()) return this.#refuse(exchange.message);
    const sessionId = `stdio-${crypto.randomUUID()}`;
    const session: SessionChild = { backend: this.#spawn(), lastUsed: this.#now(), streams: 0 };
    this.#sessions.set(sessionId, session);
    const result = await this.#exchangeOn(session, exchange);
    if (result.kind === "response" && !("error" in result.message)) {
      this.#lastInitialize = exchange.message;
      return { ...result, headers: { ...result.headers, [SESSION_HEADER]: [sessionId] } };
    }
    // No session came of it: nothing will ever use this child.
    await this.#stop(sessionId, session);
    return result;
  }

  /**
   * Past the bound, the least recently used evictable session goes; false when every session is
   * busy. Synchronous, so two `initialize`s at once cannot both take the last place.
   */
  #makeRoom(): boolean {
    if (this.#sessions.size < this.#maxSessions) return true;
    const now = this.#now();
    for (const [id, session] of this.#sessions) {
      if (!idle(session) || now - session.lastUsed < this.#graceMs) continue;
      this.#options.log.info("stopping the least recently used stdio child: max_sessions reached", {
        backend: this.name,
        maxSessions: this.#maxSessions,
        idleMs: now - session.lastUsed,
      });
      void this.#stop(id, session);
      return true;
    }
    return false;
  }

  /** Every session is busy: refuse the new one (HTTP 503, `Retry-After`) rather than cut a live one off. */
  #refuse(message: JsonRpcMessage): ExchangeResult {
    this.#refused++;
    this.#options.log.warn("refusing a new MCP session: every stdio child is busy and max_sessions is reached", {
      backend: this.name,
      maxSessions: this.#maxSessions,
    });
    const id = isRequest(message) ? message.id : null;
    const error = {
      code: SESSIONS_EXHAUSTED,
      message:
        `stdio backend ${this.name}: all ${this.#maxSessions} session children (max_sessions) are busy; ` +
        "retry later, or raise max_sessions for this backend (backends[].max_sessions or mcp.commands[].max_sessions)",
    };
    return {
      kind: "response",
      status: 503,
      headers: { ...JSON_HEADERS, "Retry-After": [String(Math.max(1, Math.ceil(this.#graceMs / 1000)))] },
      message: { jsonrpc: "2.0", id, error } as JsonRpcMessage,
    };
  }

  async #stop(sessionId: string, session: SessionChild): Promise<void> {
    if (this.#sessions.get(sessionId) !== session) return;
    this.#sessions.delete(sessionId);
    const health = session.backend.health();
    this.#retiredRestarts += health.restarts;
    this.#lastStopped = health;
    const stopped = session.backend.close();
    this.#stopping.add(stopped);
    try {
      await stopped;
    } finally {
      this.#stopping.delete(stopped);
    }
  }
}

function idle(session: SessionChild): boolean {
  return session.streams === 0 && session.backend.health().inflight === 0;
}

/** As a Streamable HTTP server answers a session it does not know: 404, and the client starts a new one. */
function unknownSession(message: JsonRpcMessage, sessionId: string): ExchangeResult {
  if (!isRequest(message)) return { kind: "ack", status: 404, headers: {} };
  return { kind: "response", status: 404, headers: JSON_HEADERS, message: sessionNotFound(message.id, sessionId) };
}

function sessionNotFound(id: JsonRpcId | null, sessionId: string): JsonRpcMessage {
  return {
    jsonrpc: "2.0",
    id,
    error: {
      code: SESSION_NOT_FOUND,
      message:
        `MCP session ${sessionId.slice(0, 80)} is not held by this agent (ended, idle longer than idle_timeout, ` +
        "or the agent restarted); send initialize again",
    },
  } as JsonRpcMessage;
}
