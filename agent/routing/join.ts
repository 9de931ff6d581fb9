/**
 * Sessions of an aggregated channel: the client's `initialize` opens a session on every
 * backend in parallel and merges their answers into one; a backend that fails is left out
 * and retried with backoff; ending the client's session ends every backend session behind it.
 */
import { headerValue } from "../../shared/protocol/headers.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import { isObject } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { ExchangeResult, McpExchange } from "../backends/types.ts";
import { LEGACY_VERSIONS } from "../../shared/mcp/era.ts";
import { VERSION } from "../version.ts";
import { answer, describeResult, memberHeaders, readySlot, request, send, unavailable } from "./channel.ts";
import type { CallContext, Channel, ReadySlot } from "./channel.ts";
import type { Member } from "./member.ts";
import { commonProtocolVersion, mergeCapabilities, mergeInstructions } from "./merge.ts";
import type { MemberInitialize } from "./merge.ts";
import { addCarrier, deliverToSession } from "./sessions.ts";
import type { ClientSession } from "./sessions.ts";

/** Protocol version answered when the client sends none and no backend says otherwise: the newest legacy one. */
const DEFAULT_PROTOCOL_VERSION = LEGACY_VERSIONS[0];

const LIST_CHANGED: ReadonlyArray<readonly [capability: string, method: string]> = [
  ["tools", "notifications/tools/list_changed"],
  ["prompts", "notifications/prompts/list_changed"],
  ["resources", "notifications/resources/list_changed"],
];

function backoff(channel: Channel, attempts: number): number {
  return Math.min(channel.retry.initialMs * 2 ** Math.max(0, attempts - 1), channel.retry.maxMs);
}

/** Open (or re-open) `member`'s session for `session`; concurrent callers share one attempt. */
export function join(channel: Channel, member: Member, ctx: CallContext): Promise<void> {
  const { session } = ctx;
  const running = session.joining.get(member.name);
  if (running) return running;
  const attempt = joinOnce(channel, member, ctx).finally(() => session.joining.delete(member.name));
  session.joining.set(member.name, attempt);
  return attempt;
}

async function joinOnce(channel: Channel, member: Member, ctx: CallContext): Promise<void> {
  const { session } = ctx;
  const { log } = channel;
  const previous = session.members.get(member.name);
  const result = await request(channel, member, undefined, "initialize", session.initializeParams, {
    ...ctx,
    timeoutMs: channel.fanOutTimeoutMs,
    startup: true,
    inflight: undefined,
  });
  const init = result.kind === "response" ? initializeResult(result.message) : undefined;
  if (channel.closed || !channel.store.get(session.id)) return;
  if (result.kind === "response" && init) {
    const slot: ReadySlot = { state: "ready", ...init };
    const sessionId = headerValue(result.headers, "mcp-session-id");
    if (sessionId !== undefined) slot.sessionId = sessionId;
    session.members.set(member.name, slot);
    channel.initErrors.delete(member.name);
    // The member's own bridge knows when it answered for a 2026-only server; otherwise the server took a legacy initialize.
    channel.eras.set(member.name, member.backend.health().era === "modern" ? "modern" : "legacy");
    if (session.initialized)
      await send(
        channel,
        member,
        slot,
        { jsonrpc: "2.0", method: "notifications/initialized" },
        { ...ctx, timeoutMs: channel.fanOutTimeoutMs },
      );
    if (previous?.state === "failed") {
      log.info("backend joined the session after an earlier failure", { backend: member.name, session: session.id });
      announceLists(channel, session, member.name, slot.capabilities, ctx.carrier);
    }
    return;
  }
  const attempts = previous?.state === "failed" ? previous.attempts + 1 : 1;
  const reason = describeResult(result);
  const failure: FailureSpec =
    result.kind === "failure"
      ? result.failure
      : { source: "protocol", kind: "invalid_protocol_response", upstreamResponseReceived: true };
  const retryInMs = backoff(channel, attempts);
  session.members.set(member.name, { state: "failed", reason, failure, attempts, retryAt: channel.now() + retryInMs });
  channel.initErrors.set(member.name, reason);
  log.warn("backend could not be initialised; it is left out of the session for now", {
    backend: member.name,
    reason,
    retryInMs,
  });
}

