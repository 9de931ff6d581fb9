/**
 * Several MCP backends behind one channel, as one {@link Backend}: to the client this is
 * the MCP server of the channel's sessions; to each backend it is an MCP client, speaking
 * JSON-RPC through the backend's own `exchange()`.
 *
 * - `initialize` opens a session on every backend in parallel, merges their capabilities
 *   and answers with one identity (`airlock/<channel>`), the highest protocol version all
 *   of them speak, and a fresh `Mcp-Session-Id`. A backend that fails is left out of the
 *   session (logged, and shown by `health()`), and retried with backoff on the session's
 *   later requests; a new session always tries every backend.
 * - Lists are fanned out and merged under namespaced names (see `names.ts`), with cursors
 *   that span backends (see `merge.ts`); `tools: {allow, deny}` hides tools from the list
 *   and from `tools/call`.
 * - Calls are routed by namespace to one backend with the name un-prefixed.
 * - Ids never collide: each session has an {@link McpMultiplexer}. Every request to a
 *   backend carries a fresh internal id (and its progress token becomes that id); a
 *   backend's server→client request reaches the client under an id unique in the session,
 *   and the client's answer goes back to that backend under the original id.
 *   `notifications/cancelled` is translated both ways; a request the client cancelled is
 *   not answered.
 * - Notifications that are not about one request (`list_changed`, `resources/updated`,
 *   logging) go to the session's standalone stream when the client has one open, else
 *   through one of its requests in flight; with neither they wait (the newest 64) for its
 *   next request or stream.
 * - The client's standalone stream (`openStream`, one per session) opens each backend's
 *   own stream under that backend's session, and carries what they send (translated as
 *   above), server→client requests included.
 *
 * The parts: `channel.ts` (shared state, talking to one backend), `join.ts` (sessions),
 * `lists.ts` (fan-out), `calls.ts` (routing by name), `client.ts` (what the client sends).
 *
 * HTTP statuses of backends never reach the client as such: a backend's 404 (or a 400
 * about its session id) means its own session is gone — the aggregate re-opens it and
 * retries once — not the client's.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import { isNotification, isRequest, isResponse } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import { InflightCounter, NOT_JSON_RPC } from "../backends/inflight.ts";
import type {
  Backend,
  BackendHealth,
  ExchangeResult,
  McpExchange,
  McpStream,
  StreamResult,
  TerminationResult,
} from "../backends/types.ts";
import type { AgentEvents } from "../events.ts";
import { counter } from "../mcp/multiplexer.ts";
import type { Channel } from "./channel.ts";
import { onClientResponse, onNotification, onRequest, openStream } from "./client.ts";
import { endSession } from "./join.ts";
import { createMember } from "./member.ts";
import type { Member, MemberSettings } from "./member.ts";
import { createSessionStore } from "./sessions.ts";

export interface AggregateMemberSpec {
  backend: Backend;
  settings?: MemberSettings;
}

export interface AggregateOptions {
  /** The channel served; the aggregate's name, and part of its server identity. */
  channel: string;
  /** In route order: lists are merged in this order. Names must be unique. */
  members: AggregateMemberSpec[];
  log: Logger;
  events?: Pick<AgentEvents, "backendCallFinished">;
  /** Wall clock in ms, for session idleness and retry backoff. Default `Date.now`. */
  now?: () => number;
  /** Items per list page across backends. Default: no limit (each backend's page is passed on whole). */
  pageSize?: number;
  /**
   * Limit for calls that go to every backend (initialize, lists, ping, logging/setLevel):
   * a backend that has not answered by then is left out of that answer. Default 10 000 ms.
   */
  fanOutTimeoutMs?: number;
  /** Backoff for re-initialising a backend that failed in a session. Defaults 1 000 ms doubling to 60 000 ms. */
  retry?: { initialMs?: number; maxMs?: number };
  sessions?: { idleMs?: number; maxSessions?: number };
}

/** How exchanges and streams fail once the aggregate is closed. */
const CLOSED: { kind: "failure"; failure: FailureSpec; detail: string } = {
  kind: "failure",
  failure: { source: "transport_closed", kind: "connection_closed" },
  detail: "backend closed",
};

/** Build the aggregate. Nothing starts until `start()`. */
export function createAggregateBackend(options: AggregateOptions): Backend {
  return new AggregateBackend(options);
}

