/**
 * What the client of an aggregated channel sends, by kind: requests (tracked for
 * cancellation and carrying the session's notifications), notifications (fanned out,
 * `notifications/cancelled` translated to each backend call's internal id), answers to
 * server→client requests (back to the backend that asked, under its own id), and its
 * standalone stream (which opens each backend's own stream under that backend's session).
 */
import { headerValue } from "../../shared/protocol/headers.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { isObject } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { ExchangeResult, McpExchange, McpStream, StreamResult } from "../backends/types.ts";
import { linkSignals } from "../runtime/signals.ts";
import { fromMember, memberHeaders, readySlot, rpcError, send } from "./channel.ts";
import type { CallContext, Channel } from "./channel.ts";
import { serve } from "./calls.ts";
import { openSession } from "./join.ts";
import { addCarrier, flushBuffered } from "./sessions.ts";
import type { ClientSession, InflightRequest, SessionStream } from "./sessions.ts";

const ACK: ExchangeResult = { kind: "ack", status: 202, headers: {} };

/** The client's session named by the request, or the error answer (400 without one, 404 for an unknown one). */
function findSession(channel: Channel, headers: HeaderMap, id: unknown): ClientSession | ExchangeResult {
  const sessionId = headerValue(headers, "mcp-session-id");
  if (sessionId === undefined) {
    return rpcError(
      id,
      -32000,
      `Bad Request: Mcp-Session-Id header is required; channel ${channel.name} aggregates several MCP servers, so send initialize first`,
      400,
    );
  }
  return channel.store.get(sessionId) ?? rpcError(id, -32001, "Session not found", 404);
}

export async function onRequest(
  channel: Channel,
  exchange: McpExchange,
  message: JsonRpcMessage & { id: JsonRpcId; method: string },
): Promise<ExchangeResult> {
  if (message.method === "initialize") return openSession(channel, exchange, message);
  const found = findSession(channel, exchange.headers, message.id);
  if ("kind" in found) return found;
  const session = found;
  const key = JSON.stringify(message.id);
  const entry: InflightRequest = { id: message.id, controller: new AbortController() };
  session.inflight.set(key, entry);
  const linked = linkSignals([exchange.signal, entry.controller.signal]);
  const ctx: CallContext = {
    session,
    carrier: exchange,
    headers: exchange.headers,
    inflight: entry,
    signal: linked.signal,
  };
  addCarrier(session, exchange, channel.log);
  try {
    const result = await serve(channel, ctx, message);
    // Whatever a backend still answered, the client asked for no answer.
    return entry.cancelled ? { kind: "cancelled" } : result;
  } finally {
    linked.dispose();
    session.carriers.delete(exchange);
    session.inflight.delete(key);
  }
}

export async function onNotification(
  channel: Channel,
  exchange: McpExchange,
  message: JsonRpcMessage & { method: string },
): Promise<ExchangeResult> {
  const found = findSession(channel, exchange.headers, null);
  if ("kind" in found) return found;
  const session = found;
  const ctx: CallContext = {
    session,
    headers: exchange.headers,
    signal: exchange.signal,
    timeoutMs: channel.fanOutTimeoutMs,
  };
  if (message.method === "notifications/cancelled") {
    const params = isObject(message.params) ? message.params : {};
    const target = session.inflight.get(JSON.stringify(params.requestId));
    if (!target) return ACK;
    await Promise.all(
      session.mux.cancelled(message).map(({ entry, message: cancel }) => {
        const slot = readySlot(session, entry.context.member);
        return slot ? send(channel, channel.members.get(entry.context.member)!, slot, cancel, ctx) : undefined;
      }),
    );
    target.cancelled = true;
    target.controller.abort();
    return ACK;
  }
  if (message.method === "notifications/initialized") session.initialized = true;
  await Promise.all(
    channel.order.map((name) => {
      const slot = readySlot(session, name);
      return slot ? send(channel, channel.members.get(name)!, slot, message, ctx) : undefined;
    }),
  );
  return ACK;
}

/** The client answers a server→client request: back to the backend that asked, under its own id. */
export async function onClientResponse(
  channel: Channel,
  exchange: McpExchange,
  message: JsonRpcMessage,
): Promise<ExchangeResult> {
  const found = findSession(channel, exchange.headers, null);
  if ("kind" in found) return found;
  const session = found;
  const route = session.mux.serverAnswer(message);
  if (!route) {
    channel.log.debug("a client response matches no server request of the session; dropped", { id: message.id });
    return ACK;
  }
  const member = channel.members.get(route.server)!;
  const slot = readySlot(session, route.server);
  const result = await send(channel, member, slot, route.message, {
    session,
    headers: exchange.headers,
    signal: exchange.signal,
  });
  return result.kind === "failure" ? result : ACK;
}

/**
 * Carry the session's messages that belong to no request until the client goes away or
 * the session ends: what waited in the buffer, what backends send outside their calls,
 * and each backend's own stream. A backend stream that ends is not reopened until the
 * client reopens its stream.
 */
export async function openStream(channel: Channel, stream: McpStream): Promise<StreamResult> {
  const found = findSession(channel, stream.headers, null);
  if ("kind" in found) {
    return found.kind === "response"
      ? { kind: "refused", status: found.status, headers: found.headers, message: found.message }
      : { kind: "refused", status: 500, headers: {} };
  }
  const session = found;
  // One stream per session, as an MCP server allows: a reconnecting client replaces its old one.
  session.stream?.end();
  const ended = new AbortController();
  const linked = linkSignals([stream.signal, ended.signal]);
  const signal = linked.signal;
  const sink: SessionStream = { notify: (message) => stream.notify(message), end: () => ended.abort() };
  session.stream = sink;
  stream.opened({ "Content-Type": ["text/event-stream"], "Mcp-Session-Id": [session.id] });
  flushBuffered(session, sink, channel.log);
  const ctx: CallContext = { session, headers: stream.headers, signal };
  for (const name of channel.order) {
    const member = channel.members.get(name)!;
    const slot = readySlot(session, name);
    if (!slot || !member.backend.openStream) continue;
    void member.backend
      .openStream({
        headers: memberHeaders(slot, stream.headers),
        signal,
        opened: () => {},
        notify: (note) => fromMember(channel, member, note, ctx),
      })
      .then(
        (result) => {
          if (!signal.aborted)
            channel.log.debug("a backend's standalone stream ended or was refused", {
              backend: name,
              session: session.id,
              result: result.kind,
            });
        },
        (error: unknown) => channel.log.warn("a backend's standalone stream failed", { backend: name, error }),
      );
  }
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
  linked.dispose();
  if (session.stream === sink) delete session.stream;
  return { kind: "ended" };
}
