/**
 * `subscriptions/listen` across the eras, both ways.
 *
 * Modern clients of a legacy server ({@link LegacyListens}): the legacy server sends change
 * notifications on its session's standalone stream (the GET stream) and resource updates
 * only for URIs the session subscribed to with `resources/subscribe`. A listen is served on
 * the legacy session its declaration maps to (the one the client's other requests use, so a
 * tool that starts updates for "this session" starts them for the listen too): the first
 * listen of a session opens the session's stream, each URI is subscribed once however many
 * listens ask for it, and the last listen to go unsubscribes and closes the stream. The
 * listen is acknowledged with what the server can honour; each notification it passes is
 * stamped with the listen's id.
 *
 * The other way round (a legacy client's GET stream to a modern server) is legacy-streams.ts.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { isNotification, isObject, type JsonRpcId, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY } from "../../shared/mcp/era.ts";
import type { Logger } from "../../shared/log.ts";
import type { Backend, ExchangeResult, McpExchange, StreamResult } from "../backends/types.ts";
import { declarationOf, type LegacySession } from "./sessions.ts";
import { legacyHeaders } from "./translate.ts";

/** The notification types a listen may opt in to (2026-07-28 `SubscriptionFilter`). */
export interface ListenFilter {
  toolsListChanged?: boolean;
  promptsListChanged?: boolean;
  resourcesListChanged?: boolean;
  resourceSubscriptions?: string[];
}

/** The first message on a listen: what the server agreed to send. */
export const ACKNOWLEDGED = "notifications/subscriptions/acknowledged";

/** Each list-change flag: the capability that must offer `listChanged`, and the notification it lets through. */
const LIST_CHANGED = [
  ["toolsListChanged", "tools", "notifications/tools/list_changed"],
  ["promptsListChanged", "prompts", "notifications/prompts/list_changed"],
  ["resourcesListChanged", "resources", "notifications/resources/list_changed"],
] as const;

/** A filter that takes every change notification, whatever its URI. */
const EVERY_CHANGE = { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true, anyUri: true };

/** How long unsubscribing may take once a listen is over (nobody waits for it). */
const CLEANUP_TIMEOUT_MS = 10_000;
const noop = () => {};

/** The part of `requested` a server with `capabilities` (its `initialize` result's) can honour. */
export function honoredFilter(requested: unknown, capabilities: unknown): ListenFilter {
  const asked = isObject(requested) ? requested : {};
  const offers = isObject(capabilities) ? capabilities : {};
  const honored: ListenFilter = {};
  for (const [flag, capability] of LIST_CHANGED) {
    const offer = offers[capability];
    if (asked[flag] === true && isObject(offer) && offer.listChanged === true) honored[flag] = true;
  }
  const resources = offers.resources;
  const uris = Array.isArray(asked.resourceSubscriptions)
    ? asked.resourceSubscriptions.filter((uri): uri is string => typeof uri === "string")
    : [];
  if (uris.length > 0 && isObject(resources) && resources.subscribe === true)
    honored.resourceSubscriptions = [...new Set(uris)];
  return honored;
}

/** Whether a listen with `filter` takes `message` (only the four gated change notifications pass). */
export function filterAccepts(filter: ListenFilter & { anyUri?: boolean }, message: JsonRpcMessage): boolean {
  if (message.method === "notifications/resources/updated") {
    const uri = isObject(message.params) ? message.params.uri : undefined;
    return typeof uri === "string" && (filter.anyUri === true || (filter.resourceSubscriptions ?? []).includes(uri));
  }
  return LIST_CHANGED.some(([flag, , method]) => message.method === method && filter[flag] === true);
}

/** `message` with the listen's id in `_meta`, as every notification on a listen carries it. */
export function stamped(message: JsonRpcMessage, subscriptionId: JsonRpcId): JsonRpcMessage {
  const params = isObject(message.params) ? message.params : {};
  const meta = isObject(params._meta) ? params._meta : {};
  return { ...message, params: { ...params, _meta: { ...meta, [SUBSCRIPTION_ID_META_KEY]: subscriptionId } } };
}