class AggregateBackend implements Backend {
  readonly name: string;
  readonly transport = "aggregate";
  // Sessions are this process's state: the hub must keep a session's commands on this agent.
  readonly procAffinity = true;
  readonly #channel: Channel;
  readonly #inflight = new InflightCounter();

  constructor(options: AggregateOptions) {
    const channel = options.channel;
    const members = new Map<string, Member>();
    for (const spec of options.members) {
      if (members.has(spec.backend.name))
        throw new Error(
          `channel ${channel} lists backend ${spec.backend.name} twice; backend names must be unique per channel`,
        );
      members.set(
        spec.backend.name,
        createMember(spec.backend, spec.settings ?? {}, { channel, events: options.events }),
      );
    }
    const now = options.now ?? Date.now;
    this.name = channel;
    this.#channel = {
      name: channel,
      log: options.log.child({ channel }),
      now,
      members,
      order: [...members.keys()],
      // One id source for every session: a backend serving several of them never sees an id twice.
      store: createSessionStore({ now, ids: counter(), ...options.sessions }),
      initErrors: new Map(),
      eras: new Map(),
      fanOutTimeoutMs: options.fanOutTimeoutMs ?? 10_000,
      retry: { initialMs: options.retry?.initialMs ?? 1000, maxMs: options.retry?.maxMs ?? 60_000 },
      pageSize: options.pageSize,
      closed: false,
    };
  }

  async start(): Promise<void> {
    await Promise.all([...this.#channel.members.values()].map((member) => member.backend.start()));
  }

  exchange(exchange: McpExchange): Promise<ExchangeResult> {
    const message = exchange.message;
    const channel = this.#channel;
    if (channel.closed) return Promise.resolve(CLOSED);
    if (isRequest(message)) return this.#inflight.track(() => onRequest(channel, exchange, message));
    if (isNotification(message)) return onNotification(channel, exchange, message);
    if (isResponse(message)) return onClientResponse(channel, exchange, message);
    return Promise.resolve(NOT_JSON_RPC);
  }

  async terminateSession(headers: HeaderMap, signal: AbortSignal): Promise<TerminationResult> {
    const sessionId = headerValue(headers, "mcp-session-id");
    if (sessionId === undefined) return { kind: "terminated", status: 400, headers: {} };
    const session = this.#channel.store.delete(sessionId);
    if (!session) return { kind: "terminated", status: 404, headers: {} };
    await endSession(this.#channel, session, headers, signal);
    return { kind: "terminated", status: 200, headers: {} };
  }

  async openStream(stream: McpStream): Promise<StreamResult> {
    if (this.#channel.closed) return CLOSED;
    return openStream(this.#channel, stream);
  }

  health(): BackendHealth {
    const channel = this.#channel;
    const list = [...channel.members.values()].map((member) => this.#memberHealth(member));
    const down = list.filter((health) => health.state !== "up");
    const state = channel.closed
      ? "stopped"
      : list.some((health) => health.state === "up")
        ? "up"
        : list.some((health) => health.state === "starting")
          ? "starting"
          : list.some((health) => health.state === "restarting")
            ? "restarting"
            : "failed";
    const health: BackendHealth = {
      name: channel.name,
      transport: "aggregate",
      state,
      inflight: this.#inflight.count,
      members: list,
      restarts: list.reduce((sum, member) => sum + member.restarts, 0),
    };
    if (channel.closed) health.reason = "backend closed";
    else if (down.length > 0)
      health.reason = `${down.length} of ${list.length} backends not up: ${down.map((h) => `${h.name} is ${h.state}${h.reason ? ` (${h.reason})` : ""}`).join("; ")}`;
    return health;
  }

  async close(): Promise<void> {
    const channel = this.#channel;
    if (channel.closed) return;
    channel.closed = true;
    // End the backends' HTTP sessions rather than leave them to expire on the servers; briefly.
    const sessions = channel.store.all();
    for (const session of sessions) channel.store.delete(session.id);
    await Promise.all(sessions.map((session) => endSession(channel, session, {}, AbortSignal.timeout(1000))));
    await Promise.all([...channel.members.values()].map((member) => member.backend.close()));
  }

  #memberHealth(member: Member): BackendHealth {
    const era = this.#channel.eras.get(member.name);
    const health = era === undefined ? member.backend.health() : { ...member.backend.health(), era };
    const initError = this.#channel.initErrors.get(member.name);
    if (initError !== undefined && health.state === "up")
      return { ...health, state: "failed", reason: `initialize failed: ${initError}` };
    return health;
  }
}
