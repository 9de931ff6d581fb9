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
 * - Ids never collide: every request to a backend carries a fresh internal id (and its
 *   progress token becomes that id); a backend's server→client request reaches the client
 *   under an id unique in the session, and the client's answer goes back to that backend
 *   under the original id. `notifications/cancelled` is translated both ways; a request
 *   the client cancelled is not answered.
 * - Notifications that are not about one request (`list_changed`, `resources/updated`,
 *   logging) go to the session's standalone stream when the client has one open, else
 *   through one of its requests in flight; with neither they wait (the newest 64) for its
 *   next request or stream.
 * - The client's standalone stream (`openStream`, one per session) opens each backend's
 *   own stream under that backend's session, and carries what they send (translated as
 *   above), server→client requests included.
 *
 * HTTP statuses of backends never reach the client as such: a backend's 404 (or a 400
 * about its session id) means its own session is gone — the aggregate re-opens it and
 * retries once — not the client's.
 */
import { headerValue } from "../../shared/protocol/headers.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import { isErrorResponse, isNotification, isObject, isRequest, isResponse } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import type { Backend, BackendHealth, ExchangeResult, McpExchange, McpStream, StreamResult, TerminationResult } from "../backends/types.ts";
import type { AgentEvents } from "../events.ts";
import { VERSION } from "../version.ts";
import { createMember } from "./member.ts";
import type { Member, MemberCall, MemberSettings } from "./member.ts";
import {
  assemblePage, commonProtocolVersion, decodeCursor, encodeCursor, mergeCapabilities, mergeInstructions,
} from "./merge.ts";
import type { MemberInitialize, MemberPage, PagePosition } from "./merge.ts";
import { LIST_METHODS, type ListMethod } from "../../shared/mcp/methods.ts";
import { mapContentUris, mapUri, namespaced, splitNamespaced, unmapUri } from "./names.ts";
import {
  addCarrier, createSessionStore, deliverToSession, flushBuffered, rememberServerRequest, safeNotify, serverRequestAlias,
} from "./sessions.ts";
import type { ClientSession, InflightRequest, MemberSlot, SessionStream } from "./sessions.ts";

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

/** Protocol version answered when the client sends none and no backend says otherwise. */
const DEFAULT_PROTOCOL_VERSION = "2025-06-18";
const JSON_HEADERS: HeaderMap = { "Content-Type": ["application/json"] };
const ACK: ExchangeResult = { kind: "ack", status: 202, headers: {} };
/**
 * Client headers that describe the client's session with the aggregate, not with a backend.
 * `Authorization` stays behind too: one client credential must not reach every backend of
 * the channel (backends get their own static `headers`).
 */
const CLIENT_ONLY_HEADERS = new Set(["mcp-session-id", "mcp-protocol-version", "last-event-id", "authorization"]);
/** Which capability a list method needs. */
const LIST_CAPABILITY: Record<ListMethod, string> = {
  "tools/list": "tools", "prompts/list": "prompts", "resources/list": "resources", "resources/templates/list": "resources",
};

const LIST_CHANGED: ReadonlyArray<readonly [capability: string, method: string]> = [
  ["tools", "notifications/tools/list_changed"],
  ["prompts", "notifications/prompts/list_changed"],
  ["resources", "notifications/resources/list_changed"],
];

type ReadySlot = Extract<MemberSlot, { state: "ready" }>;
type FailedSlot = Extract<MemberSlot, { state: "failed" }>;

/** How one call to a backend relates to the client's traffic. */
interface CallContext {
  session: ClientSession;
  /** The client's request this call serves: carries progress and server→client requests. */
  carrier?: McpExchange;
  /** The client's headers (minus {@link CLIENT_ONLY_HEADERS}) go to the backend. */
  headers: HeaderMap;
  signal: AbortSignal;
  /** Recorded so `notifications/cancelled` can reach this call. */
  inflight?: InflightRequest;
  timeoutMs?: number;
  /** See {@link MemberCall.startup}. */
  startup?: boolean;
}

