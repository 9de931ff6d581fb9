/**
 * Legacy (2025) clients of a modern-only server: the server refused their `initialize`
 * with −32022, so the bridge plays the legacy server's part of the handshake itself.
 * - `initialize` is answered from the server's `server/discover` (asked once per backend
 *   process), with a session id the bridge mints (`Mcp-Session-Id`) so the client's later
 *   requests name the declaration it made;
 * - every later request goes to the server with the modern envelope (that declaration, or
 *   an empty one for a session this agent does not know) and the mirrored headers;
 * - `ping`, `logging/setLevel` and `notifications/initialized` are answered here: the
 *   modern era has no such messages;
 * - an `input_required` result (the server needs the client's input) becomes server→client
 *   requests on the client's stream, and the call is retried with the answers
 *   (legacy-rounds.ts);
 * - the client's `notifications/cancelled` ends its call the modern way: the request to the
 *   server is aborted (over HTTP, its stream closed; a stdio backend tells the child).
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import { isObject, isRequest, type JsonRpcId, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { LEGACY_VERSIONS, SERVER_INFO_META_KEY, UNSUPPORTED_PROTOCOL_VERSION } from "../../shared/mcp/era.ts";
import { BRIDGED_SESSION_PREFIX } from "../../shared/mcp/round-trips.ts";
import type { Backend, ExchangeResult, McpExchange, TerminationResult } from "../backends/types.ts";
import { linkSignals } from "../runtime/signals.ts";
import { modernRequestHeaders, withEnvelope, type Declaration } from "./translate.ts";
import { ClientQuestions, completeRounds } from "./legacy-rounds.ts";
import { VERSION } from "../version.ts";

/** How many legacy sessions the bridge remembers declarations for; an unknown one gets an empty declaration. */
const MAX_DECLARATIONS = 1024;
const DISCOVER_TIMEOUT_MS = 30_000;
const JSON_HEADERS = { "Content-Type": ["application/json"] };
const ACK: ExchangeResult = { kind: "ack", status: 202, headers: {} };
const noop = () => {};

/** The server's `server/discover` result, or why there is none. */
type Discovered = { result: Record<string, unknown> } | { failed: ExchangeResult };

/** True when `answer` is a server refusing a legacy client for its era (−32022). */
export function refusesLegacy(answer: ExchangeResult): boolean {
  if (answer.kind !== "response") return false;
  const error = answer.message.error;
  return isObject(error) && error.code === UNSUPPORTED_PROTOCOL_VERSION;
}

function result(id: unknown, value: Record<string, unknown>, headers: HeaderMap = JSON_HEADERS): ExchangeResult {
  return { kind: "response", status: 200, headers, message: { jsonrpc: "2.0", id, result: value } };
}

/** A legacy client's request, by session and id, as its `notifications/cancelled` names it. */
function callKey(headers: HeaderMap, id: unknown): string {
  return `${headerValue(headers, "mcp-session-id") ?? ""} ${JSON.stringify(id)}`;
}

export class LegacyClients {
  readonly #inner: Backend;
  #generation = -1;
  #discover: Promise<Discovered> | undefined;
  readonly #declarations = new Map<string, Declaration>();
  readonly #questions: ClientQuestions;
  /** Calls in flight, so the client's `notifications/cancelled` can end them. */
  readonly #calls = new Map<string, AbortController>();

  constructor(inner: Backend, settings: { waitMs?: number } = {}) {
    this.#inner = inner;
    this.#questions = new ClientQuestions(settings.waitMs);
  }

  /** True once this backend process refused a legacy client (a restarted child is given the chance again). */
  get active(): boolean {
    return this.#discover !== undefined && this.#generation === this.#inner.health().restarts;
  }

  /** The server refused a legacy client: from now on the bridge serves legacy clients. */
  activate(): void {
    this.#generation = this.#inner.health().restarts;
    this.#discover = undefined;
    this.#discover = this.#askDiscover();
  }

