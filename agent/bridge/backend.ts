/**
 * The era bridge: a backend decorator that lets modern (2026-07-28) clients use a legacy
 * server, and legacy clients a modern-only one (legacy-clients.ts: once the server refuses
 * a legacy request with −32022). Otherwise legacy messages pass untouched. The first modern
 * request makes it probe the server's era (probe.ts), once per backend process; a modern
 * server then gets modern requests as they are, with the header mirrors set from the body.
 * For a legacy server the bridge:
 * - answers `server/discover` from the server's `initialize` result;
 * - sends every other request on a legacy session opened for the request's declared
 *   version, capabilities and client info (sessions.ts), without the modern envelope;
 * - gives each result what a modern client requires (translate.ts);
 * - maps a request's `_meta` log level onto the session's `logging/setLevel`;
 * - serves `subscriptions/listen` from the session's GET stream and `resources/subscribe` (listen.ts);
 * - turns the server's questions during a call (elicitation, sampling, roots) into
 *   `input_required` rounds (mrtr.ts); answers a `ping` itself;
 * - passes a modern client's cancellation (its stream closed) on as `notifications/cancelled`.
 */
import { isNotification, isObject, isRequest, type JsonRpcId, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { claimedVersion, isModernMessage, LOG_LEVEL_META_KEY, metaOf, MODERN_VERSIONS } from "../../shared/mcp/era.ts";
import type { Logger } from "../../shared/log.ts";
import { decorate } from "../backends/decorate.ts";
import type { Backend, BackendHealth, ExchangeResult, McpExchange } from "../backends/types.ts";
import { probeEra, type Era } from "./probe.ts";
import { LegacyClients, refusesLegacy } from "./legacy-clients.ts";
import { LegacySessions, type LegacySession } from "./sessions.ts";
import { LegacyStreams } from "./legacy-streams.ts";
import { LegacyListens, offerToListens } from "./listen.ts";
import {
  cancelForwarded,
  isInputRequired,
  PausedCalls,
  requestStateOf,
  restoreId,
  ROUND_TRIP_METHODS,
  type MrtrSettings,
} from "./mrtr.ts";
import {
  discoverResult,
  legacyHeaders,
  modernAnswer,
  modernRequestHeaders,
  modernResponseHeaders,
  withoutEnvelope,
} from "./translate.ts";

/** Health as the bridge adds to it (`era`, `bridgedSessions`), once a request made it look. */
export type EraHealth = BackendHealth;

export interface EraBridgeOptions {
  log: Logger;
  /** How long a silent server may take to answer the era probe (tests shorten it). */
  probeTimeoutMs?: number;
  /** Multi round-trip bounds (how long a paused call waits for its client's retry, how many). */
  mrtr?: Omit<MrtrSettings, "log">;
}

const JSON_HEADERS = { "Content-Type": ["application/json"] };
const ACK: ExchangeResult = { kind: "ack", status: 202, headers: {} };

/** `inner` with modern requests bridged to it when it turns out to be a legacy server. */
export function bridgeEras(inner: Backend, options: EraBridgeOptions): Backend {
  const calls = new PausedCalls(inner, { log: options.log, claims: offerToListens, ...options.mrtr });
  const sessions = new LegacySessions(inner);
  const legacyClients = new LegacyClients(inner);
  const listens = new LegacyListens(inner, options.log);
  const legacyStreams = new LegacyStreams((ex) => legacyClients.exchange(ex));
  let era: { generation: number; found: Promise<Era> } | undefined;
  let known: Era | undefined;

  const eraOf = (): Promise<Era> => {
    const generation = inner.health().restarts;
    if (!era || era.generation !== generation) {
      const found = probeEra(inner, options.probeTimeoutMs).then((value) => {
        known = value;
        options.log.info("MCP server era detected", { backend: inner.name, era: value });
        return value;
      });
      era = { generation, found };
    }
    return era.found;
  };

  const exchange = async (ex: McpExchange): Promise<ExchangeResult> => {
    if (isModernMessage(ex.message)) {
      // The OpenAI path may carry the body without its mirrors; a modern server requires them.
      if ((await eraOf()) === "modern")
        return inner.exchange({ ...ex, headers: modernRequestHeaders(ex.message, ex.headers) });
      if (listens.cancel(ex.message)) return ACK;
      const answer = isListen(ex.message)
        ? await listenOnLegacy(sessions, listens, ex, ex.message)
        : await bridgeToLegacy(inner, sessions, calls, ex, options.log);
      if (!refusesLegacy(answer)) return answer;
      // The legacy session's initialize was refused for its era: the probe was wrong (a modern
      // stdio server too slow to start within the probe's wait). Correct it and pass through.
      options.log.info("MCP server refused the bridge's legacy session; it is modern after all", {
        backend: inner.name,
      });
      known = "modern";
      era = { generation: inner.health().restarts, found: Promise.resolve("modern") };
      return inner.exchange({ ...ex, headers: modernRequestHeaders(ex.message, ex.headers) });
    }
    if (legacyClients.active) return legacyStreams.exchange(ex) ?? legacyClients.exchange(ex);
    const answer = await inner.exchange(ex);
    // Usually the initialize; any request when the client's session began on another agent.
    if (!(isRequest(ex.message) && refusesLegacy(answer))) return answer;
    options.log.info(
      "MCP server refused a 2025-era client; the era bridge serves legacy clients from its server/discover",
      { backend: inner.name },
    );
    known = "modern";
    legacyClients.activate();
    return legacyClients.exchange(ex);
  };

  return decorate(inner, {
    exchange,
    // A legacy client's GET stream to a modern-only server is a subscriptions/listen (legacy-streams.ts).
    openStream: (stream) => (legacyClients.active ? legacyStreams.open(stream) : inner.openStream!(stream)),
    terminateSession: async (headers, signal) =>
      legacyClients.terminate(headers) ?? inner.terminateSession(headers, signal),
    health: (): EraHealth => {
      const health: EraHealth = inner.health();
      return known === undefined ? health : { ...health, era: known, bridgedSessions: sessions.size };
    },
  });
}

function isListen(message: JsonRpcMessage): message is JsonRpcMessage & { id: JsonRpcId } {
  return isRequest(message) && message.method === "subscriptions/listen";
}

/** A modern client's listen, served on its declaration's legacy session (listen.ts). */
async function listenOnLegacy(
  sessions: LegacySessions,
  listens: LegacyListens,
  ex: McpExchange,
  message: JsonRpcMessage & { id: JsonRpcId },
): Promise<ExchangeResult> {
  const session = await sessions.session(message);
  return "kind" in session ? session : listens.listen(ex, message, session);
}

async function bridgeToLegacy(
  inner: Backend,
  sessions: LegacySessions,
  calls: PausedCalls,
  ex: McpExchange,
  log: Logger,
): Promise<ExchangeResult> {
  const message = ex.message;
  const session = await sessions.session(message);
  if ("kind" in session) return session;
  if (isRequest(message) && message.method === "server/discover") {
    const result = discoverResult(
      session.initialize,
      MODERN_VERSIONS.filter((v) => v === claimedVersion(message)),
    );
    return {
      kind: "response",
      status: 200,
      headers: JSON_HEADERS,
      message: { jsonrpc: "2.0", id: message.id, result },
    };
  }
  if (!isRequest(message)) {
    if (!isNotification(message)) return ACK;
    return inner.exchange({
      ...ex,
      message: withoutEnvelope(message),
      headers: legacyHeaders(ex.headers, session.headers),
    });
  }
  await applyLogLevel(inner, ex, session);
  // A call that may take rounds (mrtr.ts) — the retry of a paused one, or a new one — or a plain request.
  const token = requestStateOf(message);
  const send = (on: LegacySession) =>
    token !== undefined
      ? calls.resume(ex, token, on.initialize.serverInfo)
      : ROUND_TRIP_METHODS.has(message.method)
        ? calls.start(ex, on)
        : forward(inner, ex, on, log);
  let answer = await send(session);
  if (answer.kind === "response" && answer.status === 404) {
    // The server forgot the session (restart, expiry): open a new one and try once more.
    sessions.forget(message);
    const fresh = await sessions.session(message);
    if ("kind" in fresh) return fresh;
    answer = await send(fresh);
  }
  if (answer.kind !== "response") return answer;
  return {
    ...answer,
    headers: modernResponseHeaders(answer.headers),
    message: isInputRequired(answer.message)
      ? answer.message
      : modernAnswer(message.method, answer.message, session.initialize.serverInfo),
  };
}

/**
 * A modern request may ask for log messages at a level (`_meta` log level); a legacy server
 * has one level per session, set with `logging/setLevel`. Set it when it changes.
 */
async function applyLogLevel(inner: Backend, ex: McpExchange, session: LegacySession): Promise<void> {
  const level = metaOf(ex.message)?.[LOG_LEVEL_META_KEY];
  const logging = session.initialize.capabilities;
  if (typeof level !== "string" || level === session.logLevel || !(isObject(logging) && isObject(logging.logging)))
    return;
  session.logLevel = level;
  const setLevel = {
    jsonrpc: "2.0",
    id: `airlock-bridge-level-${level}`,
    method: "logging/setLevel",
    params: { level },
  };
  await inner.exchange({
    message: setLevel,
    headers: legacyHeaders(ex.headers, session.headers),
    signal: ex.signal,
    notify: () => {},
  });
}

let forwardedIds = 0;

/**
 * A modern request that cannot take rounds, on its legacy session, under an id of the
 * bridge's (modern clients sharing a session may use the same ids). The client closing its
 * stream reaches the server as `notifications/cancelled`, as a legacy server expects it.
 */
async function forward(inner: Backend, ex: McpExchange, session: LegacySession, log: Logger): Promise<ExchangeResult> {
  const headers = legacyHeaders(ex.headers, session.headers);
  const forwardedId = `airlock-bridge-${++forwardedIds}`;
  const cancel = () => cancelForwarded(inner, forwardedId, headers, "the client cancelled the request");
  ex.signal.addEventListener("abort", cancel, { once: true });
  const notify = (server: JsonRpcMessage, notifyHeaders: McpExchange["headers"]) => {
    if (!isRequest(server)) return offerToListens(session, server) ? undefined : ex.notify(server, notifyHeaders);
    // The server asks its client something; only a legacy client could answer on this stream.
    const reply =
      server.method === "ping"
        ? { jsonrpc: "2.0", id: server.id, result: {} }
        : {
            jsonrpc: "2.0",
            id: server.id,
            error: {
              code: -32601,
              message: `A 2026-07-28 client cannot be asked ${server.method} during ${String(ex.message.method)}, only during tools/call, prompts/get or resources/read.`,
            },
          };
    if (server.method !== "ping")
      log.warn(
        "legacy MCP server asked a modern client something outside a tool call, prompt or read; answered with an error",
        {
          backend: inner.name,
          method: server.method,
        },
      );
    void inner.exchange({ message: reply, headers, signal: ex.signal, notify: () => {} }).catch(() => {});
  };
  try {
    const message = { ...withoutEnvelope(ex.message), id: forwardedId };
    return restoreId(await inner.exchange({ ...ex, message, headers, notify }), ex.message.id as JsonRpcId);
  } finally {
    ex.signal.removeEventListener("abort", cancel);
  }
}