/** The listen's graceful end (`SubscriptionsListenResult`): the server, here the bridge, closes it. */
function listenEnded(id: JsonRpcId, serverInfo: unknown): ExchangeResult {
  const meta: Record<string, unknown> = { [SUBSCRIPTION_ID_META_KEY]: id };
  if (serverInfo !== undefined) meta[SERVER_INFO_META_KEY] = serverInfo;
  return {
    kind: "response",
    status: 200,
    headers: { "Content-Type": ["text/event-stream"] },
    message: { jsonrpc: "2.0", id, result: { resultType: "complete", _meta: meta } },
  };
}

/** One open listen. */
interface Listener {
  id: JsonRpcId;
  /** The client's declaration (`declarationOf`): listen ids are unique per client only. */
  client: string;
  filter: ListenFilter;
  notify(message: JsonRpcMessage): void;
  /** End it gracefully (the client cancelled it, or the session's stream ended). */
  end(): void;
}

/** What one legacy session carries for its listens. */
interface SessionFeed {
  listeners: Set<Listener>;
  /** Resource URIs subscribed on the session, with how many listens want each. */
  uris: Map<string, number>;
  /** Closes the session's standalone stream. */
  stream: AbortController;
}

/** Each legacy session's feed, for {@link offerToListens} (the session object is the bridge's own). */
const FEEDS = new WeakMap<LegacySession, SessionFeed>();

/**
 * A notification the legacy server sent during a call on `session`. A change notification
 * (list changed, resource updated) is for the session's listens only — a stdio server sends
 * it on whatever is in flight, and a modern client never asks for one on a call — so it goes
 * to the listens that want it and `true` says the call does not get it.
 */
export function offerToListens(session: LegacySession, message: JsonRpcMessage): boolean {
  if (!filterAccepts(EVERY_CHANGE, message)) return false;
  for (const listener of FEEDS.get(session)?.listeners ?? [])
    if (filterAccepts(listener.filter, message)) listener.notify(message);
  return true;
}

/** Modern clients' listens, served on the legacy sessions of one legacy server. */
export class LegacyListens {
  readonly #inner: Backend;
  readonly #log: Logger;
  readonly #feeds = new Map<LegacySession, SessionFeed>();

  constructor(inner: Backend, log: Logger) {
    this.#inner = inner;
    this.#log = log;
  }

