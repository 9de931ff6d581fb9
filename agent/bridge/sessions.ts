/**
 * Legacy sessions the bridge holds with one legacy server on behalf of modern clients.
 *
 * A modern request carries no session, only what its client declares (protocol version,
 * capabilities, client info). A legacy server needs an `initialize` first and may keep
 * per-session state, so the bridge opens one session per distinct declaration and reuses
 * it for every request that declares the same: stateless requests, served by a stateful
 * server. Sessions belong to one backend process: when a stdio child restarts (its
 * `restarts` count moves), they are opened again. Bounded: the least recently used goes.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import { isObject, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LEGACY_VERSIONS,
  metaOf,
  PROTOCOL_VERSION_META_KEY,
} from "../../shared/mcp/era.ts";
import { VERSION } from "../version.ts";
import type { Backend, ExchangeResult } from "../backends/types.ts";
import { legacyClientCapabilities } from "./translate.ts";

/** One open legacy session. */
export interface LegacySession {
  /** What every request on it carries (`Mcp-Session-Id` on HTTP, the negotiated version). */
  headers: HeaderMap;
  /** The server's `initialize` result: `server/discover` and `serverInfo` come from it. */
  initialize: Record<string, unknown>;
  /** The level last set with `logging/setLevel` on this session, from a request's `_meta` log level. */
  logLevel?: string;
}

/** How many declarations keep a session at once; more distinct clients than this reopen sessions. */
export const MAX_BRIDGE_SESSIONS = 64;
/**
 * How long opening a session may take. Not the first request's deadline: others may wait
 * on the same opening, and one client going away must not fail them.
 */
const OPEN_TIMEOUT_MS = 30_000;

const noop = () => {};

/** The declaration a modern request's `_meta` makes: it keys the session. */
export function declarationOf(message: JsonRpcMessage): { key: string; capabilities: unknown; clientInfo: unknown } {
  const meta = metaOf(message) ?? {};
  const capabilities = meta[CLIENT_CAPABILITIES_META_KEY];
  const clientInfo = meta[CLIENT_INFO_META_KEY];
  return {
    key: JSON.stringify([meta[PROTOCOL_VERSION_META_KEY], capabilities ?? null, clientInfo ?? null]),
    capabilities,
    clientInfo,
  };
}

export class LegacySessions {
  readonly #inner: Backend;
  #generation = -1;
  #next = 0;
  readonly #open = new Map<string, Promise<LegacySession | ExchangeResult>>();

  constructor(inner: Backend) {
    this.#inner = inner;
  }

  /** The session for `message`'s declaration, opened now if there is none; the failure when it cannot be opened. */
  session(message: JsonRpcMessage): Promise<LegacySession | ExchangeResult> {
    this.#checkGeneration();
    const declaration = declarationOf(message);
    const existing = this.#open.get(declaration.key);
    if (existing) {
      this.#open.delete(declaration.key);
      this.#open.set(declaration.key, existing);
      return existing;
    }
    const opening = this.#initialize(declaration, AbortSignal.timeout(OPEN_TIMEOUT_MS));
    this.#open.set(declaration.key, opening);
    // A session that could not be opened is not kept: the next request tries again.
    void opening.then((outcome) => {
      if ("kind" in outcome) this.forget(message);
    });
    this.#evict();
    return opening;
  }

  /** The server no longer knows this session (HTTP 404): the next request opens a new one. */
  forget(message: JsonRpcMessage): void {
    this.#open.delete(declarationOf(message).key);
  }

  /** Sessions open now (for health). */
  get size(): number {
    return this.#open.size;
  }

  /** A restarted child knows none of the sessions. */
  #checkGeneration(): void {
    const generation = this.#inner.health().restarts;
    if (generation === this.#generation) return;
    this.#generation = generation;
    this.#open.clear();
  }

  #evict(): void {
    for (const [key, oldest] of this.#open) {
      if (this.#open.size <= MAX_BRIDGE_SESSIONS) return;
      this.#open.delete(key);
      void oldest.then((outcome) => {
        if (!("kind" in outcome) && headerValue(outcome.headers, "mcp-session-id") !== undefined) {
          void this.#inner.terminateSession(outcome.headers, AbortSignal.timeout(10_000)).catch(noop);
        }
      });
    }
  }

  async #initialize(
    declaration: ReturnType<typeof declarationOf>,
    signal: AbortSignal,
  ): Promise<LegacySession | ExchangeResult> {
    const clientInfo = isObject(declaration.clientInfo)
      ? declaration.clientInfo
      : { name: "airlock-bridge", version: VERSION };
    const request = {
      jsonrpc: "2.0",
      id: `airlock-bridge-init-${++this.#next}`,
      method: "initialize",
      params: {
        protocolVersion: LEGACY_VERSIONS[0],
        capabilities: legacyClientCapabilities(declaration.capabilities),
        clientInfo,
      },
    };
    const answer = await this.#inner.exchange({ message: request, headers: {}, signal, notify: noop });
    if (answer.kind !== "response" || !isObject(answer.message.result)) return answer;
    const initialize = answer.message.result;
    const headers: HeaderMap = {};
    const sessionId = headerValue(answer.headers, "mcp-session-id");
    if (sessionId !== undefined) headers["Mcp-Session-Id"] = [sessionId];
    if (typeof initialize.protocolVersion === "string") headers["Mcp-Protocol-Version"] = [initialize.protocolVersion];
    await this.#inner.exchange({
      message: { jsonrpc: "2.0", method: "notifications/initialized" },
      headers,
      signal,
      notify: noop,
    });
    return { headers, initialize };
  }
}
