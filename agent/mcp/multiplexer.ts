/**
 * The id bookkeeping of one MCP client connection that carries the traffic of several
 * clients (the stdio backend: many exchanges on one child; the aggregate: one client
 * session over several backends). Their JSON-RPC ids may collide, so:
 *
 * - every request goes downstream under a fresh internal id, and its `_meta.progressToken`
 *   under that same number; the answer and its progress get the originals back;
 * - a client's `notifications/cancelled` names its own id; it goes downstream under the
 *   internal id of each request it names;
 * - a server→client request reaches the client under an alias unique in this multiplexer,
 *   the client's answer goes back to the server that asked under that server's own id, and
 *   the server's `notifications/cancelled` for it reaches the client under the alias;
 * - a server request that no client request or stream can carry is answered with
 *   {@link noCarrierAnswer} so the server does not wait forever.
 *
 * State is two named maps; nothing else. What an entry is routed to (an exchange, a
 * backend) is the caller's `context`.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { SUBSCRIPTION_ID_META_KEY } from "../../shared/mcp/era.ts";

/** A request sent downstream and not yet answered. */
export interface SentRequest<Context> {
  readonly internalId: number;
  /** The client's id; undefined for the multiplexer owner's own requests (no client can cancel them). */
  readonly originalId: JsonRpcId | undefined;
  /** Present when the request carried `_meta.progressToken` (sent as `internalId`). */
  readonly progressToken?: { readonly original: unknown };
  readonly context: Context;
}

/** A server→client request waiting for the client's answer. */
export interface ServerRequestRoute<Server> {
  readonly server: Server;
  readonly originalId: JsonRpcId;
}

/** A message rewritten for its destination, with the request it concerns. */
export interface Routed<Context> {
  entry: SentRequest<Context>;
  message: JsonRpcMessage;
}

export interface MultiplexerOptions {
  /** Server→client requests kept waiting for an answer; the oldest is forgotten first. Default 256. */
  maxServerRequests?: number;
  /**
   * Where internal ids come from. Default: a counter of this multiplexer's own. The aggregate's
   * sessions share one, so that a backend serving several sessions never sees an id twice.
   */
  ids?: () => number;
}

/** Said to a server whose request no client can receive. */
export const NO_CARRIER_MESSAGE = "Airlock: no MCP client request or stream is open to carry this server request";

/** The answer to a server→client request that nothing can carry to a client. */
export function noCarrierAnswer(id: JsonRpcId): JsonRpcMessage {
  return { jsonrpc: "2.0", id, error: { code: -32603, message: NO_CARRIER_MESSAGE } };
}

/** `notifications/cancelled` for a request the multiplexer's owner gives up on (deadline, abort). */
export function cancelNotice(internalId: number, reason: string): JsonRpcMessage {
  return { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: internalId, reason } };
}

/**
 * Named maps from internal ids to the clients' requests, and from aliases to the servers'
 * requests. `Context` is what the owner routes a request's traffic to; `Server` names the
 * server behind a server→client request (a backend name; `never` when there is one server
 * and its ids pass through untouched).
 */
export class McpMultiplexer<Context, Server = never> {
  /** Requests sent downstream and not yet answered, by the internal id they went out under. */
  readonly #sent = new Map<number, SentRequest<Context>>();
  /** Server→client requests handed to a client, by the alias the client sees. */
  readonly #serverRequests = new Map<string, ServerRequestRoute<Server>>();
  readonly #maxServerRequests: number;
  readonly #nextInternalId: () => number;
  #lastAlias = 0;

  constructor(options: MultiplexerOptions = {}) {
    this.#maxServerRequests = options.maxServerRequests ?? 256;
    this.#nextInternalId = options.ids ?? counter();
  }

  /**
   * Register a request for sending: it goes out under a fresh internal id, and its progress
   * token (when it has one) becomes that id. Forget the entry once the request is settled.
   */
  send(message: JsonRpcMessage, context: Context, originalId: JsonRpcId | undefined): Routed<Context> {
    const internalId = this.#nextInternalId();
    const outgoing: JsonRpcMessage = { ...message, id: internalId };
    const params = message.params;
    let progressToken: SentRequest<Context>["progressToken"];
    if (isObject(params) && isObject(params._meta) && params._meta.progressToken !== undefined) {
      progressToken = { original: params._meta.progressToken };
      outgoing.params = { ...params, _meta: { ...params._meta, progressToken: internalId } };
    }
    const entry: SentRequest<Context> = progressToken
      ? { internalId, originalId, progressToken, context }
      : { internalId, originalId, context };
    this.#sent.set(internalId, entry);
    return { entry, message: outgoing };
  }

