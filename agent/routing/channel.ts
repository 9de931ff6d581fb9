/**
 * What every part of an aggregated channel shares (its members, sessions and settings),
 * and how it talks to one backend: requests under the session's multiplexer, the
 * backend's headers, the messages a backend sends back translated for the client, and
 * the answers the aggregate gives.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { isNotification, isObject, isRequest } from "../../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import type { ExchangeResult, McpExchange } from "../backends/types.ts";
import { noCarrierAnswer } from "../mcp/multiplexer.ts";
import type { SentRequest } from "../mcp/multiplexer.ts";
import type { Member } from "./member.ts";
import { mapUri } from "./names.ts";
import { deliverToSession, safeNotify } from "./sessions.ts";
import type { ClientSession, InflightRequest, MemberCallRoute, MemberSlot, SessionStore } from "./sessions.ts";

/** The state of one aggregated channel, shared by its session, list and call code. */
export interface Channel {
  /** The channel served; the aggregate's name. */
  readonly name: string;
  readonly log: Logger;
  readonly now: () => number;
  readonly members: ReadonlyMap<string, Member>;
  /** Member names in route order: lists are merged in this order. */
  readonly order: readonly string[];
  readonly store: SessionStore;
  /** Backends whose latest initialize failed, with why; cleared by the next success. */
  readonly initErrors: Map<string, string>;
  /**
   * The era each backend is served in, from its latest successful join: `modern` when its era
   * bridge answered for a 2026-only server (it refused the legacy initialize), else `legacy`.
   */
  readonly eras: Map<string, "legacy" | "modern">;
  readonly fanOutTimeoutMs: number;
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly pageSize: number | undefined;
  closed: boolean;
}

export type ReadySlot = Extract<MemberSlot, { state: "ready" }>;
export type FailedSlot = Extract<MemberSlot, { state: "failed" }>;

/** How one call to a backend relates to the client's traffic. */
export interface CallContext {
  session: ClientSession;
  /** The client's request this call serves: carries progress and server→client requests. */
  carrier?: McpExchange;
  /** The client's headers (minus {@link CLIENT_ONLY_HEADERS}) go to the backend. */
  headers: HeaderMap;
  signal: AbortSignal;
  /** The client's request, so `notifications/cancelled` can reach this call. */
  inflight?: InflightRequest;
  timeoutMs?: number;
  /** See {@link MemberCall.startup}. */
  startup?: boolean;
}

const JSON_HEADERS: HeaderMap = { "Content-Type": ["application/json"] };
/**
 * Client headers that describe the client's session with the aggregate, not with a backend.
 * `Authorization` stays behind too: one client credential must not reach every backend of
 * the channel (backends get their own static `headers`).
 */
const CLIENT_ONLY_HEADERS = new Set(["mcp-session-id", "mcp-protocol-version", "last-event-id", "authorization"]);

// ── answers ────────────────────────────────────────────────────────────────────────

export function answer(id: unknown, result: unknown, session?: ClientSession): ExchangeResult {
  const headers = session ? { ...JSON_HEADERS, "Mcp-Session-Id": [session.id] } : JSON_HEADERS;
  return { kind: "response", status: 200, headers, message: { jsonrpc: "2.0", id, result } };
}

export function rpcError(id: unknown, code: number, message: string, status = 200): ExchangeResult {
  return {
    kind: "response",
    status,
    headers: JSON_HEADERS,
    message: { jsonrpc: "2.0", id: id ?? null, error: { code, message } },
  };
}

/** A backend's answer as the client gets it: the client's id, our headers, a 200 (backend statuses are not the client's). */
export function relay(
  id: unknown,
  result: ExchangeResult,
  map?: (result: Record<string, unknown>) => unknown,
): ExchangeResult {
  if (result.kind === "failure")
    return { kind: "failure", failure: result.failure, ...(result.detail ? { detail: result.detail } : {}) };
  if (result.kind === "cancelled") return result;
  if (result.kind === "ack")
    return {
      kind: "failure",
      failure: { source: "protocol", kind: "response_body_missing", upstreamResponseReceived: true },
      detail: "the backend acknowledged a request without answering it",
    };
  const message: JsonRpcMessage = { ...result.message, id };
  if (map && isObject(message.result)) message.result = map(message.result);
  return { kind: "response", status: 200, headers: JSON_HEADERS, message };
}