/** Build the aggregate. Nothing starts until `start()`. */
export function createAggregateBackend(options: AggregateOptions): Backend {
  const channel = options.channel;
  const log = options.log.child({ channel });
  const now = options.now ?? Date.now;
  const fanOutTimeoutMs = options.fanOutTimeoutMs ?? 10_000;
  const retryInitialMs = options.retry?.initialMs ?? 1000;
  const retryMaxMs = options.retry?.maxMs ?? 60_000;
  const members = new Map<string, Member>();
  for (const spec of options.members) {
    if (members.has(spec.backend.name)) throw new Error(`channel ${channel} lists backend ${spec.backend.name} twice; backend names must be unique per channel`);
    members.set(spec.backend.name, createMember(spec.backend, spec.settings ?? {}, { channel, events: options.events }));
  }
  const order = [...members.keys()];
  const store = createSessionStore({ now, ...options.sessions });
  /** Backends whose latest initialize failed, with why; cleared by the next success. */
  const initErrors = new Map<string, string>();
  let nextId = 0;
  let inflight = 0;
  let closed = false;

  // ── answers ────────────────────────────────────────────────────────────────────────

  function answer(id: unknown, result: unknown, session?: ClientSession): ExchangeResult {
    const headers = session ? { ...JSON_HEADERS, "Mcp-Session-Id": [session.id] } : JSON_HEADERS;
    return { kind: "response", status: 200, headers, message: { jsonrpc: "2.0", id, result } };
  }

  function rpcError(id: unknown, code: number, message: string, status = 200): ExchangeResult {
    return { kind: "response", status, headers: JSON_HEADERS, message: { jsonrpc: "2.0", id: id ?? null, error: { code, message } } };
  }

  /** A backend's answer as the client gets it: the client's id, our headers, a 200 (backend statuses are not the client's). */
  function relay(id: unknown, result: ExchangeResult, map?: (result: Record<string, unknown>) => unknown): ExchangeResult {
    if (result.kind === "failure") return { kind: "failure", failure: result.failure, ...(result.detail ? { detail: result.detail } : {}) };
    if (result.kind === "cancelled") return result;
    if (result.kind === "ack") return { kind: "failure", failure: { source: "protocol", kind: "response_body_missing", upstreamResponseReceived: true }, detail: "the backend acknowledged a request without answering it" };
    const message: JsonRpcMessage = { ...result.message, id };
    if (map && isObject(message.result)) message.result = map(message.result);
    return { kind: "response", status: 200, headers: JSON_HEADERS, message };
  }

  /** A backend that is not in the session: a synthesised failure (the reason goes to the log, not to the client). */
  function unavailable(slot: FailedSlot, name: string): ExchangeResult {
    return { kind: "failure", failure: slot.failure, detail: `backend ${name} of channel ${channel} is unavailable: ${slot.reason}` };
  }

  // ── talking to backends ────────────────────────────────────────────────────────────

  function memberHeaders(slot: MemberSlot | undefined, client: HeaderMap): HeaderMap {
    const headers: HeaderMap = {};
    for (const [name, values] of Object.entries(client)) if (!CLIENT_ONLY_HEADERS.has(name.toLowerCase())) headers[name] = values;
    if (slot?.state === "ready") {
      if (slot.sessionId !== undefined) headers["Mcp-Session-Id"] = [slot.sessionId];
      headers["Mcp-Protocol-Version"] = [slot.protocolVersion];
    }
    return headers;
  }

  /** A request to one backend under a fresh id; a progress token becomes that id for the call's lifetime. */
  function request(member: Member, slot: MemberSlot | undefined, method: string, params: Record<string, unknown>, ctx: CallContext): Promise<ExchangeResult> {
    const id = ++nextId;
    const meta = isObject(params._meta) ? params._meta : undefined;
    const token = meta?.progressToken;
    const outgoing = token === undefined ? params : { ...params, _meta: { ...meta, progressToken: id } };
    ctx.inflight?.calls.push({ member: member.name, id });
    return member.call({
      message: { jsonrpc: "2.0", id, method, params: outgoing },
      headers: memberHeaders(slot, ctx.headers),
      signal: ctx.signal,
      ...(ctx.timeoutMs !== undefined ? { timeoutMs: ctx.timeoutMs } : {}),
      ...(ctx.startup ? { startup: true } : {}),
      notify: (note) => fromMember(member, note, ctx, token === undefined ? undefined : { internal: id, original: token }),
    });
  }

  /** A notification or a response to one backend. */
  function send(member: Member, slot: MemberSlot | undefined, message: JsonRpcMessage, ctx: CallContext): Promise<ExchangeResult> {
    return member.call({
      message,
      headers: memberHeaders(slot, ctx.headers),
      signal: ctx.signal,
      ...(ctx.timeoutMs !== undefined ? { timeoutMs: ctx.timeoutMs } : {}),
      notify: (note) => fromMember(member, note, ctx),
    });
  }

  /** A message a backend sent while serving a call, or on its stream: translate it and pass it on to the right client. */
  function fromMember(member: Member, note: JsonRpcMessage, ctx: CallContext, progress?: { internal: number; original: unknown }): void {
    const { session, carrier } = ctx;
    if (isRequest(note)) {
      const target = carrier ?? session.stream;
      if (!target) {
        void send(member, session.members.get(member.name), {
          jsonrpc: "2.0", id: note.id, error: { code: -32603, message: "Airlock: no client request or stream is open to carry this server request" },
        }, { ...ctx, signal: new AbortController().signal });
        return;
      }
      safeNotify(target, { ...note, id: rememberServerRequest(session, member.name, note.id) }, log);
      return;
    }
    if (!isNotification(note)) return;
    const params = isObject(note.params) ? note.params : {};
    switch (note.method) {
      case "notifications/progress":
        if (carrier && progress && params.progressToken === progress.internal) {
          safeNotify(carrier, { ...note, params: { ...params, progressToken: progress.original } }, log);
        } else {
          log.debug("progress for a token this call did not send; dropped", { backend: member.name });
        }
        return;
      case "notifications/cancelled": {
        const alias = serverRequestAlias(session, member.name, params.requestId);
        if (alias === undefined) return;
        session.serverRequests.delete(alias);
        deliverToSession(session, { ...note, params: { ...params, requestId: alias } }, log, carrier);
        return;
      }
      case "notifications/resources/updated":
        if (typeof params.uri === "string") deliverToSession(session, { ...note, params: { ...params, uri: mapUri(member.name, params.uri) } }, log, carrier);
        return;
      default:
        deliverToSession(session, note, log, carrier);
    }
  }

  // ── sessions ───────────────────────────────────────────────────────────────────────

  function backoff(attempts: number): number {
    return Math.min(retryInitialMs * 2 ** Math.max(0, attempts - 1), retryMaxMs);
  }

  /** Open (or re-open) `member`'s session for `session`; concurrent callers share one attempt. */
  function join(member: Member, ctx: CallContext): Promise<void> {
    const { session } = ctx;
    const running = session.joining.get(member.name);
    if (running) return running;
    const attempt = (async () => {
      const previous = session.members.get(member.name);
      const result = await request(member, undefined, "initialize", session.initializeParams, { ...ctx, timeoutMs: fanOutTimeoutMs, startup: true, inflight: undefined });
      const init = result.kind === "response" ? initializeResult(result.message) : undefined;
      if (closed || !store.get(session.id)) return;
      if (result.kind === "response" && init) {
        const slot: ReadySlot = { state: "ready", ...init };
        const sessionId = headerValue(result.headers, "mcp-session-id");
        if (sessionId !== undefined) slot.sessionId = sessionId;
        session.members.set(member.name, slot);
        initErrors.delete(member.name);
        if (session.initialized) await send(member, slot, { jsonrpc: "2.0", method: "notifications/initialized" }, { ...ctx, timeoutMs: fanOutTimeoutMs });
        if (previous?.state === "failed") {
          log.info("backend joined the session after an earlier failure", { backend: member.name, session: session.id });
          announceLists(session, member.name, slot.capabilities, ctx.carrier);
        }
        return;
      }
      const attempts = previous?.state === "failed" ? previous.attempts + 1 : 1;
      const reason = describeResult(result);
      const failure: FailureSpec = result.kind === "failure" ? result.failure : { source: "protocol", kind: "invalid_protocol_response", upstreamResponseReceived: true };
      const retryInMs = backoff(attempts);
      session.members.set(member.name, { state: "failed", reason, failure, attempts, retryAt: now() + retryInMs });
      initErrors.set(member.name, reason);
      log.warn("backend could not be initialised; it is left out of the session for now", { backend: member.name, reason, retryInMs });
    })().finally(() => session.joining.delete(member.name));
    session.joining.set(member.name, attempt);
    return attempt;
  }

  /** A backend joined an existing session: its lists changed, as far as the client can tell. */
  function announceLists(session: ClientSession, name: string, capabilities: Record<string, unknown>, carrier?: McpExchange): void {
    for (const [capability, method] of LIST_CHANGED) {
      if (isObject(capabilities[capability])) deliverToSession(session, { jsonrpc: "2.0", method }, log, carrier);
    }
    log.debug("announced the lists of a joining backend", { backend: name });
  }

  /** Retry, in parallel, every backend of the session that failed and whose backoff is over. */
  async function joinDue(ctx: CallContext): Promise<void> {
    const due = order.filter((name) => {
      const slot = ctx.session.members.get(name);
      return slot?.state === "new" || (slot?.state === "failed" && slot.retryAt <= now());
    });
    await Promise.all(due.map((name) => join(members.get(name)!, ctx)));
  }

  function readySlot(session: ClientSession, name: string): ReadySlot | undefined {
    const slot = session.members.get(name);
    return slot?.state === "ready" ? slot : undefined;
  }

  /** The client's session named by the request, or the error answer (400 without one, 404 for an unknown one). */
  function findSession(headers: HeaderMap, id: unknown): ClientSession | ExchangeResult {
    const sessionId = headerValue(headers, "mcp-session-id");
    if (sessionId === undefined) {
      return rpcError(id, -32000, `Bad Request: Mcp-Session-Id header is required; channel ${channel} aggregates several MCP servers, so send initialize first`, 400);
    }
    return store.get(sessionId) ?? rpcError(id, -32001, "Session not found", 404);
  }

  async function openSession(exchange: McpExchange, message: JsonRpcMessage & { id: JsonRpcId }): Promise<ExchangeResult> {
    for (const stale of store.sweep()) void endSession(stale, {}, AbortSignal.timeout(fanOutTimeoutMs));
    const params = isObject(message.params) ? message.params : {};
    const requested = typeof params.protocolVersion === "string" ? params.protocolVersion : DEFAULT_PROTOCOL_VERSION;
    const session = store.create(params, order, requested);
    const ctx: CallContext = { session, carrier: exchange, headers: exchange.headers, signal: exchange.signal };
    addCarrier(session, exchange, log);
    try {
      await Promise.all(order.map((name) => join(members.get(name)!, ctx)));
    } finally {
      session.carriers.delete(exchange);
    }
    const ready: MemberInitialize[] = order.flatMap((name) => {
      const slot = readySlot(session, name);
      return slot ? [{ name, protocolVersion: slot.protocolVersion, capabilities: slot.capabilities, ...(slot.instructions ? { instructions: slot.instructions } : {}) }] : [];
    });
    if (ready.length === 0) {
      store.delete(session.id);
      const failed = order.map((name) => [name, session.members.get(name)] as const);
      log.error("no backend of the channel could be initialised; the client's initialize fails", {
        reasons: failed.map(([name, slot]) => `${name}: ${slot?.state === "failed" ? slot.reason : "not attempted"}`),
      });
      const first = failed.find(([, slot]) => slot?.state === "failed");
      return first && first[1]?.state === "failed" ? unavailable(first[1], first[0]) : { kind: "failure", failure: { source: "client_internal" } };
    }
    session.protocolVersion = commonProtocolVersion(ready.map((member) => member.protocolVersion), requested);
    const result: Record<string, unknown> = {
      protocolVersion: session.protocolVersion,
      capabilities: mergeCapabilities(ready),
      serverInfo: { name: `airlock/${channel}`, title: `Airlock channel ${channel}: ${ready.map((m) => m.name).join(", ")}`, version: VERSION },
    };
    const instructions = mergeInstructions(ready);
    if (instructions) result.instructions = instructions;
    log.info("aggregated session opened", { session: session.id, backends: ready.map((m) => m.name), left_out: order.filter((n) => !readySlot(session, n)) });
    return answer(message.id, result, session);
  }

  /** End every backend session behind a client session. */
  async function endSession(session: ClientSession, headers: HeaderMap, signal: AbortSignal): Promise<void> {
    for (const request of session.inflight.values()) request.controller.abort();
    session.stream?.end();
    await Promise.all(order.map(async (name) => {
      const slot = readySlot(session, name);
      if (slot?.sessionId === undefined) return;
      const result = await members.get(name)!.backend.terminateSession(memberHeaders(slot, headers), signal).catch(() => undefined);
      if (result?.kind !== "terminated") log.debug("ending a backend session failed", { backend: name });
    }));
  }

  // ── requests ───────────────────────────────────────────────────────────────────────

  function track(session: ClientSession, id: JsonRpcId): InflightRequest {
    const entry: InflightRequest = { controller: new AbortController(), calls: [] };
    session.inflight.set(JSON.stringify(id), entry);
    return entry;
  }

  async function onRequest(exchange: McpExchange, message: JsonRpcMessage & { id: JsonRpcId; method: string }): Promise<ExchangeResult> {
    if (message.method === "initialize") return openSession(exchange, message);
    const found = findSession(exchange.headers, message.id);
    if ("kind" in found) return found;
    const session = found;
    const entry = track(session, message.id);
    const ctx: CallContext = {
      session, carrier: exchange, headers: exchange.headers, inflight: entry, signal: AbortSignal.any([exchange.signal, entry.controller.signal]),
    };
    addCarrier(session, exchange, log);
    try {
      const result = await serve(ctx, message);
      // Whatever a backend still answered, the client asked for no answer.
      return entry.cancelled ? { kind: "cancelled" } : result;
    } finally {
      session.carriers.delete(exchange);
      session.inflight.delete(JSON.stringify(message.id));
    }
  }

  async function serve(ctx: CallContext, message: JsonRpcMessage & { id: JsonRpcId; method: string }): Promise<ExchangeResult> {
    const params = isObject(message.params) ? message.params : {};
    switch (message.method) {
      case "ping":
        await fanOut(ctx, "ping", {}, () => true);
        return answer(message.id, {});
      case "logging/setLevel":
        await fanOut(ctx, "logging/setLevel", params, (slot) => isObject(slot.capabilities.logging));
        return answer(message.id, {});
      case "tools/list":
      case "prompts/list":
      case "resources/list":
      case "resources/templates/list":
        return list(ctx, message.id, message.method, params);
      case "tools/call":
        return byName(ctx, message, params, "tool");
      case "prompts/get":
        return byName(ctx, message, params, "prompt");
      case "resources/read":
      case "resources/subscribe":
      case "resources/unsubscribe":
        return byUri(ctx, message, params);
      case "completion/complete":
        return completion(ctx, message, params);
      default:
        return rpcError(message.id, -32601, `Method not found: ${message.method} (channel ${channel} aggregates ${order.join(", ")} and does not route it)`);
    }
  }

  /** Send a request to every ready backend that `wants` it; answers are not merged. */
  async function fanOut(ctx: CallContext, method: string, params: Record<string, unknown>, wants: (slot: ReadySlot) => boolean): Promise<void> {
    // A failed backend due for a retry joins in the background: a ping must not wait for it.
    void joinDue({ ...ctx, carrier: undefined, signal: AbortSignal.timeout(fanOutTimeoutMs), inflight: undefined });
    await Promise.all(order.map(async (name) => {
      const slot = readySlot(ctx.session, name);
      if (!slot || !wants(slot)) return;
      const result = await request(members.get(name)!, slot, method, params, { ...ctx, timeoutMs: fanOutTimeoutMs });
      if (result.kind !== "response" || isErrorResponse(result.message)) log.debug(`${method} to a backend did not succeed`, { backend: name, result: describeResult(result) });
    }));
  }

  async function list(ctx: CallContext, id: JsonRpcId, method: ListMethod, params: Record<string, unknown>): Promise<ExchangeResult> {
    const field = LIST_METHODS[method].field;
    let positions: PagePosition[];
    if (params.cursor === undefined) {
      // A failed backend due for a retry gets its chance here, so a listing is complete when it can be.
      await joinDue({ ...ctx, inflight: undefined });
      positions = order.filter((name) => {
        const slot = readySlot(ctx.session, name);
        return slot !== undefined && isObject(slot.capabilities[LIST_CAPABILITY[method]]);
      }).map((name) => ({ name, offset: 0 }));
    } else {
      const decoded = typeof params.cursor === "string" ? decodeCursor(method, params.cursor) : undefined;
      if (!decoded) return rpcError(id, -32602, `Invalid params: the cursor is not one this channel handed out for ${method}; start again without a cursor`);
      positions = decoded;
    }
    const failures: ExchangeResult[] = [];
    const pages = await Promise.all(positions.map(async (position): Promise<MemberPage | undefined> => {
      const member = members.get(position.name);
      const slot = readySlot(ctx.session, position.name);
      if (!member || !slot) return undefined;
      const result = await request(member, slot, method, position.cursor === undefined ? {} : { cursor: position.cursor }, { ...ctx, timeoutMs: fanOutTimeoutMs });
      const page = result.kind === "response" ? pageOf(result.message, field) : undefined;
      if (!page) {
        failures.push(result);
        log.warn(`${method} failed on one backend; its items are missing from this page`, { backend: position.name, result: describeResult(result) });
      }
      return page;
    }));
    if (positions.length > 0 && failures.length === positions.length && failures[0]) return relay(id, failures[0]);
    const { items, next } = assemblePage(positions, pages, (backend, item) => exposed(method, backend, item), options.pageSize);
    const result: Record<string, unknown> = { [field]: items };
    if (next.length > 0) result.nextCursor = encodeCursor(method, next);
    return answer(id, result);
  }

  /** A backend's list item as the client sees it, or undefined when it is hidden or malformed. */
  function exposed(method: ListMethod, backend: string, item: unknown): unknown {
    if (!isObject(item)) return undefined;
    switch (method) {
      case "tools/list":
        return typeof item.name === "string" && members.get(backend)?.tools.allows(item.name) ? { ...item, name: namespaced(backend, item.name) } : undefined;
      case "prompts/list":
        return typeof item.name === "string" ? { ...item, name: namespaced(backend, item.name) } : undefined;
      case "resources/list":
        return typeof item.uri === "string" ? { ...item, uri: mapUri(backend, item.uri) } : undefined;
      case "resources/templates/list":
        return typeof item.uriTemplate === "string" ? { ...item, uriTemplate: mapUri(backend, item.uriTemplate) } : undefined;
    }
  }

  /**
   * Send the client's request to one backend with rewritten params and relay its answer.
   * A backend that lost its session (HTTP 404) is re-initialised and asked once more.
   */
  async function forward(ctx: CallContext, message: JsonRpcMessage & { id: JsonRpcId; method: string }, member: Member, params: Record<string, unknown>, map?: (result: Record<string, unknown>) => unknown): Promise<ExchangeResult> {
    for (let attempt = 0; ; attempt++) {
      let slot = ctx.session.members.get(member.name);
      if (slot?.state === "failed" && slot.retryAt <= now()) {
        await join(member, ctx);
        slot = ctx.session.members.get(member.name);
      }
      if (slot?.state === "failed") return unavailable(slot, member.name);
      if (slot?.state !== "ready") return { kind: "failure", failure: { source: "connect" }, detail: `backend ${member.name} has no session` };
      const result = await request(member, slot, message.method, params, ctx);
      const lost = slot.sessionId !== undefined && sessionLost(result);
      if (!lost || attempt > 0) return relay(message.id, result, map);
      log.info("backend lost its session; opening a new one", { backend: member.name, session: ctx.session.id });
      ctx.session.members.set(member.name, { state: "new" });
      await join(member, ctx);
      if (!readySlot(ctx.session, member.name)) {
        const failed = ctx.session.members.get(member.name);
        return failed?.state === "failed" ? unavailable(failed, member.name) : relay(message.id, result, map);
      }
    }
  }

  async function byName(ctx: CallContext, message: JsonRpcMessage & { id: JsonRpcId; method: string }, params: Record<string, unknown>, kind: "tool" | "prompt"): Promise<ExchangeResult> {
    const name = params.name;
    if (typeof name !== "string") return rpcError(message.id, -32602, `Invalid params: ${message.method} needs params.name`);
    const target = splitNamespaced(name);
    const member = target ? members.get(target.backend) : undefined;
    if (!target || !member || (kind === "tool" && !member.tools.allows(target.name))) {
      return rpcError(message.id, -32602, `Unknown ${kind}: ${name} (channel ${channel} names ${kind}s <backend>__<name>, backends: ${order.join(", ")})`);
    }
    const map = kind === "tool" ? mapToolResult(member.name) : mapPromptResult(member.name);
    return forward(ctx, message, member, { ...params, name: target.name }, map);
  }

  async function byUri(ctx: CallContext, message: JsonRpcMessage & { id: JsonRpcId; method: string }, params: Record<string, unknown>): Promise<ExchangeResult> {
    const uri = params.uri;
    if (typeof uri !== "string") return rpcError(message.id, -32602, `Invalid params: ${message.method} needs params.uri`);
    const target = unmapUri(uri);
    const member = target ? members.get(target.backend) : undefined;
    if (!target || !member) return rpcError(message.id, -32602, `Unknown resource: ${uri} (channel ${channel} serves resources as airlock://<backend>/<uri>, backends: ${order.join(", ")})`);
    const map = message.method === "resources/read" ? mapReadResult(member.name) : undefined;
    return forward(ctx, message, member, { ...params, uri: target.uri }, map);
  }

  async function completion(ctx: CallContext, message: JsonRpcMessage & { id: JsonRpcId; method: string }, params: Record<string, unknown>): Promise<ExchangeResult> {
    const ref = isObject(params.ref) ? params.ref : {};
    if (ref.type === "ref/prompt" && typeof ref.name === "string") {
      const target = splitNamespaced(ref.name);
      const member = target ? members.get(target.backend) : undefined;
      if (!target || !member) return rpcError(message.id, -32602, `Unknown prompt: ${ref.name}`);
      return forward(ctx, message, member, { ...params, ref: { ...ref, name: target.name } });
    }
    if (ref.type === "ref/resource" && typeof ref.uri === "string") {
      const target = unmapUri(ref.uri);
      const member = target ? members.get(target.backend) : undefined;
      if (!target || !member) return rpcError(message.id, -32602, `Unknown resource: ${ref.uri}`);
      return forward(ctx, message, member, { ...params, ref: { ...ref, uri: target.uri } });
    }
    return rpcError(message.id, -32602, "Invalid params: completion/complete needs ref {type: ref/prompt, name} or {type: ref/resource, uri}");
  }

  // ── notifications and responses from the client ──────────────────────────────────────

  async function onNotification(exchange: McpExchange, message: JsonRpcMessage & { method: string }): Promise<ExchangeResult> {
    const found = findSession(exchange.headers, null);
    if ("kind" in found) return found;
    const session = found;
    const ctx: CallContext = { session, headers: exchange.headers, signal: exchange.signal, timeoutMs: fanOutTimeoutMs };
    const params = isObject(message.params) ? message.params : {};
    if (message.method === "notifications/cancelled") {
      const target = session.inflight.get(JSON.stringify(params.requestId));
      if (!target) return ACK;
      await Promise.all(target.calls.map(({ member, id }) => {
        const slot = readySlot(session, member);
        return slot ? send(members.get(member)!, slot, { ...message, params: { ...params, requestId: id } }, ctx) : undefined;
      }));
      target.cancelled = true;
      target.controller.abort();
      return ACK;
    }
    if (message.method === "notifications/initialized") session.initialized = true;
    await Promise.all(order.map((name) => {
      const slot = readySlot(session, name);
      return slot ? send(members.get(name)!, slot, message, ctx) : undefined;
    }));
    return ACK;
  }

  /** The client answers a server→client request: back to the backend that asked, under its own id. */
  async function onClientResponse(exchange: McpExchange, message: JsonRpcMessage): Promise<ExchangeResult> {
    const found = findSession(exchange.headers, null);
    if ("kind" in found) return found;
    const session = found;
    const alias = typeof message.id === "string" ? message.id : undefined;
    const route = alias === undefined ? undefined : session.serverRequests.get(alias);
    if (!route || alias === undefined) {
      log.debug("a client response matches no server request of the session; dropped", { id: message.id });
      return ACK;
    }
    session.serverRequests.delete(alias);
    const member = members.get(route.member)!;
    const slot = readySlot(session, route.member);
    const result = await send(member, slot, { ...message, id: route.originalId }, { session, headers: exchange.headers, signal: exchange.signal });
    return result.kind === "failure" ? result : { kind: "ack", status: 202, headers: {} };
  }

  // ── the client's standalone stream ─────────────────────────────────────────────────────

  /**
   * Carry the session's messages that belong to no request until the client goes away or
   * the session ends: what waited in the buffer, what backends send outside their calls,
   * and each backend's own stream. A backend stream that ends is not reopened until the
   * client reopens its stream.
   */
  async function openStream(stream: McpStream): Promise<StreamResult> {
    const found = findSession(stream.headers, null);
    if ("kind" in found) {
      return found.kind === "response" ? { kind: "refused", status: found.status, headers: found.headers, message: found.message } : { kind: "refused", status: 500, headers: {} };
    }
    const session = found;
    // One stream per session, as an MCP server allows: a reconnecting client replaces its old one.
    session.stream?.end();
    const ended = new AbortController();
    const signal = AbortSignal.any([stream.signal, ended.signal]);
    const sink: SessionStream = { notify: (message) => stream.notify(message), end: () => ended.abort() };
    session.stream = sink;
    stream.opened({ "Content-Type": ["text/event-stream"], "Mcp-Session-Id": [session.id] });
    flushBuffered(session, sink, log);
    const ctx: CallContext = { session, headers: stream.headers, signal };
    for (const name of order) {
      const member = members.get(name)!;
      const slot = readySlot(session, name);
      if (!slot || !member.backend.openStream) continue;
      void member.backend.openStream({
        headers: memberHeaders(slot, stream.headers),
        signal,
        opened: () => {},
        notify: (note) => fromMember(member, note, ctx),
      }).then((result) => {
        if (!signal.aborted) log.debug("a backend's standalone stream ended or was refused", { backend: name, session: session.id, result: result.kind });
      }, (error: unknown) => log.warn("a backend's standalone stream failed", { backend: name, error }));
    }
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    if (session.stream === sink) delete session.stream;
    return { kind: "ended" };
  }

  // ── health ──────────────────────────────────────────────────────────────────────────

  function memberHealth(member: Member): BackendHealth {
    const health = member.backend.health();
    const initError = initErrors.get(member.name);
    if (initError !== undefined && health.state === "up") return { ...health, state: "failed", reason: `initialize failed: ${initError}` };
    return health;
  }

  return {
    name: channel,
    transport: "aggregate",
    // Sessions are this process's state: the hub must keep a session's commands on this agent.
    procAffinity: true,

    async start() {
      await Promise.all([...members.values()].map((member) => member.backend.start()));
    },

    async exchange(exchange) {
      const message = exchange.message;
      if (closed) return { kind: "failure", failure: { source: "transport_closed", kind: "connection_closed" }, detail: "backend closed" };
      if (isRequest(message)) {
        inflight++;
        try {
          return await onRequest(exchange, message);
        } finally {
          inflight--;
        }
      }
      if (isNotification(message)) return onNotification(exchange, message);
      if (isResponse(message)) return onClientResponse(exchange, message);
      return { kind: "failure", failure: { source: "client_internal" }, detail: "the command's message is not a JSON-RPC request, notification or response" };
    },

    async terminateSession(headers, signal): Promise<TerminationResult> {
      const sessionId = headerValue(headers, "mcp-session-id");
      if (sessionId === undefined) return { kind: "terminated", status: 400, headers: {} };
      const session = store.delete(sessionId);
      if (!session) return { kind: "terminated", status: 404, headers: {} };
      await endSession(session, headers, signal);
      return { kind: "terminated", status: 200, headers: {} };
    },

    async openStream(stream) {
      if (closed) return { kind: "failure", failure: { source: "transport_closed", kind: "connection_closed" }, detail: "backend closed" };
      return openStream(stream);
    },

    health(): BackendHealth {
      const list = [...members.values()].map(memberHealth);
      const down = list.filter((health) => health.state !== "up");
      const state = closed ? "stopped"
        : list.some((health) => health.state === "up") ? "up"
        : list.some((health) => health.state === "starting") ? "starting"
        : list.some((health) => health.state === "restarting") ? "restarting"
        : "failed";
      const health: BackendHealth = {
        name: channel, transport: "aggregate", state, inflight, members: list,
        restarts: list.reduce((sum, member) => sum + member.restarts, 0),
      };
      if (closed) health.reason = "backend closed";
      else if (down.length > 0) health.reason = `${down.length} of ${list.length} backends not up: ${down.map((h) => `${h.name} is ${h.state}${h.reason ? ` (${h.reason})` : ""}`).join("; ")}`;
      return health;
    },

    async close() {
      if (closed) return;
      closed = true;
      // End the backends' HTTP sessions rather than leave them to expire on the servers; briefly.
      const sessions = store.all();
      for (const session of sessions) store.delete(session.id);
      await Promise.all(sessions.map((session) => endSession(session, {}, AbortSignal.timeout(1000))));
      await Promise.all([...members.values()].map((member) => member.backend.close()));
    },
  };
}