  /** Drop a request (answered, failed, aborted); true when it was still waiting. */
  forget(internalId: number): boolean {
    return this.#sent.delete(internalId);
  }

  has(internalId: number): boolean {
    return this.#sent.has(internalId);
  }

  /** Requests still waiting, oldest first. */
  waiting(): SentRequest<Context>[] {
    return [...this.#sent.values()];
  }

  /** A downstream response, under the client's id, with the request it answers; undefined when none waits for it. */
  answer(response: JsonRpcMessage): Routed<Context> | undefined {
    const entry = typeof response.id === "number" ? this.#sent.get(response.id) : undefined;
    if (!entry) return undefined;
    return { entry, message: { ...response, id: entry.originalId ?? entry.internalId } };
  }

  /** `notifications/progress` under the client's token, with its request; undefined when the token is no request's. */
  progress(note: JsonRpcMessage): Routed<Context> | undefined {
    if (note.method !== "notifications/progress" || !isObject(note.params)) return undefined;
    const token = note.params.progressToken;
    const entry = typeof token === "number" ? this.#sent.get(token) : undefined;
    if (!entry?.progressToken) return undefined;
    return { entry, message: { ...note, params: { ...note.params, progressToken: entry.progressToken.original } } };
  }

  /**
   * A notification of a `subscriptions/listen` stream (stamped with the listen's internal id)
   * under the client's id, with the listen it belongs to; undefined when it names no waiting request.
   */
  subscription(note: JsonRpcMessage): Routed<Context> | undefined {
    const meta = isObject(note.params) && isObject(note.params._meta) ? note.params._meta : undefined;
    const id = meta?.[SUBSCRIPTION_ID_META_KEY];
    const entry = typeof id === "number" ? this.#sent.get(id) : undefined;
    if (!entry || !meta || !isObject(note.params)) return undefined;
    const stamp = { ...meta, [SUBSCRIPTION_ID_META_KEY]: entry.originalId ?? entry.internalId };
    return { entry, message: { ...note, params: { ...note.params, _meta: stamp } } };
  }

  /**
   * A client's `notifications/cancelled`, once per waiting request it names (same client
   * id, and `matches` when given), oldest first, each under that request's internal id.
   * An id that names nothing gives nothing: it may be another client's internal id.
   */
  cancelled(note: JsonRpcMessage, matches?: (entry: SentRequest<Context>) => boolean): Routed<Context>[] {
    if (!isObject(note.params)) return [];
    const params = note.params;
    const routed: Routed<Context>[] = [];
    for (const entry of this.#sent.values()) {
      if (entry.originalId === undefined || entry.originalId !== params.requestId) continue;
      if (matches && !matches(entry)) continue;
      routed.push({ entry, message: { ...note, params: { ...params, requestId: entry.internalId } } });
    }
    return routed;
  }

  /** A server's request as the client sees it: under an alias unique in this multiplexer. */
  aliasServerRequest(server: Server, request: JsonRpcMessage & { id: JsonRpcId }): JsonRpcMessage {
    const alias = `airlock-${++this.#lastAlias}`;
    this.#serverRequests.set(alias, { server, originalId: request.id });
    if (this.#serverRequests.size > this.#maxServerRequests) {
      const oldest = this.#serverRequests.keys().next().value;
      if (oldest !== undefined) this.#serverRequests.delete(oldest);
    }
    return { ...request, id: alias };
  }

  /** The client's answer to an aliased server request: the server that asked and the answer under its id. */
  serverAnswer(response: JsonRpcMessage): { server: Server; message: JsonRpcMessage } | undefined {
    const alias = typeof response.id === "string" ? response.id : undefined;
    const route = alias === undefined ? undefined : this.#serverRequests.get(alias);
    if (!route || alias === undefined) return undefined;
    this.#serverRequests.delete(alias);
    return { server: route.server, message: { ...response, id: route.originalId } };
  }

  /** A server cancelling its own request: the cancellation under the alias the client knows, or undefined. */
  serverCancelled(server: Server, note: JsonRpcMessage): JsonRpcMessage | undefined {
    if (!isObject(note.params)) return undefined;
    const params = note.params;
    for (const [alias, route] of this.#serverRequests) {
      if (route.server !== server || route.originalId !== params.requestId) continue;
      this.#serverRequests.delete(alias);
      return { ...note, params: { ...params, requestId: alias } };
    }
    return undefined;
  }
}

/** 1, 2, 3, … */
export function counter(): () => number {
  let last = 0;
  return () => ++last;
}