/** A backend that is not in the session: a synthesised failure (the reason goes to the log, not to the client). */
export function unavailable(channel: Channel, slot: FailedSlot, name: string): ExchangeResult {
  return {
    kind: "failure",
    failure: slot.failure,
    detail: `backend ${name} of channel ${channel.name} is unavailable: ${slot.reason}`,
  };
}

/** A backend's answer in words for logs and health. */
export function describeResult(result: ExchangeResult): string {
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

// ── talking to backends ────────────────────────────────────────────────────────────

export function readySlot(session: ClientSession, name: string): ReadySlot | undefined {
  const slot = session.members.get(name);
  return slot?.state === "ready" ? slot : undefined;
}

/** The headers a backend gets: the client's (minus its session's own) and the backend's session. */
export function memberHeaders(slot: MemberSlot | undefined, client: HeaderMap): HeaderMap {
  const headers: HeaderMap = {};
  for (const [name, values] of Object.entries(client))
    if (!CLIENT_ONLY_HEADERS.has(name.toLowerCase())) headers[name] = values;
  if (slot?.state === "ready") {
    if (slot.sessionId !== undefined) headers["Mcp-Session-Id"] = [slot.sessionId];
    headers["Mcp-Protocol-Version"] = [slot.protocolVersion];
  }
  return headers;
}

/** A request to one backend under a fresh id (the session's multiplexer); a progress token becomes that id for the call's lifetime. */
export async function request(
  channel: Channel,
  member: Member,
  slot: MemberSlot | undefined,
  method: string,
  params: Record<string, unknown>,
  ctx: CallContext,
): Promise<ExchangeResult> {
  const { mux } = ctx.session;
  const sent = mux.send({ jsonrpc: "2.0", id: 0, method, params }, { member: member.name }, ctx.inflight?.id);
  try {
    return await member.call({
      message: sent.message,
      headers: memberHeaders(slot, ctx.headers),
      signal: ctx.signal,
      ...(ctx.timeoutMs !== undefined ? { timeoutMs: ctx.timeoutMs } : {}),
      ...(ctx.startup ? { startup: true } : {}),
      notify: (note) => fromMember(channel, member, note, ctx, sent.entry),
    });
  } finally {
    mux.forget(sent.entry.internalId);
  }
}

/** A notification or a response to one backend. */
export function send(
  channel: Channel,
  member: Member,
  slot: MemberSlot | undefined,
  message: JsonRpcMessage,
  ctx: CallContext,
): Promise<ExchangeResult> {
  return member.call({
    message,
    headers: memberHeaders(slot, ctx.headers),
    signal: ctx.signal,
    ...(ctx.timeoutMs !== undefined ? { timeoutMs: ctx.timeoutMs } : {}),
    notify: (note) => fromMember(channel, member, note, ctx),
  });
}

/**
 * A message a backend sent while serving a call (`call`), or on its stream: translate it
 * and pass it on to the right client.
 */
export function fromMember(
  channel: Channel,
  member: Member,
  note: JsonRpcMessage,
  ctx: CallContext,
  call?: SentRequest<MemberCallRoute>,
): void {
  const { session, carrier } = ctx;
  const { log } = channel;
  if (isRequest(note)) {
    const target = carrier ?? session.stream;
    if (!target) {
      void send(channel, member, session.members.get(member.name), noCarrierAnswer(note.id), {
        ...ctx,
        signal: new AbortController().signal,
      });
      return;
    }
    safeNotify(target, session.mux.aliasServerRequest(member.name, note), log);
    return;
  }
  if (!isNotification(note)) return;
  const params = isObject(note.params) ? note.params : {};
  switch (note.method) {
    case "notifications/progress": {
      const progress = session.mux.progress(note);
      if (carrier && call && progress?.entry === call) safeNotify(carrier, progress.message, log);
      else log.debug("progress for a token this call did not send; dropped", { backend: member.name });
      return;
    }
    case "notifications/cancelled": {
      const cancelled = session.mux.serverCancelled(member.name, note);
      if (cancelled) deliverToSession(session, cancelled, log, carrier);
      return;
    }
    case "notifications/resources/updated":
      if (typeof params.uri === "string")
        deliverToSession(
          session,
          { ...note, params: { ...params, uri: mapUri(member.name, params.uri) } },
          log,
          carrier,
        );
      return;
    default:
      deliverToSession(session, note, log, carrier);
  }
}