/** A backend joined an existing session: its lists changed, as far as the client can tell. */
function announceLists(
  channel: Channel,
  session: ClientSession,
  name: string,
  capabilities: Record<string, unknown>,
  carrier?: McpExchange,
): void {
  for (const [capability, method] of LIST_CHANGED) {
    if (isObject(capabilities[capability])) deliverToSession(session, { jsonrpc: "2.0", method }, channel.log, carrier);
  }
  channel.log.debug("announced the lists of a joining backend", { backend: name });
}

/** Retry, in parallel, every backend of the session that failed and whose backoff is over. */
export async function joinDue(channel: Channel, ctx: CallContext): Promise<void> {
  const due = channel.order.filter((name) => {
    const slot = ctx.session.members.get(name);
    return slot?.state === "new" || (slot?.state === "failed" && slot.retryAt <= channel.now());
  });
  await Promise.all(due.map((name) => join(channel, channel.members.get(name)!, ctx)));
}

/** The client's `initialize`: a new session, joined by every backend that can, answered with their merged capabilities. */
export async function openSession(
  channel: Channel,
  exchange: McpExchange,
  message: JsonRpcMessage & { id: JsonRpcId },
): Promise<ExchangeResult> {
  const { order, store, log } = channel;
  for (const stale of store.sweep()) void endSession(channel, stale, {}, AbortSignal.timeout(channel.fanOutTimeoutMs));
  const params = isObject(message.params) ? message.params : {};
  const requested = typeof params.protocolVersion === "string" ? params.protocolVersion : DEFAULT_PROTOCOL_VERSION;
  const session = store.create(params, order, requested);
  const ctx: CallContext = { session, carrier: exchange, headers: exchange.headers, signal: exchange.signal };
  addCarrier(session, exchange, log);
  try {
    await Promise.all(order.map((name) => join(channel, channel.members.get(name)!, ctx)));
  } finally {
    session.carriers.delete(exchange);
  }
  const ready: MemberInitialize[] = order.flatMap((name) => {
    const slot = readySlot(session, name);
    return slot
      ? [
          {
            name,
            protocolVersion: slot.protocolVersion,
            capabilities: slot.capabilities,
            ...(slot.instructions ? { instructions: slot.instructions } : {}),
          },
        ]
      : [];
  });
  if (ready.length === 0) return noBackendJoined(channel, session);
  session.protocolVersion = commonProtocolVersion(
    ready.map((member) => member.protocolVersion),
    requested,
  );
  const result: Record<string, unknown> = {
    protocolVersion: session.protocolVersion,
    capabilities: mergeCapabilities(ready),
    serverInfo: {
      name: `airlock/${channel.name}`,
      title: `Airlock channel ${channel.name}: ${ready.map((m) => m.name).join(", ")}`,
      version: VERSION,
    },
  };
  const instructions = mergeInstructions(ready);
  if (instructions) result.instructions = instructions;
  log.info("aggregated session opened", {
    session: session.id,
    backends: ready.map((m) => m.name),
    left_out: order.filter((n) => !readySlot(session, n)),
  });
  return answer(message.id, result, session);
}

/** No backend could be initialised: the session is dropped and the client's initialize fails with the first reason. */
function noBackendJoined(channel: Channel, session: ClientSession): ExchangeResult {
  channel.store.delete(session.id);
  const failed = channel.order.map((name) => [name, session.members.get(name)] as const);
  channel.log.error("no backend of the channel could be initialised; the client's initialize fails", {
    reasons: failed.map(([name, slot]) => `${name}: ${slot?.state === "failed" ? slot.reason : "not attempted"}`),
  });
  const first = failed.find(([, slot]) => slot?.state === "failed");
  return first && first[1]?.state === "failed"
    ? unavailable(channel, first[1], first[0])
    : { kind: "failure", failure: { source: "client_internal" } };
}

/** End every backend session behind a client session. */
export async function endSession(
  channel: Channel,
  session: ClientSession,
  headers: HeaderMap,
  signal: AbortSignal,
): Promise<void> {
  for (const inflight of session.inflight.values()) inflight.controller.abort();
  session.stream?.end();
  await Promise.all(
    channel.order.map(async (name) => {
      const slot = readySlot(session, name);
      if (slot?.sessionId === undefined) return;
      const result = await channel.members
        .get(name)!
        .backend.terminateSession(memberHeaders(slot, headers), signal)
        .catch(() => undefined);
      if (result?.kind !== "terminated") channel.log.debug("ending a backend session failed", { backend: name });
    }),
  );
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