/** What a backend's `initialize` result says, or undefined when it is not one. */
function initializeResult(message: JsonRpcMessage): Omit<ReadySlot, "state" | "sessionId"> | undefined {
  const result = message.result;
  if (!isObject(result) || typeof result.protocolVersion !== "string") return undefined;
  const slot: Omit<ReadySlot, "state" | "sessionId"> = {
    protocolVersion: result.protocolVersion,
    capabilities: isObject(result.capabilities) ? result.capabilities : {},
  };
  if (typeof result.instructions === "string") slot.instructions = result.instructions;
  return slot;
}

/**
 * Did an HTTP backend refuse the call because it no longer knows the session? MCP says
 * 404; some servers (server-everything among them) answer 400 with a JSON-RPC error about
 * the session id instead.
 */
function sessionLost(result: ExchangeResult): boolean {
  if (result.kind !== "response") return false;
  if (result.status === 404) return true;
  const error = result.message.error;
  return result.status === 400 && isObject(error) && typeof error.message === "string" && /session/i.test(error.message);
}

/** A list page, or undefined when the answer is not one. */
function pageOf(message: JsonRpcMessage, field: string): MemberPage | undefined {
  const result = message.result;
  if (!isObject(result) || !Array.isArray(result[field])) return undefined;
  return typeof result.nextCursor === "string" ? { items: result[field], nextCursor: result.nextCursor } : { items: result[field] };
}

