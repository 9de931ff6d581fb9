/**
 * Everything one tunnel's hub knows, as plain logic with an injected clock and store
 * so it runs (and is tested) outside the Workers runtime: the queue of commands not
 * yet taken by an agent, the agents' held polls, the requests awaiting a response,
 * which agents are alive, and which MCP sessions are pinned to which agent.
 *
 * Invariants:
 * - a command is handed to exactly one poll, and a new command goes to a held poll at
 *   once (no polling interval anywhere on the hot path);
 * - a session on a channel an agent declared `proc_affinity` stays with the agent
 *   instance that answered its `initialize`; when that agent stops polling, requests on
 *   the session fail at once (404) instead of waiting for a deadline;
 * - so does a session the agent's era bridge opens for a legacy client of a modern-only server
 *   (its id says so): the client's declaration lives in that agent;
 * - every session opened through the hub is recorded and bound to the credential that
 *   opened it; a session id the hub does not hold, or one another credential opened, gets
 *   the same 404 (existence never shows), so no client can use, stream or end another's;
 * - sessions are bounded: one unused for `sessionIdleMs` is forgotten, and beyond
 *   `maxSessions` the least recently used goes; a forgotten session's requests get 404
 *   (clients initialize again) rather than landing on an agent that never saw it;
 * - extension commands (`airlock_*`) only ever go to agents that declared the extension;
 * - an agent is live while it keeps contact (a held poll, or a poll or post within the
 *   liveness window): that is the lease on the commands it took. An agent that declared
 *   the `lease` extension keeps it while busy by holding a lease-only poll; when the lease
 *   lapses, its safe-to-repeat requests go to another agent at once and the rest fail with
 *   a JSON-RPC error naming the agent; nothing unsafe runs twice. An agent without the
 *   extension (tunnel-client) stops polling when its slots are full, so holding delivered,
 *   unanswered commands keeps it live until they are answered or expire;
 * - a multi round-trip request's next step (a retry with the `requestState` an agent's era
 *   bridge minted, a legacy client's answer to the bridge's question) goes to the agent that
 *   holds the call while it is live, and only from the sender of the request that began it
 *   (round-trip-affinity.ts).
 */
