/**
 * Per-client-session state of an aggregated channel. The aggregate hands the client one
 * `Mcp-Session-Id`; behind it each backend has its own session (HTTP backends return
 * their own id, stdio backends have none), plus what must be translated both ways while
 * the session lives: the client's requests in flight (for `notifications/cancelled`),
 * the session's {@link McpMultiplexer} (ids of backend calls, progress tokens, the backends'
 * server→client requests waiting for the client's answer), the client's
 * standalone stream when it has one open, and notifications waiting for a request of
 * this session (or its stream) to carry them.
 *
 * Sessions live in this agent process only (the aggregate declares `proc_affinity`), are
 * forgotten after `idleMs` without use, and at most `maxSessions` are kept (the least
 * recently used goes first).
 */
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { McpExchange } from "../backends/types.ts";
import { McpMultiplexer } from "../mcp/multiplexer.ts";
import type { Logger } from "../../shared/log.ts";

/** A backend's side of one client session. */
export type MemberSlot =
  | {
      state: "ready";
      /** The backend's own session id; undefined for backends without sessions (stdio). */
      sessionId?: string;
      protocolVersion: string;
      capabilities: Record<string, unknown>;
      instructions?: string;
    }
  | {
      state: "failed";
      reason: string;
      failure: FailureSpec;
      /** Consecutive failed attempts (drives the backoff). */
      attempts: number;
      /** Not retried before this time (`now` clock). */
      retryAt: number;
    }
  | { state: "new" };

/** A request of the client being served, for cancellation. */
export interface InflightRequest {
  /** The client's id; the backend calls made for it are registered under it in the session's multiplexer. */
  id: JsonRpcId;
  controller: AbortController;
  /** The client cancelled it (`notifications/cancelled`): nothing is answered. */
  cancelled?: boolean;
}

/** What the session's multiplexer knows of a call to a backend: the backend it went to. */
export interface MemberCallRoute {
  member: string;
}

/** Where a message for the client can go: a request in flight, or the session's standalone stream. */
export type MessageSink = Pick<McpExchange, "notify">;

/** The client's standalone stream (`GET`) on this session. */
export interface SessionStream extends MessageSink {
  /** End it (the session ended, or a newer stream replaces it). */
  end(): void;
}

export interface ClientSession {
  readonly id: string;
  /** The client's `initialize` params, replayed to backends that join later. */
  readonly initializeParams: Record<string, unknown>;
  /** The client sent `notifications/initialized`. */
  initialized: boolean;
  protocolVersion: string;
  members: Map<string, MemberSlot>;
  /** A member (re)initialising right now, so concurrent requests share one attempt. */
  joining: Map<string, Promise<void>>;
  lastUsed: number;
  /** Keyed by the client's request id as JSON (`1` and `"1"` differ). */
  inflight: Map<string, InflightRequest>;
  /** Calls to backends by internal id, and backends' server→client requests by alias (servers named by backend). */
  readonly mux: McpMultiplexer<MemberCallRoute, string>;
  /** Request exchanges of this session in flight, oldest first: they can carry notifications. */
  carriers: Set<McpExchange>;
  /** Notifications that found no carrier yet. */
  buffered: JsonRpcMessage[];
  /** The client's standalone stream, while one is open (at most one per session). */
  stream?: SessionStream;
}

export interface SessionStoreOptions {
  now: () => number;
  /** Default one hour. */
  idleMs?: number;
  /** Default 1000. */
  maxSessions?: number;
  /** Internal ids of backend calls, shared by all sessions of the channel. */
  ids?: () => number;
}

export interface SessionStore {
  create(initializeParams: Record<string, unknown>, members: readonly string[], protocolVersion: string): ClientSession;
  get(id: string): ClientSession | undefined;
  delete(id: string): ClientSession | undefined;
  /**
   * Forget idle sessions, and the least recently used ones until there is room for one more;
   * a session with a request in flight stays. Returns them so their backend sessions can be ended.
   */
  sweep(): ClientSession[];
  all(): ClientSession[];
}

/** At most this many notifications wait for a carrier; older ones are dropped first. */
export const MAX_BUFFERED_NOTIFICATIONS = 64;

export function createSessionStore(options: SessionStoreOptions): SessionStore {
  const idleMs = options.idleMs ?? 3_600_000;
  const maxSessions = options.maxSessions ?? 1000;
  // A Map iterates in insertion order; re-inserting on use keeps it least-recently-used first.
  const sessions = new Map<string, ClientSession>();

  return {
    create(initializeParams, members, protocolVersion) {
      const session: ClientSession = {
        id: crypto.randomUUID(),
        initializeParams,
        initialized: false,
        protocolVersion,
        members: new Map(members.map((name) => [name, { state: "new" }])),
        joining: new Map(),
        lastUsed: options.now(),
        inflight: new Map(),
        mux: new McpMultiplexer(options.ids ? { ids: options.ids } : {}),
        carriers: new Set(),
        buffered: [],
      };
      sessions.set(session.id, session);
      return session;
    },
    get(id) {
      const session = sessions.get(id);
      if (!session) return undefined;
      session.lastUsed = options.now();
      sessions.delete(id);
      sessions.set(id, session);
      return session;
    },
    delete(id) {
      const session = sessions.get(id);
      sessions.delete(id);
      return session;
    },
    sweep() {
      const evicted: ClientSession[] = [];
      const at = options.now();
      for (const session of sessions.values()) {
        // Called before a session is created: leave room for it.
        if (at - session.lastUsed < idleMs && sessions.size - evicted.length < maxSessions) break;
        if (session.carriers.size > 0 || session.stream) continue;
        evicted.push(session);
      }
      for (const session of evicted) sessions.delete(session.id);
      return evicted;
    },
    all: () => [...sessions.values()],
  };
}

/**
 * Hand a notification to the session's client: through the preferred exchange when it is
 * one of the session's requests in flight (it came with that request), else the session's
 * standalone stream, else its newest request in flight, else keep it (bounded) for the
 * session's next request or stream.
 */
export function deliverToSession(
  session: ClientSession,
  message: JsonRpcMessage,
  log: Logger,
  preferred?: McpExchange,
): void {
  const carrier =
    preferred && session.carriers.has(preferred) ? preferred : (session.stream ?? [...session.carriers].at(-1));
  if (carrier) {
    safeNotify(carrier, message, log);
    return;
  }
  session.buffered.push(message);
  if (session.buffered.length > MAX_BUFFERED_NOTIFICATIONS) {
    const dropped = session.buffered.shift();
    log.debug("notification buffer of an aggregated session is full; dropped the oldest", { method: dropped?.method });
  }
}

/** Start carrying notifications on `exchange` (a request of the session); buffered ones go first. */
export function addCarrier(session: ClientSession, exchange: McpExchange, log: Logger): void {
  session.carriers.add(exchange);
  flushBuffered(session, exchange, log);
}

/** Deliver the notifications that waited for a carrier. */
export function flushBuffered(session: ClientSession, sink: MessageSink, log: Logger): void {
  const waiting = session.buffered.splice(0);
  for (const message of waiting) safeNotify(sink, message, log);
}

export function safeNotify(exchange: MessageSink, message: JsonRpcMessage, log: Logger): void {
  try {
    exchange.notify(message, {});
  } catch (error) {
    log.warn("notify handler failed", { error });
  }
}