  exchange(ex: McpExchange): Promise<ExchangeResult> {
    const message = ex.message;
    if (isRequest(message)) {
      if (message.method === "initialize") return this.#initialize(message);
      if (message.method === "ping" || message.method === "logging/setLevel")
        return Promise.resolve(result(message.id, {}));
    } else if (!("method" in message)) {
      // The client's answer to one of the bridge's questions; a modern server asked nothing else.
      this.#questions.answer(message);
      return Promise.resolve(ACK);
    } else if (message.method === "notifications/initialized") {
      return Promise.resolve(ACK);
    } else if (message.method === "notifications/cancelled") {
      const params = isObject(message.params) ? message.params : {};
      this.#calls.get(callKey(ex.headers, params.requestId))?.abort();
      return Promise.resolve(ACK);
    }
    const declaration = this.#declarations.get(headerValue(ex.headers, "mcp-session-id") ?? "") ?? {
      capabilities: {},
      clientInfo: { name: "airlock-bridge", version: VERSION },
    };
    if (!isRequest(message)) return this.#send(ex, message, declaration, ex.signal);
    return this.#call(ex, message, declaration);
  }

  /** One call of the client's, with as many rounds as the server asks for, until it ends or is cancelled. */
  async #call(
    ex: McpExchange,
    message: JsonRpcMessage & { id: JsonRpcId },
    declaration: Declaration,
  ): Promise<ExchangeResult> {
    const key = callKey(ex.headers, message.id);
    const cancelled = new AbortController();
    this.#calls.set(key, cancelled);
    const linked = linkSignals([ex.signal, cancelled.signal]);
    try {
      const send = (request: JsonRpcMessage) => this.#send(ex, request, declaration, linked.signal);
      const first = await send(message);
      const answer = await completeRounds(message, first, message.id, ex, this.#questions, send, linked.signal);
      return cancelled.signal.aborted ? { kind: "cancelled" } : answer;
    } finally {
      linked.dispose();
      if (this.#calls.get(key) === cancelled) this.#calls.delete(key);
    }
  }

  #send(ex: McpExchange, message: JsonRpcMessage, declaration: Declaration, signal: AbortSignal) {
    const modern = withEnvelope(message, declaration);
    return this.#inner.exchange({ ...ex, message: modern, headers: modernRequestHeaders(modern, ex.headers), signal });
  }

  /** A bridged session ends here: the modern server never had one. */
  terminate(headers: HeaderMap): TerminationResult | undefined {
    const id = headerValue(headers, "mcp-session-id");
    if (id === undefined || !this.#declarations.delete(id)) return undefined;
    return { kind: "terminated", status: 204, headers: {} };
  }

  async #initialize(message: JsonRpcMessage & { id: unknown }): Promise<ExchangeResult> {
    const discovered = await (this.#discover ?? this.#askDiscover());
    if ("failed" in discovered) return discovered.failed;
    const discover = discovered.result;
    const params = isObject(message.params) ? message.params : {};
    const requested = typeof params.protocolVersion === "string" ? params.protocolVersion : "";
    const sessionId = `${BRIDGED_SESSION_PREFIX}${crypto.randomUUID()}`;
    this.#declarations.set(sessionId, {
      capabilities: isObject(params.capabilities) ? params.capabilities : {},
      clientInfo: isObject(params.clientInfo) ? params.clientInfo : { name: "unknown", version: "0" },
    });
    for (const oldest of this.#declarations.keys()) {
      if (this.#declarations.size <= MAX_DECLARATIONS) break;
      this.#declarations.delete(oldest);
    }
    const meta = isObject(discover._meta) ? discover._meta : {};
    const initialize: Record<string, unknown> = {
      protocolVersion: (LEGACY_VERSIONS as readonly string[]).includes(requested) ? requested : LEGACY_VERSIONS[0],
      capabilities: isObject(discover.capabilities) ? discover.capabilities : {},
      serverInfo: isObject(meta[SERVER_INFO_META_KEY])
        ? meta[SERVER_INFO_META_KEY]
        : { name: this.#inner.name, version: "unknown" },
    };
    if (typeof discover.instructions === "string") initialize.instructions = discover.instructions;
    return result(message.id, initialize, { ...JSON_HEADERS, "Mcp-Session-Id": [sessionId] });
  }

  async #askDiscover(): Promise<Discovered> {
    const message = withEnvelope(
      { jsonrpc: "2.0", id: "airlock-bridge-discover", method: "server/discover" },
      { capabilities: {}, clientInfo: { name: "airlock-bridge", version: VERSION } },
    );
    const answer = await this.#inner.exchange({
      message,
      headers: modernRequestHeaders(message, {}),
      signal: AbortSignal.timeout(DISCOVER_TIMEOUT_MS),
      notify: noop,
    });
    if (answer.kind === "response" && isObject(answer.message.result)) return { result: answer.message.result };
    // Not kept: the next legacy client asks again.
    this.#discover = undefined;
    return { failed: answer };
  }
}