import {
  AIRLOCK_CANCEL as CANCEL_COMMAND,
  AIRLOCK_STREAM_OPEN as STREAM_OPEN_COMMAND,
  headerValue,
  type Capability,
  type HeaderMap,
  type ServerInfo,
  type TunnelResponsePayload,
} from "../../shared/protocol/index.ts";
import { isObject, isRequest, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { isLongLivedRequest } from "../../shared/mcp/era.ts";
import { BRIDGED_SESSION_PREFIX } from "../../shared/mcp/round-trips.ts";
import { failureMessage } from "../../shared/protocol/failure.ts";
import type { HubError } from "../errors.ts";
import type { HubSettings } from "../config.ts";
import { Exchange } from "./exchange.ts";
import { RoundTripAffinity } from "./round-trip-affinity.ts";

/**
 * Requests a lost agent's lease may hand to another agent: they change nothing, so running
 * them twice is harmless. `initialize` too: the lost agent's session is gone either way.
 * `tools/call` joins them only for a tool its server annotated `readOnlyHint` or
 * `idempotentHint` in a `tools/list` answer the hub relayed (see {@link TunnelState}).
 */
const SAFE_TO_REPEAT = new Set([
  "initialize",
  "ping",
  "tools/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "prompts/list",
  "prompts/get",
]);

/** Tool names remembered per channel with their repeat-safety; beyond, the oldest go (bounded memory). */
const MAX_TOOLS_PER_CHANNEL = 2000;

/** How long an agent that stopped polling is remembered (with its sessions) before it is forgotten. */
const FORGET_AGENT_AFTER_MS = 60 * 60 * 1000;
const SESSION_HEADER = "Mcp-Session-Id";
/** A session's last use is written back at most this often (or every quarter idle window): a busy session costs no write per request. */
const SESSION_WRITE_EVERY_MS = 5 * 60 * 1000;

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The runtime clock (Workers and Node alike). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** What the hub remembers about one agent process (`X-Tunnel-Client-Instance-Id`). */
export interface AgentRecord {
  instanceId: string;
  /** Declared channels → `proc_affinity`; `null` when the agent sent no declaration (it serves any channel). */
  channels: Record<string, boolean> | null;
  capabilities: Capability[];
  lastSeen: number;
  clientName?: string;
  clientVersion?: string;
}

/**
 * Who opened a session: the digest of the credential that authenticated its `initialize`
 * (`sha256:<hex>` of the client token), and — once clients carry an identity — its
 * subject. Only the same owner may use, stream or end the session.
 */
export interface SessionOwner {
  credential: string;
  subject?: string;
}

export interface SessionRecord {
  /** The agent the session is pinned to (`proc_affinity`); absent when any agent serving the channel may take it. */
  instanceId?: string;
  /** Absent in records from hubs before sessions were bound: such a session matches no owner. */
  owner?: SessionOwner;
  /** The backend gave no `Mcp-Session-Id`, so the hub minted one to keep the client on this agent. */
  minted: boolean;
  since: number;
  /** Last request on the session (epoch ms). In storage it may lag by a few minutes; records from older hubs have none. */
  lastUsed: number;
}

/** Persistence for what must survive a hub restart: agents and session affinity. Queues do not. */
export interface HubStore {
  loadAgents(): AgentRecord[];
  saveAgent(agent: AgentRecord): void;
  deleteAgent(instanceId: string): void;
  loadSessions(): Array<[string, SessionRecord]>;
  saveSession(key: string, session: SessionRecord): void;
  deleteSession(key: string): void;
}

/** A store that keeps nothing across instances (tests, or when persistence is not wanted). */
export function memoryStore(): HubStore & { agents: Map<string, AgentRecord>; sessions: Map<string, SessionRecord> } {
  const agents = new Map<string, AgentRecord>();
  const sessions = new Map<string, SessionRecord>();
  return {
    agents,
    sessions,
    loadAgents: () => [...agents.values()].map((a) => structuredClone(a)),
    saveAgent: (a) => void agents.set(a.instanceId, structuredClone(a)),
    deleteAgent: (id) => void agents.delete(id),
    loadSessions: () => [...sessions.entries()].map(([k, s]) => [k, { ...s }]),
    saveSession: (k, s) => void sessions.set(k, { ...s }),
    deleteSession: (k) => void sessions.delete(k),
  };
}

/** Who is polling: read from the agent's headers on every call. */
export interface AgentHello {
  instanceId: string;
  serverInfo?: ServerInfo;
  capabilities: Capability[];
  clientName?: string;
  clientVersion?: string;
}

export interface PollRequest extends AgentHello {
  /** The agent's connection; {@link TunnelState.disconnected} with this key ends the hold. */
  pollId: string;
  /** 0: a lease-only poll (extension `lease`): it renews the agent's lease and is handed nothing. */
  limit: number;
  /** Already bounded by the hub's maximum hold. */
  holdMs: number;
  /** Only commands for these channels (the poll's `channel` query parameters). */
  channels?: string[];
}

export type SubmitKind = "jsonrpc" | "session_termination" | "stream_open";

export interface SubmitRequest {
  tunnelId: string;
  requestId: string;
  /** The client connection that sent it; {@link TunnelState.disconnected} with this key cancels it. */
  connection?: string;
  channel: string;
  kind: SubmitKind;
  /** The client's JSON-RPC message (kind `jsonrpc`). */
  message?: JsonRpcMessage;
  /** Sanitised client headers to apply to the MCP request. */
  headers: HeaderMap;
  /** Who sent it; a session is only usable by the owner that opened it. */
  owner?: SessionOwner;
}

export type SubmitOutcome = { error: HubError } | { exchange: Exchange };

/** A command as the poll response carries it (`JsonRpcPolledCommand` / `SessionTerminationPolledCommand` / extensions). */
export interface WireCommand {
  request_id: string;
  shard_token: string;
  command_type: string;
  channel: string;
  created_at: string;
  response_timeout?: string;
  headers: HeaderMap;
  jsonrpc?: JsonRpcMessage;
  [extension: string]: unknown;
}

export type RespondOutcome = "ok" | "not_found" | "mismatch";

interface Entry {
  requestId: string;
  connection?: string;
  shardToken: string;
  channel: string;
  commandType: string;
  message?: JsonRpcMessage;
  headers: HeaderMap;
  createdAt: number;
  deadline?: number;
  /** Only this agent instance may take it (session affinity, extension commands). */
  target?: string;
  /** The affinity key the command was routed by. */
  sessionKey?: string;
  /** Extra top-level fields for extension commands. */
  extra?: Record<string, unknown>;
  /** Who sent it (an `initialize` binds the session it opens to this owner). */
  owner?: SessionOwner;
  /** Absent for fire-and-forget extension commands, which expect no response. */
  exchange?: Exchange;
  deliveredTo?: string;
  timer?: unknown;
}

interface Waiter {
  pollId: string;
  instanceId: string;
  channels?: Set<string>;
  limit: number;
  resolve(commands: WireCommand[]): void;
  timer: unknown;
}

function randomHex(bytes: number): string {
  const data = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A fresh opaque request id. */
export function newRequestId(): string {
  return `req_${randomHex(16)}`;
}

function sessionKey(channel: string, sessionId: string): string {
  return `${channel} ${sessionId}`;
}

function withoutHeader(headers: HeaderMap, name: string): HeaderMap {
  const wanted = name.toLowerCase();
  return Object.fromEntries(Object.entries(headers).filter(([key]) => key.toLowerCase() !== wanted));
}

/**
 * Whether an agent declares the same as before (channels, capabilities, name, version): then
 * its record is not rewritten. Compared field by field: every poll and response post asks.
 */
function sameDeclaration(a: AgentRecord, b: AgentRecord): boolean {
  if (a.clientName !== b.clientName || a.clientVersion !== b.clientVersion) return false;
  if (a.capabilities.length !== b.capabilities.length || a.capabilities.some((c, i) => c !== b.capabilities[i]))
    return false;
  const [before, after] = [a.channels, b.channels];
  if (before === null || after === null) return before === after;
  const names = Object.keys(before);
  const others = Object.keys(after);
  // In order, as the serialised comparison this replaces was.
  return names.length === others.length && names.every((name, i) => name === others[i] && before[name] === after[name]);
}

function sameOwner(a: SessionOwner | undefined, b: SessionOwner | undefined): boolean {
  return a?.credential === b?.credential && a?.subject === b?.subject;
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

/** Where a request's MCP session pins it: the agent, the session's key, and whether the hub minted its id. */
interface SessionRoute {
  target: string | undefined;
  routedBy: string | undefined;
  minted: boolean;
}

// The refusals of `submit`, one function each so `submit` reads as its decisions. Their codes
// and words are part of the hub's contract with MCP clients and operators: change them with care.

function noAgentError(tunnelId: string, livenessMs: number): HubError {
  return {
    status: 503,
    code: "tunnel_client_not_connected",
    retryAfter: 1,
    message:
      `No agent has polled tunnel ${tunnelId} in the last ${Math.round(livenessMs / 1000)} s. ` +
      "Start or restart the Airlock agent (or tunnel-client) with this tunnel id and its agent key, then check its /readyz.",
  };
}

function sessionNotFoundError(tunnelId: string, channel: string, sessionId: string, sessionIdleMs: number): HubError {
  return {
    status: 404,
    code: "mcp_session_not_found",
    message:
      `MCP session ${sessionId.slice(0, 80)} on channel "${channel}" of tunnel ${tunnelId} is not known to the hub: it was ` +
      `ended, or unused for more than ${Math.round(sessionIdleMs / 60_000)} min. Start a new session (send initialize again).`,
  };
}

function sessionAgentGoneError(tunnelId: string, channel: string, sessionId: string): HubError {
  return {
    status: 404,
    code: "mcp_session_agent_gone",
    message:
      `MCP session ${sessionId.slice(0, 80)} on channel "${channel}" of tunnel ${tunnelId} lived in an agent that ` +
      "stopped polling; its state is gone. Start a new session (send initialize again).",
  };
}

function noServingAgentError(tunnelId: string, channel: string, live: AgentRecord[]): HubError {
  const offered = [...new Set(live.flatMap((a) => Object.keys(a.channels ?? {})))].sort().join(", ");
  return {
    status: 503,
    code: "tunnel_client_not_connected",
    retryAfter: 1,
    message:
      `No connected agent of tunnel ${tunnelId} serves channel "${channel}" (connected agents serve: ${offered || "none"}). ` +
      "Use one of those channels in the MCP URL, or configure the channel on an agent.",
  };
}

function queueFullError(tunnelId: string, queued: number): HubError {
  return {
    status: 429,
    code: "tunnel_queue_full",
    retryAfter: 1,
    message:
      `Tunnel ${tunnelId} already has ${queued} requests waiting for an agent. ` +
      "Reduce MCP request concurrency or add agents to drain the tunnel.",
  };
}

/**
 * A retry or answer carrying a round-trip mark the hub issued to another sender: the agent
 * holding the call would refuse it too, so it goes nowhere. A retry hears it as the agent
 * would say it (a JSON-RPC error the client's SDK surfaces), an answer as an unknown request.
 */
function foreignRoundTrip(request: SubmitRequest): SubmitOutcome {
  const message = request.message;
  if (!message || !isRequest(message))
    return {
      error: {
        status: 404,
        code: "pending_request_not_found",
        message: "This answers a request the tunnel's agents put to another client; it was not delivered.",
      },
    };
  const exchange = new Exchange(request.requestId, () => {});
  const text = "This requestState was issued to another client of the tunnel. Call again without requestState.";
  exchange.push({
    type: "final",
    respType: "jsonrpc_response",
    status: 200,
    headers: { "Content-Type": ["application/json"] },
    message: { jsonrpc: "2.0", id: message.id, error: { code: -32602, message: text } },
  });
  return { exchange };
}

export class TunnelState {
  readonly #settings: HubSettings;
  readonly #clock: Clock;
  readonly #store: HubStore;
  readonly #agents = new Map<string, AgentRecord>();
  /** lastSeen as last written to the store, to keep writes off the hot path. */
  readonly #persistedSeen = new Map<string, number>();
  /** Least recently used first: expiry stops at the first fresh one, the cap evicts from the front. */
  readonly #sessions = new Map<string, SessionRecord>();
  /** lastUsed as last written to the store. */
  readonly #sessionWrites = new Map<string, number>();
  readonly #queue: Entry[] = [];
  readonly #pending = new Map<string, Entry>();
  /** Delivered commands with a deadline not finished yet, per agent: keeps agents without `lease` live. */
  readonly #inFlight = new Map<string, number>();
  readonly #waiters: Waiter[] = [];
  /**
   * Per channel, tool name → safe to run twice, as the servers' last `tools/list` answers said
   * (`readOnlyHint` or `idempotentHint`). In memory only: after a restart nothing is re-delivered
   * until a listing is seen again, which errs on the side of never running a call twice.
   */
  readonly #repeatable = new Map<string, Map<string, boolean>>();
  /** Which agent holds each paused call or question of its era bridge. In memory only. */
  readonly #roundTrips: RoundTripAffinity;
  #sweepTimer: unknown;

  constructor(settings: HubSettings, store: HubStore, clock: Clock = systemClock) {
    this.#settings = settings;
    this.#clock = clock;
    this.#store = store;
    this.#roundTrips = new RoundTripAffinity(() => clock.now());
    for (const agent of store.loadAgents()) {
      this.#agents.set(agent.instanceId, agent);
      this.#persistedSeen.set(agent.instanceId, agent.lastSeen);
    }
    const now = clock.now();
    const sessions = store.loadSessions().map(([key, stored]): [string, SessionRecord, number] => {
      const written = (stored as Partial<SessionRecord>).lastUsed;
      // A record from before sessions expired starts its idle window now rather than vanishing.
      return [key, { ...stored, lastUsed: written ?? now }, written ?? 0];
    });
    for (const [key, session, written] of sessions.sort((a, b) => a[1].lastUsed - b[1].lastUsed)) {
      this.#sessions.set(key, session);
      this.#sessionWrites.set(key, written);
    }
    this.#forgetIdleSessions(now);
  }

  // ── agents ────────────────────────────────────────────────────────────────────

  /** Record a call from an agent (poll or response post): it is alive now. */
  touch(hello: AgentHello): AgentRecord {
    const now = this.#clock.now();
    const channels = hello.serverInfo
      ? Object.fromEntries(hello.serverInfo.channels.map((c) => [c.name, c.proc_affinity === true]))
      : null;
    const previous = this.#agents.get(hello.instanceId);
    const agent: AgentRecord = {
      instanceId: hello.instanceId,
      // A response post may omit the declaration; keep what the agent's polls said.
      channels: hello.serverInfo || !previous ? channels : previous.channels,
      capabilities: hello.capabilities.length || !previous ? [...hello.capabilities] : previous.capabilities,
      lastSeen: now,
      clientName: hello.clientName ?? previous?.clientName,
      clientVersion: hello.clientVersion ?? previous?.clientVersion,
    };
    this.#agents.set(agent.instanceId, agent);
    const changed = !previous || !sameDeclaration(previous, agent);
    const persistedSeen = this.#persistedSeen.get(agent.instanceId) ?? 0;
    if (changed || now - persistedSeen > this.#settings.livenessMs / 4) {
      this.#store.saveAgent(agent);
      this.#persistedSeen.set(agent.instanceId, now);
    }
    if (!previous) this.#forgetStaleAgents(now);
    this.#forgetIdleSessions(now);
    return agent;
  }

  /**
   * An agent is connected while it holds a poll or called within the liveness window.
   * For an agent with the `lease` extension work in hand does not count: busy, it holds a
   * lease-only poll instead of going silent, so silence means it is gone (or cut off) and
   * the commands it took are settled by the sweep within a window. An agent without it
   * stops polling while its slots are full (docs/protocol.md "Poll": backpressure), so unanswered
   * commands keep it live until their deadlines.
   */
  isLive(instanceId: string): boolean {
    const agent = this.#agents.get(instanceId);
    if (!agent) return false;
    if (this.#waiters.some((w) => w.instanceId === instanceId)) return true;
    if (this.#clock.now() - agent.lastSeen <= this.#settings.livenessMs) return true;
    return !agent.capabilities.includes("lease") && (this.#inFlight.get(instanceId) ?? 0) > 0;
  }

  /** Every remembered agent, connected or not. */
  agents(): AgentRecord[] {
    return [...this.#agents.values()].map((a) => ({ ...a }));
  }

  /** Agents currently connected, with what they serve (diagnostics and tests). */
  liveAgents(): AgentRecord[] {
    return [...this.#agents.values()].filter((a) => this.isLive(a.instanceId));
  }

  #serves(agent: AgentRecord, channel: string): boolean {
    return agent.channels === null || channel in agent.channels;
  }

  #affine(instanceId: string, channel: string): boolean {
    return this.#agents.get(instanceId)?.channels?.[channel] === true;
  }

  #has(instanceId: string, capability: Capability): boolean {
    return this.#agents.get(instanceId)?.capabilities.includes(capability) ?? false;
  }

  #forgetStaleAgents(now: number): void {
    for (const agent of [...this.#agents.values()]) {
      if (now - agent.lastSeen <= FORGET_AGENT_AFTER_MS || this.isLive(agent.instanceId)) continue;
      this.#agents.delete(agent.instanceId);
      this.#persistedSeen.delete(agent.instanceId);
      this.#store.deleteAgent(agent.instanceId);
      for (const [key, session] of [...this.#sessions]) {
        if (session.instanceId === agent.instanceId) this.#dropSession(key);
      }
    }
  }

  #dropSession(key: string): void {
    this.#sessionWrites.delete(key);
    if (this.#sessions.delete(key)) this.#store.deleteSession(key);
  }

  /** A request on the session: it moves to the back of the LRU order; storage hears of it now and then. */
  #useSession(key: string, session: SessionRecord, now: number): void {
    session.lastUsed = now;
    this.#sessions.delete(key);
    this.#sessions.set(key, session);
    const every = Math.min(SESSION_WRITE_EVERY_MS, this.#settings.sessionIdleMs / 4);
    if (now - (this.#sessionWrites.get(key) ?? 0) >= every) {
      this.#store.saveSession(key, session);
      this.#sessionWrites.set(key, now);
    }
  }

  /**
   * Forget sessions unused for the idle window, oldest first, stopping at the first fresh
   * one (so a call costs nothing when there is nothing to forget). A session with a
   * request still open (a long call, a standalone stream) is in use, not idle.
   */
  #forgetIdleSessions(now: number): void {
    for (const [key, session] of this.#sessions) {
      if (now - session.lastUsed <= this.#settings.sessionIdleMs) return;
      if ([...this.#pending.values()].some((entry) => entry.sessionKey === key)) this.#useSession(key, session, now);
      else this.#dropSession(key);
    }
  }

  // ── polls ─────────────────────────────────────────────────────────────────────

  /** Hand over waiting commands at once, or hold until one arrives or `holdMs` passes (→ `[]`). */
  poll(request: PollRequest): Promise<WireCommand[]> {
    this.touch(request);
    const channels = request.channels?.length ? new Set(request.channels) : undefined;
    const ready = this.#take(request.instanceId, channels, request.limit);
    if (ready.length > 0 || request.holdMs <= 0) return Promise.resolve(ready);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        pollId: request.pollId,
        instanceId: request.instanceId,
        channels,
        limit: request.limit,
        resolve,
        timer: this.#clock.setTimeout(() => this.#endWait(waiter, []), request.holdMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** The agent's poll connection went away: stop holding it so no command is handed to it. */
  abandonPoll(pollId: string): void {
    const waiter = this.#waiters.find((w) => w.pollId === pollId);
    if (waiter) this.#endWait(waiter, []);
  }

  #endWait(waiter: Waiter, commands: WireCommand[]): void {
    const index = this.#waiters.indexOf(waiter);
    if (index < 0) return;
    this.#waiters.splice(index, 1);
    this.#clock.clearTimeout(waiter.timer);
    const agent = this.#agents.get(waiter.instanceId);
    // Holding a poll kept the agent live; the window restarts when the hold ends.
    if (agent) agent.lastSeen = this.#clock.now();
    waiter.resolve(commands);
  }

  #eligible(instanceId: string, channels: Set<string> | undefined, entry: Entry): boolean {
    if (entry.target !== undefined && entry.target !== instanceId) return false;
    if (channels && !channels.has(entry.channel)) return false;
    if (entry.target !== undefined) return true;
    const agent = this.#agents.get(instanceId);
    return agent !== undefined && this.#serves(agent, entry.channel);
  }

  #take(instanceId: string, channels: Set<string> | undefined, limit: number): WireCommand[] {
    const out: WireCommand[] = [];
    for (let i = 0; i < this.#queue.length && out.length < limit; ) {
      const entry = this.#queue[i]!;
      if (!this.#eligible(instanceId, channels, entry)) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      const command = this.#deliver(entry, instanceId);
      if (command) out.push(command);
    }
    return out;
  }

  /** Mark an entry taken by `instanceId`; `undefined` when its deadline already passed. */
  #deliver(entry: Entry, instanceId: string): WireCommand | undefined {
    const now = this.#clock.now();
    if (entry.deadline !== undefined && entry.deadline <= now) {
      this.#expire(entry);
      return undefined;
    }
    entry.deliveredTo = instanceId;
    if (entry.deadline !== undefined) this.#inFlight.set(instanceId, (this.#inFlight.get(instanceId) ?? 0) + 1);
    const command: WireCommand = {
      request_id: entry.requestId,
      shard_token: entry.shardToken,
      command_type: entry.commandType,
      channel: entry.channel,
      created_at: new Date(entry.createdAt).toISOString(),
      headers: entry.headers,
      ...entry.extra,
    };
    // The agent's deadline starts at poll receipt; hand it what is left of ours so both expire together.
    if (entry.deadline !== undefined) command.response_timeout = `${entry.deadline - now}ms`;
    if (entry.message) command.jsonrpc = entry.message;
    return command;
  }

  #enqueue(entry: Entry): void {
    for (const waiter of this.#waiters) {
      if (waiter.limit <= 0 || !this.#eligible(waiter.instanceId, waiter.channels, entry)) continue;
      const command = this.#deliver(entry, waiter.instanceId);
      if (command) this.#endWait(waiter, [command]);
      this.#scheduleSweep();
      return;
    }
    this.#queue.push(entry);
    this.#scheduleSweep();
  }

  // ── MCP client requests ───────────────────────────────────────────────────────

  /** Queue one MCP client request, or refuse it at once (no agent, session gone, queue full). */
  submit(request: SubmitRequest): SubmitOutcome {
    const { kind, tunnelId } = request;
    const live = this.liveAgents();
    if (live.length === 0) return { error: noAgentError(tunnelId, this.#settings.livenessMs) };

    const sessionId = headerValue(request.headers, SESSION_HEADER);
    const route = this.#routeBySession(request, sessionId);
    if ("error" in route) return route;
    const { routedBy, minted } = route;

    if (kind === "session_termination" && minted && routedBy) {
      // The hub invented this session id (the backend has none), so ending it is the hub's business alone.
      this.#dropSession(routedBy);
      const exchange = new Exchange(request.requestId, () => {});
      exchange.push({ type: "final", respType: "session_termination_response", status: 204, headers: {} });
      return { exchange };
    }

    const held =
      route.target === undefined && kind === "jsonrpc"
        ? this.#roundTrips.held(request.message, request.channel)
        : undefined;
    if (held && !sameOwner(held.owner, request.owner)) return foreignRoundTrip(request);
    // The agent holding the call, while it lives; else any agent, which answers that it holds no such call.
    const pinned = route.target ?? (held && this.isLive(held.instanceId) ? held.instanceId : undefined);
    const chosen = this.#chooseAgent(request, live, pinned);
    if ("error" in chosen) return chosen;

    if (this.#queue.length >= this.#settings.maxQueued) return { error: queueFullError(tunnelId, this.#queue.length) };
    return this.#accept(request, chosen.target, routedBy, minted && sessionId !== undefined);
  }

  /**
   * The agent the request's MCP session is pinned to (none for `initialize`, a request
   * without a session, or a session no agent holds yet), or why the session cannot be used.
   */
  #routeBySession(request: SubmitRequest, sessionId: string | undefined): { error: HubError } | SessionRoute {
    const { channel, tunnelId } = request;
    const initializing =
      request.message !== undefined && isRequest(request.message) && request.message.method === "initialize";
    if (sessionId === undefined || initializing) return { target: undefined, routedBy: undefined, minted: false };
    const key = sessionKey(channel, sessionId);
    this.#forgetIdleSessions(this.#clock.now());
    const session = this.#sessions.get(key);
    // The hub records every session opened through it, so an id it does not hold — or
    // one another credential opened — gets the same answer: existence never shows.
    if (!session || !sameOwner(session.owner, request.owner)) {
      return { error: sessionNotFoundError(tunnelId, channel, sessionId, this.#settings.sessionIdleMs) };
    }
    // Kept (until idle or its agent is forgotten): every request on it, a client's stream
    // reconnect included, hears the same 404, and an agent that was only cut off resumes it.
    if (session.instanceId !== undefined && !this.isLive(session.instanceId)) {
      return { error: sessionAgentGoneError(tunnelId, channel, sessionId) };
    }
    this.#useSession(key, session, this.#clock.now());
    return { target: session.instanceId, routedBy: key, minted: session.instanceId !== undefined && session.minted };
  }

  /**
   * Check that some live agent can take the request. A request no session pins may go to any
   * agent serving its channel, except a standalone stream: that needs an agent offering it.
   */
  #chooseAgent(
    request: SubmitRequest,
    live: AgentRecord[],
    pinned: string | undefined,
  ): { error: HubError } | { target: string | undefined } {
    const { channel, kind, tunnelId } = request;
    if (pinned !== undefined) {
      if (kind === "stream_open" && !(this.#has(pinned, "get-stream") && this.#has(pinned, "cancel")))
        return { error: this.#noStream(tunnelId) };
      return { target: pinned };
    }
    const serving = live.filter((a) => this.#serves(a, channel));
    if (serving.length === 0) return { error: noServingAgentError(tunnelId, channel, live) };
    if (kind !== "stream_open") return { target: undefined };
    const capable = serving.find((a) => a.capabilities.includes("get-stream") && a.capabilities.includes("cancel"));
    if (!capable) return { error: this.#noStream(tunnelId) };
    return { target: capable.instanceId };
  }

  /** Queue the request as a command (for `target` alone when set) and start its deadline. */
  #accept(
    request: SubmitRequest,
    target: string | undefined,
    routedBy: string | undefined,
    stripSession: boolean,
  ): SubmitOutcome {
    const { channel, kind } = request;
    const now = this.#clock.now();
    const exchange = new Exchange(request.requestId, (reason) => this.cancel(request.requestId, reason));
    const entry: Entry = {
      requestId: request.requestId,
      connection: request.connection,
      shardToken: `sh_${randomHex(16)}`,
      channel,
      commandType: kind === "stream_open" ? STREAM_OPEN_COMMAND : kind,
      message: request.message,
      headers: stripSession ? withoutHeader(request.headers, SESSION_HEADER) : request.headers,
      createdAt: now,
      // A standalone stream or a modern subscriptions/listen has no end; it lives until the client or the agent goes.
      deadline:
        kind === "stream_open" || isLongLivedRequest(request.message)
          ? undefined
          : now + this.#settings.responseTimeoutMs,
      target,
      sessionKey: routedBy,
      exchange,
      owner: request.owner,
    };
    if (entry.deadline !== undefined) {
      entry.timer = this.#clock.setTimeout(() => this.#expire(entry), entry.deadline - now);
    }
    this.#pending.set(entry.requestId, entry);
    this.#enqueue(entry);
    return { exchange };
  }

  #noStream(tunnelId: string): HubError {
    return {
      status: 405,
      code: "method_not_allowed",
      message:
        `Tunnel ${tunnelId} has no connected agent that offers standalone GET streams (Airlock extension "get-stream"); ` +
        "server-initiated messages arrive on POST responses instead.",
    };
  }

  /** The deadline passed: fail the request with 504 whether or not an agent took it. */
  #expire(entry: Entry): void {
    this.#finish(entry);
    this.#removeQueued(entry);
    const seconds = entry.deadline !== undefined ? Math.round((entry.deadline - entry.createdAt) / 1000) : 0;
    entry.exchange?.push({
      type: "failed",
      error: {
        status: 504,
        code: "tunnel_response_timeout",
        message: entry.deliveredTo
          ? `The agent took this request but sent no final response within ${seconds} s. Check the MCP backend behind the agent.`
          : `No agent took this request within ${seconds} s. Check that the agent is running and not saturated.`,
      },
    });
  }

  /** The entry leaves the books: not pending, no deadline timer, not counted as its agent's work. */
  #finish(entry: Entry): void {
    if (!this.#pending.delete(entry.requestId)) return;
    this.#clock.clearTimeout(entry.timer);
    this.#release(entry);
  }

  /** The entry is no longer its agent's work in hand. */
  #release(entry: Entry): void {
    const agent = entry.deliveredTo;
    if (agent === undefined || entry.deadline === undefined) return;
    const left = (this.#inFlight.get(agent) ?? 0) - 1;
    if (left > 0) this.#inFlight.set(agent, left);
    else this.#inFlight.delete(agent);
  }

  #removeQueued(entry: Entry): void {
    const index = this.#queue.indexOf(entry);
    if (index >= 0) this.#queue.splice(index, 1);
  }

  /**
   * The MCP client went away. A queued command is dropped before any agent sees it; a
   * delivered one is forgotten (its response will get 404) and, when its agent declared
   * `cancel`, that agent is told to stop the work.
   */
  cancel(requestId: string, reason: string): void {
    const entry = this.#pending.get(requestId);
    if (!entry) return;
    this.#finish(entry);
    if (entry.deliveredTo === undefined) {
      this.#removeQueued(entry);
    } else if (this.#has(entry.deliveredTo, "cancel") && this.isLive(entry.deliveredTo)) {
      this.#enqueue({
        requestId: newRequestId(),
        shardToken: `sh_${randomHex(16)}`,
        channel: entry.channel,
        commandType: CANCEL_COMMAND,
        headers: {},
        createdAt: this.#clock.now(),
        target: entry.deliveredTo,
        extra: { cancel_request_id: requestId, reason },
      });
    }
    entry.exchange?.close();
  }

  /**
   * A connection went away (the Worker saw `request.signal` abort, or the local runner's
   * front proxy saw the socket close): end its held poll, cancel its MCP requests.
   */
  disconnected(connection: string): void {
    this.abandonPoll(connection);
    for (const entry of [...this.#pending.values()]) {
      if (entry.connection === connection) entry.exchange?.cancel("client_disconnected");
    }
  }

  // ── agent responses ───────────────────────────────────────────────────────────

  /** One response post. `not_found` for unknown, undelivered or finished requests. */
  respond(hello: AgentHello, shardToken: string, payload: TunnelResponsePayload): RespondOutcome {
    if (this.#agents.has(hello.instanceId) || hello.serverInfo) this.touch(hello);
    const entry = this.#pending.get(payload.request_id);
    if (!entry || entry.deliveredTo === undefined || !entry.exchange) return "not_found";
    if (entry.shardToken !== shardToken) return "mismatch";
    let headers: HeaderMap = payload.resp_headers ?? {};
    const message = payload.resp_json ?? undefined;
    const respType = payload.resp_type ?? "jsonrpc_response";
    this.#roundTrips.learn(message, entry.channel, entry.deliveredTo, entry.owner);
    if (respType === "jsonrpc_notify") {
      entry.exchange.push({ type: "notify", message, headers, status: payload.resp_code });
      return "ok";
    }
    this.#finish(entry);
    if (
      entry.message &&
      isRequest(entry.message) &&
      entry.message.method === "initialize" &&
      isSuccess(payload.resp_code)
    ) {
      // A session the era bridge minted holds the client's declaration in that agent alone.
      const bridged = headerValue(headers, SESSION_HEADER)?.startsWith(BRIDGED_SESSION_PREFIX) === true;
      headers = this.#openSession(entry, headers, bridged || this.#affine(entry.deliveredTo, entry.channel));
    }
    if (entry.message && isRequest(entry.message) && entry.message.method === "tools/list")
      this.#learnTools(entry.channel, message);
    if (entry.commandType === "session_termination" && entry.sessionKey && payload.resp_code < 500) {
      this.#dropSession(entry.sessionKey);
    }
    entry.exchange.push({ type: "final", respType, status: payload.resp_code, headers, message });
    return "ok";
  }

  /**
   * Record the session an `initialize` opened, bound to its sender. With affinity it is
   * pinned to the agent that served it, and an id is minted when the backend has none;
   * without, a backend without sessions leaves nothing to record.
   */
  #openSession(entry: Entry, headers: HeaderMap, pinned: boolean): HeaderMap {
    let sessionId = headerValue(headers, SESSION_HEADER);
    let minted = false;
    if (sessionId === undefined) {
      if (!pinned) return headers;
      sessionId = `airlock-${randomHex(16)}`;
      minted = true;
      headers = { ...headers, [SESSION_HEADER]: [sessionId] };
    }
    const key = sessionKey(entry.channel, sessionId);
    const now = this.#clock.now();
    const session: SessionRecord = {
      ...(pinned ? { instanceId: entry.deliveredTo! } : {}),
      ...(entry.owner ? { owner: entry.owner } : {}),
      minted,
      since: now,
      lastUsed: now,
    };
    this.#sessions.delete(key);
    this.#sessions.set(key, session);
    this.#store.saveSession(key, session);
    this.#sessionWrites.set(key, now);
    // The cap bounds storage however many sessions clients open and abandon.
    for (const oldest of this.#sessions.keys()) {
      if (this.#sessions.size <= this.#settings.maxSessions) break;
      this.#dropSession(oldest);
    }
    return headers;
  }

  /** The agent instance a session is pinned to, if any (diagnostics and tests). */
  sessionAgent(channel: string, sessionId: string): string | undefined {
    return this.#sessions.get(sessionKey(channel, sessionId))?.instanceId;
  }

  // ── liveness sweep ────────────────────────────────────────────────────────────

  #scheduleSweep(): void {
    if (this.#sweepTimer !== undefined) return;
    // Queued work may lose its agents; taken work (streams included) may lose the agent that holds it.
    const needed = this.#queue.length > 0 || [...this.#pending.values()].some((e) => e.deliveredTo !== undefined);
    if (!needed) return;
    this.#sweepTimer = this.#clock.setTimeout(
      () => {
        this.#sweepTimer = undefined;
        this.sweep();
        this.#scheduleSweep();
      },
      Math.max(10, Math.floor(this.#settings.livenessMs / 4)),
    );
  }

  /**
   * Fail what can no longer be served: queued commands pinned to an agent that stopped
   * polling, queued commands whose channel no connected agent serves, and standalone
   * streams whose agent is gone (they have no deadline of their own).
   */
  sweep(): void {
    this.#forgetIdleSessions(this.#clock.now());
    for (const entry of [...this.#queue]) {
      const gone =
        entry.target !== undefined
          ? !this.isLive(entry.target)
          : !this.liveAgents().some((a) => this.#serves(a, entry.channel));
      if (!gone) continue;
      this.#removeQueued(entry);
      this.#finish(entry);
      // Only a pinned session lived in the agent that went; it is kept (see submit), so its
      // next request hears the same 404.
      const pinned =
        entry.target !== undefined &&
        entry.sessionKey !== undefined &&
        this.#sessions.get(entry.sessionKey)?.instanceId === entry.target;
      entry.exchange?.push({
        type: "failed",
        error: pinned
          ? {
              status: 404,
              code: "mcp_session_agent_gone",
              message:
                "The agent holding this MCP session stopped polling before it took the request; start a new session (send initialize again).",
            }
          : {
              status: 503,
              code: "tunnel_client_not_connected",
              retryAfter: 1,
              message: `Every agent serving channel "${entry.channel}" stopped polling before taking the request.`,
            },
      });
    }
    for (const entry of [...this.#pending.values()]) {
      if (entry.deliveredTo === undefined || this.isLive(entry.deliveredTo)) continue;
      if (entry.commandType === STREAM_OPEN_COMMAND) {
        this.#finish(entry);
        entry.exchange?.push({ type: "final", respType: "notify_ack", status: 200, headers: {} });
      } else {
        this.#leaseLapsed(entry, entry.deliveredTo);
      }
    }
  }

  /**
   * The agent holding this command stopped contacting the hub. A request that is safe to
   * repeat and not bound to the lost agent's session goes back to the queue for another
   * agent (same shard token: whichever answer comes first wins). Anything else may have
   * run already, so it ends now with a JSON-RPC error naming the agent, never run again.
   */
  #leaseLapsed(entry: Entry, lost: string): void {
    const method = entry.message && isRequest(entry.message) ? entry.message.method : undefined;
    const others = this.liveAgents().some((a) => a.instanceId !== lost && this.#serves(a, entry.channel));
    if (
      method !== undefined &&
      this.#safeToRepeat(entry, method) &&
      entry.target === undefined &&
      entry.commandType === "jsonrpc" &&
      others
    ) {
      this.#release(entry);
      entry.deliveredTo = undefined;
      this.#enqueue(entry);
      return;
    }
    // The session stays on the books: its next request is told at once that its agent is gone.
    this.#finish(entry);
    const silentFor = Math.round((this.#clock.now() - (this.#agents.get(lost)?.lastSeen ?? 0)) / 1000);
    const text =
      `Agent ${lost.slice(0, 80)} took this request and then stopped contacting the hub (silent for ${silentFor} s, ` +
      `lease ${Math.round(this.#settings.livenessMs / 1000)} s): it was stopped or cut off. The request may or may not have run, ` +
      `so the hub does not run ${method ?? entry.commandType} again; retry it if that is safe` +
      (entry.sessionKey ? ", in a new session (send initialize again)." : ".");
    if (method === undefined || !entry.message || !("id" in entry.message)) {
      entry.exchange?.push({ type: "failed", error: { status: 502, code: null, message: text } });
      return;
    }
    // A JSON-RPC error in a 200, as an MCP server answers a failed call: SDK clients surface it as the call's error.
    const failure = failureMessage(entry.message.id, { source: "client_internal" });
    entry.exchange?.push({
      type: "final",
      respType: "jsonrpc_response",
      status: 200,
      headers: {},
      message: { ...failure, error: { ...failure.error, message: text } },
    });
  }

  /** Remember which tools of a `tools/list` answer their server says are safe to run twice. */
  #learnTools(channel: string, answer: JsonRpcMessage | undefined): void {
    const tools =
      isObject(answer) && isObject(answer.result) && Array.isArray(answer.result.tools) ? answer.result.tools : [];
    let known = this.#repeatable.get(channel);
    for (const tool of tools) {
      if (!isObject(tool) || typeof tool.name !== "string") continue;
      const hints = isObject(tool.annotations) ? tool.annotations : {};
      known ??= this.#repeatable.set(channel, new Map()).get(channel)!;
      known.delete(tool.name);
      known.set(tool.name, hints.readOnlyHint === true || hints.idempotentHint === true);
      if (known.size > MAX_TOOLS_PER_CHANNEL) known.delete(known.keys().next().value!);
    }
  }

  #safeToRepeat(entry: Entry, method: string): boolean {
    if (SAFE_TO_REPEAT.has(method)) return true;
    const params = entry.message && isObject(entry.message.params) ? entry.message.params : {};
    return (
      method === "tools/call" &&
      typeof params.name === "string" &&
      this.#repeatable.get(entry.channel)?.get(params.name) === true
    );
  }

  /** Counts for diagnostics and tests. */
  stats(): { queued: number; pending: number; waitingPolls: number; sessions: number } {
    return {
      queued: this.#queue.length,
      pending: this.#pending.size,
      waitingPolls: this.#waiters.length,
      sessions: this.#sessions.size,
    };
  }
}