/** A backend's answer in words for logs and health. */
function describeResult(result: ExchangeResult): string {
  if (result.kind === "failure") {
    const { failure } = result;
    const where = `${failure.source}${failure.kind ? `/${failure.kind}` : ""}${failure.source === "target_http" ? ` HTTP ${failure.status}` : ""}`;
    return result.detail ? `${where}: ${result.detail}` : where;
  }
  if (result.kind === "ack") return `HTTP ${result.status} without an answer`;
  if (result.kind === "cancelled") return "cancelled by the client";
  const error = result.message.error;
  if (isObject(error)) return `JSON-RPC error ${String(error.code)}: ${String(error.message)}`;
  return "an answer that is not a valid result";
}

function mapToolResult(backend: string) {
  return (result: Record<string, unknown>) => Array.isArray(result.content)
    ? { ...result, content: result.content.map((item) => mapContentUris(backend, item)) }
    : result;
}

function mapPromptResult(backend: string) {
  return (result: Record<string, unknown>) => Array.isArray(result.messages)
    ? { ...result, messages: result.messages.map((m) => (isObject(m) ? { ...m, content: mapContentUris(backend, m.content) } : m)) }
    : result;
}

function mapReadResult(backend: string) {
  return (result: Record<string, unknown>) => Array.isArray(result.contents)
    ? { ...result, contents: result.contents.map((c) => (isObject(c) && typeof c.uri === "string" ? { ...c, uri: mapUri(backend, c.uri) } : c)) }
    : result;
}