  /**
   * Serve one `subscriptions/listen` on `session` until the client goes away, cancels it, or
   * the server's stream ends; then answer with the graceful end (`SubscriptionsListenResult`),
   * which the dispatcher posts only while the client is still there.
   */
  async listen(
    ex: McpExchange,
    message: JsonRpcMessage & { id: JsonRpcId },
    session: LegacySession,
  ): Promise<ExchangeResult> {
    const requested = isObject(message.params) ? message.params.notifications : undefined;
    const filter = honoredFilter(requested, session.initialize.capabilities);
    const headers = legacyHeaders(ex.headers, session.headers);
    const feed = this.#feed(session, headers);
    const uris = filter.resourceSubscriptions ?? [];
    const subscribed = await Promise.all(uris.map((uri) => this.#subscribe(feed, uri, headers, ex.signal)));
    const kept = uris.filter((_, at) => subscribed[at]);
    if (uris.length > 0) filter.resourceSubscriptions = kept;
    if (kept.length === 0) delete filter.resourceSubscriptions;
    ex.notify(stamped({ jsonrpc: "2.0", method: ACKNOWLEDGED, params: { notifications: filter } }, message.id), {});
    const serverInfo = session.initialize.serverInfo;
    if (Object.keys(filter).length === 0) {
      this.#release(session, feed, [], headers);
      return listenEnded(message.id, serverInfo);
    }
    let end = noop;
    await new Promise<void>((resolve) => {
      end = resolve;
      feed.listeners.add({
        id: message.id,
        client: declarationOf(message).key,
        filter,
        notify: (note) => ex.notify(stamped(note, message.id), {}),
        end,
      });
      if (ex.signal.aborted) end();
      else ex.signal.addEventListener("abort", end, { once: true });
    });
    ex.signal.removeEventListener("abort", end);
    for (const listener of feed.listeners) if (listener.end === end) feed.listeners.delete(listener);
    this.#release(session, feed, kept, headers);
    return listenEnded(message.id, serverInfo);
  }

  /** A client's `notifications/cancelled` naming one of its listens ends it; true when it did. */
  cancel(message: JsonRpcMessage): boolean {
    if (!isNotification(message) || message.method !== "notifications/cancelled" || !isObject(message.params))
      return false;
    const requestId = message.params.requestId;
    const client = declarationOf(message).key;
    for (const feed of this.#feeds.values())
      for (const listener of feed.listeners)
        if (listener.id === requestId && listener.client === client) {
          listener.end();
          return true;
        }
    return false;
  }

  /** The session's feed, opening its standalone stream when it is the first listen. */
  #feed(session: LegacySession, headers: HeaderMap): SessionFeed {
    const existing = this.#feeds.get(session);
    if (existing) return existing;
    const feed: SessionFeed = { listeners: new Set(), uris: new Map(), stream: new AbortController() };
    this.#feeds.set(session, feed);
    FEEDS.set(session, feed);
    void this.#openStream(session, feed, headers);
    return feed;
  }

  async #openStream(session: LegacySession, feed: SessionFeed, headers: HeaderMap): Promise<void> {
    if (!this.#inner.openStream) {
      this.#log.info("MCP server has no standalone stream; listens get only what arrives during calls", {
        backend: this.#inner.name,
      });
      return;
    }
    const result = await this.#inner
      .openStream({
        headers,
        signal: feed.stream.signal,
        opened: noop,
        notify: (note) => {
          for (const listener of feed.listeners) if (filterAccepts(listener.filter, note)) listener.notify(note);
        },
      })
      .catch((error: unknown): StreamResult => ({ kind: "ended", detail: String(error) }));
    if (feed.stream.signal.aborted) return;
    // The server ended its stream (or has none): the listens end gracefully, and their clients may listen again.
    this.#log.info("the legacy server's standalone stream ended; ending the listens on it", {
      backend: this.#inner.name,
      result: result.kind,
    });
    this.#forget(session, feed);
    for (const listener of feed.listeners) listener.end();
  }

  /** Subscribe `uri` on the session unless another listen already did; false when the server refused. */
  async #subscribe(feed: SessionFeed, uri: string, headers: HeaderMap, signal: AbortSignal): Promise<boolean> {
    const count = feed.uris.get(uri) ?? 0;
    feed.uris.set(uri, count + 1);
    if (count > 0) return true;
    const answer = await this.#ask("resources/subscribe", uri, headers, signal);
    if (answer) return true;
    feed.uris.delete(uri);
    return false;
  }

  /** A listen is over: its URIs are unsubscribed when no other listen wants them; the last listen closes the stream. */
  #release(session: LegacySession, feed: SessionFeed, uris: readonly string[], headers: HeaderMap): void {
    const signal = AbortSignal.timeout(CLEANUP_TIMEOUT_MS);
    for (const uri of uris) {
      const count = (feed.uris.get(uri) ?? 1) - 1;
      if (count > 0) {
        feed.uris.set(uri, count);
        continue;
      }
      feed.uris.delete(uri);
      void this.#ask("resources/unsubscribe", uri, headers, signal);
    }
    if (feed.listeners.size > 0 || feed.uris.size > 0) return;
    this.#forget(session, feed);
    feed.stream.abort();
  }

  #forget(session: LegacySession, feed: SessionFeed): void {
    if (this.#feeds.get(session) !== feed) return;
    this.#feeds.delete(session);
    FEEDS.delete(session);
  }

  /** One `resources/(un)subscribe` on the session; true when the server said yes. */
  async #ask(method: string, uri: string, headers: HeaderMap, signal: AbortSignal): Promise<boolean> {
    const message = { jsonrpc: "2.0", id: `airlock-bridge-${method}-${crypto.randomUUID()}`, method, params: { uri } };
    const answer = await this.#inner.exchange({ message, headers, signal, notify: noop }).catch(() => undefined);
    const ok = answer?.kind === "response" && isObject(answer.message.result);
    if (!ok) this.#log.warn(`the legacy server refused ${method} for a listen`, { backend: this.#inner.name, uri });
    return ok;
  }
}
