/**
 * Legacy (2025) clients' GET streams and `resources/subscribe`, for a modern-only server: a
 * legacy client's GET stream becomes a 2026-07-28 `subscriptions/listen` for every list
 * change and the URIs that client's session subscribed to; `resources/subscribe` and
 * `unsubscribe` (gone in 2026-07-28) are answered here and change the listen (it is reopened
 * with the new filter). The acknowledgement and the listen's id stamps stay behind: a legacy
 * client knows neither.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import { isObject, isRequest, type JsonRpcId, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { SUBSCRIPTION_ID_META_KEY } from "../../shared/mcp/era.ts";
import { linkSignals } from "../runtime/signals.ts";
import type { ExchangeResult, McpExchange, McpStream, StreamResult } from "../backends/types.ts";
import { ACKNOWLEDGED, type ListenFilter } from "./listen.ts";

/** `message` without the listen's stamp (for a legacy client, which never opened one). */
function unstamped(message: JsonRpcMessage): JsonRpcMessage {
  const params = message.params;
  if (!isObject(params) || !isObject(params._meta) || !(SUBSCRIPTION_ID_META_KEY in params._meta)) return message;
  const { [SUBSCRIPTION_ID_META_KEY]: _dropped, ...meta } = params._meta;
  const { _meta: _old, ...rest } = params;
  return { ...message, params: Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest };
}

/** What a legacy client's session has asked to be told about. */
interface ClientSubscriptions {
  uris: Set<string>;
  /** Reopens the session's listen with the new filter, while its GET stream is open. */
  changed?: () => void;
}

/** How many legacy sessions' subscriptions are remembered; the least recently used are forgotten. */
const MAX_SUBSCRIBED_SESSIONS = 1024;

/**
 * Legacy clients' GET streams and `resources/subscribe`, for a modern server: `send` is the
 * bridge's way to that server for a legacy client's message (it adds the session's
 * declaration and the modern headers).
 */
export class LegacyStreams {
  readonly #send: (ex: McpExchange) => Promise<ExchangeResult>;
  readonly #sessions = new Map<string, ClientSubscriptions>();
  #next = 0;

  constructor(send: (ex: McpExchange) => Promise<ExchangeResult>) {
    this.#send = send;
  }

  /** `resources/subscribe` / `unsubscribe` are answered here (the modern era has neither); `undefined` for any other message. */
  exchange(ex: McpExchange): ExchangeResult | undefined {
    const message = ex.message;
    if (!isRequest(message) || !["resources/subscribe", "resources/unsubscribe"].includes(message.method))
      return undefined;
    const uri = isObject(message.params) ? message.params.uri : undefined;
    if (typeof uri !== "string")
      return answer(message.id, undefined, {
        code: -32602,
        message: `Invalid params: ${message.method} needs params.uri`,
      });
    const subscriptions = this.#subscriptions(ex.headers);
    const before = subscriptions.uris.size;
    if (message.method === "resources/subscribe") subscriptions.uris.add(uri);
    else subscriptions.uris.delete(uri);
    if (subscriptions.uris.size !== before) subscriptions.changed?.();
    return answer(message.id, {});
  }

  /**
   * The legacy client's GET stream: a listen for every list change and the session's URIs,
   * reopened when they change, until the client goes away or the server ends it.
   */
  async open(stream: McpStream): Promise<StreamResult> {
    const subscriptions = this.#subscriptions(stream.headers);
    let opened = false;
    for (;;) {
      const restart = new AbortController();
      const changed = () => restart.abort();
      subscriptions.changed = changed;
      const linked = linkSignals([stream.signal, restart.signal]);
      const filter: ListenFilter = { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true };
      if (subscriptions.uris.size > 0) filter.resourceSubscriptions = [...subscriptions.uris];
      const listen = {
        jsonrpc: "2.0",
        id: `airlock-listen-${++this.#next}`,
        method: "subscriptions/listen",
        params: { notifications: filter },
      };
      const result = await this.#send({
        message: listen,
        headers: listenHeaders(stream.headers),
        signal: linked.signal,
        notify: (note) => {
          if (note.method === ACKNOWLEDGED) {
            if (!opened) stream.opened({ "Content-Type": ["text/event-stream"] });
            opened = true;
            return;
          }
          if (opened) stream.notify(unstamped(note));
        },
      }).catch(
        (error: unknown): ExchangeResult => ({
          kind: "failure",
          failure: { source: "client_internal" },
          detail: String(error),
        }),
      );
      linked.dispose();
      if (restart.signal.aborted && !stream.signal.aborted) continue;
      // A reconnected stream of the same session may have taken the hook over since.
      if (subscriptions.changed === changed) delete subscriptions.changed;
      if (opened || stream.signal.aborted) return { kind: "ended" };
      // The server refused the listen before acknowledging it: the client gets no stream.
      if (result.kind === "response") return { kind: "refused", status: 405, headers: {}, message: result.message };
      if (result.kind === "failure")
        return { kind: "failure", failure: result.failure, ...(result.detail ? { detail: result.detail } : {}) };
      return { kind: "refused", status: 405, headers: {} };
    }
  }

  #subscriptions(headers: HeaderMap): ClientSubscriptions {
    const key = headerValue(headers, "mcp-session-id") ?? "";
    const found = this.#sessions.get(key) ?? { uris: new Set<string>() };
    this.#sessions.delete(key);
    this.#sessions.set(key, found);
    for (const oldest of this.#sessions.keys()) {
      if (this.#sessions.size <= MAX_SUBSCRIBED_SESSIONS) break;
      this.#sessions.delete(oldest);
    }
    return found;
  }
}

/**
 * The GET's headers for the listen's POST: a POST must accept JSON and SSE (a GET accepted only
 * SSE), and `Last-Event-ID` resumes a GET stream, not a new listen.
 */
function listenHeaders(headers: HeaderMap): HeaderMap {
  const kept = Object.entries(headers).filter(([name]) => !["accept", "last-event-id"].includes(name.toLowerCase()));
  return { ...Object.fromEntries(kept), Accept: ["application/json, text/event-stream"] };
}

function answer(id: JsonRpcId, result: unknown, error?: Record<string, unknown>): ExchangeResult {
  return {
    kind: "response",
    status: 200,
    headers: { "Content-Type": ["application/json"] },
    message: error ? { jsonrpc: "2.0", id, error } : { jsonrpc: "2.0", id, result },
  };
}
