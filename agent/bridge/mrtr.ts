/**
 * Multi round-trip requests (2026-07-28) for a modern client of a legacy server.
 *
 * A legacy server asks its client something (elicitation, sampling, roots) with a request on
 * the call's stream and waits for the answer. A modern client cannot answer such a request:
 * it expects an `input_required` result, and retries the call with `inputResponses`. So the
 * bridge keeps the legacy call running (a *paused call*), answers the client's request with
 * the server's questions as `inputRequests` and a `requestState` naming the paused call, and
 * when the retry comes, hands each answer to the waiting server request and goes on waiting
 * for the next question or the final result, as many rounds as the server asks.
 *
 * Bounded: a paused call the client does not retry within `waitMs` ends (its waiting server
 * requests get an error, the server a `notifications/cancelled`), and at most `maxCalls` are
 * paused at once (the oldest ends first). The `requestState` is a random token bound to the
 * call's method, target, arguments, client declaration and (when the hub vouches for one) user;
 * it lives only in this agent.
 */
import { isObject, isRequest, type JsonRpcId, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { CLIENT_CAPABILITIES_META_KEY, metaOf, nameHeaderValue, SERVER_INFO_META_KEY } from "../../shared/mcp/era.ts";
import { PAUSED_CALL_STATE_PREFIX, ROUND_TRIP_WAIT_MS } from "../../shared/mcp/round-trips.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { headerValue, IDENTITY_HEADER } from "../../shared/protocol/headers.ts";
import type { Logger } from "../../shared/log.ts";
import type { Backend, ExchangeResult, McpExchange } from "../backends/types.ts";
import { declarationOf, type LegacySession } from "./sessions.ts";
import { legacyHeaders, withoutEnvelope } from "./translate.ts";

/** The requests whose results may be `input_required` (the spec allows no others). */
export const ROUND_TRIP_METHODS: ReadonlySet<string> = new Set(["tools/call", "prompts/get", "resources/read"]);
/** What a server may ask its client for, and the client capability each needs. */
export const INPUT_CAPABILITY: Readonly<Record<string, string>> = {
  "elicitation/create": "elicitation",
  "sampling/createMessage": "sampling",
  "roots/list": "roots",
};
/** How long a paused call waits for the client's retry (the hub keeps its routing as long). */
export const MRTR_WAIT_MS = ROUND_TRIP_WAIT_MS;
/** Paused calls kept at once per backend. */
export const MAX_PAUSED_CALLS = 256;
/** Questions one call may have outstanding; a server asking more gets errors. */
const MAX_QUESTIONS = 32;
const REPLY_TIMEOUT_MS = 30_000;
const noop = () => {};

/** True for a result asking the client for input. */
export function isInputRequired(message: JsonRpcMessage): boolean {
  return isObject(message.result) && message.result.resultType === "input_required";
}

/** True when `capabilities` (a client's declaration) covers what `method` asks for. */
export function declares(capabilities: unknown, method: string): boolean {
  const capability = INPUT_CAPABILITY[method];
  return capability !== undefined && isObject(capabilities) && capabilities[capability] !== undefined;
}

export interface MrtrSettings {
  log: Logger;
  /** How long a paused call waits for the client's retry; default {@link MRTR_WAIT_MS}. */
  waitMs?: number;
  /** Paused calls kept at once; default {@link MAX_PAUSED_CALLS}. */
  maxCalls?: number;
  /**
   * Takes a server notification arriving during a call on `session` away from the call (true
   * when taken): the change notifications a stdio server sends on whatever is in flight belong
   * to the session's listens, not to the call.
   */
  claims?: (session: LegacySession, message: JsonRpcMessage) => boolean;
}

/** A server request waiting for the client's answer, under the key the client sees. */
interface Question {
  key: string;
  id: JsonRpcId;
  method: string;
  params: unknown;
}

/** One legacy call kept running across the modern client's rounds. */
class PausedCall {
  readonly token = `${PAUSED_CALL_STATE_PREFIX}${crypto.randomUUID()}`;
  readonly controller = new AbortController();
  /** Server requests not yet handed to the client. */
  readonly queued: Question[] = [];
  /** Handed to the client, not yet answered, by key. */
  readonly asked = new Map<string, Question>();
  /** The client request carrying the call now; undefined between rounds. */
  round: McpExchange | undefined;
  settled: ExchangeResult | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  #keys = 0;
  #wake: (() => void) | undefined;

  /** What a retry must match (method, target, arguments, declaration). */
  readonly binding: string;
  /** The id the server knows the call by. */
  readonly forwardedId: string;
  /** The legacy session it runs on, and that session's headers. */
  readonly session: LegacySession;
  readonly headers: HeaderMap;
  /** What the client declared it can answer. */
  readonly capabilities: unknown;
  /** The first round's progress token: the server reports progress under it throughout. */
  readonly progressToken: unknown;

  constructor(ex: McpExchange, forwardedId: string, session: LegacySession) {
    const meta = metaOf(ex.message) ?? {};
    this.binding = bindingOf(ex);
    this.forwardedId = forwardedId;
    this.session = session;
    this.headers = legacyHeaders(ex.headers, session.headers);
    this.capabilities = meta[CLIENT_CAPABILITIES_META_KEY];
    this.progressToken = meta.progressToken;
  }

  enqueue(server: JsonRpcMessage & { id: JsonRpcId; method: string }): void {
    this.queued.push({ key: `input-${++this.#keys}`, id: server.id, method: server.method, params: server.params });
    this.wake();
  }

  settle(result: ExchangeResult): void {
    this.settled = result;
    this.wake();
  }

  wake(): void {
    this.#wake?.();
  }

  /** Resolves when the call has news (a question, one still unanswered, its result) or `signal` aborts. */
  news(signal: AbortSignal): Promise<void> {
    if (this.queued.length > 0 || this.asked.size > 0 || this.settled || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#wake = undefined;
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

/** A request's identity for its `requestState`: a retry must be the same request, from the same user. */
function bindingOf(ex: McpExchange): string {
  const message = ex.message;
  const params = isObject(message.params) ? message.params : {};
  const target = nameHeaderValue(message) ?? null;
  return JSON.stringify([
    message.method,
    target,
    params.arguments ?? null,
    declarationOf(message).key,
    principalOf(ex),
  ]);
}

/**
 * Who made the call, when the hub vouches for it: the issuer and subject of its signed
 * `X-Airlock-Identity` (checked by the hub; re-minted per request, so only the claims compare).
 */
function principalOf(ex: McpExchange): string | null {
  const payload = headerValue(ex.headers, IDENTITY_HEADER)?.split(".")[1];
  if (!payload) return null;
  try {
    const claims: unknown = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
    return isObject(claims) && typeof claims.sub === "string" ? `${String(claims.iss)} ${claims.sub}` : null;
  } catch {
    return null;
  }
}

/** The `requestState` of a retry, when it carries one. */
export function requestStateOf(message: JsonRpcMessage): string | undefined {
  const params = message.params;
  return isObject(params) && typeof params.requestState === "string" ? params.requestState : undefined;
}

/** A JSON-RPC error as the answer to the client's request. */
export function errorAnswer(id: unknown, code: number, message: string): ExchangeResult {
  return {
    kind: "response",
    status: 200,
    headers: { "Content-Type": ["application/json"] },
    message: { jsonrpc: "2.0", id, error: { code, message } },
  };
}

/**
 * The paused calls of one legacy backend. `start` forwards a modern client's call and runs
 * its first round; `resume` runs the next round of the call a retry's `requestState` names.
 * Each returns the backend's own final answer (id restored, not yet translated) or an
 * `input_required` result ready for the modern client.
 */
export class PausedCalls {
  readonly #inner: Backend;
  readonly #log: Logger;
  readonly #waitMs: number;
  readonly #max: number;
  readonly #claims: MrtrSettings["claims"];
  readonly #calls = new Map<string, PausedCall>();
  #next = 0;

  constructor(inner: Backend, settings: MrtrSettings) {
    this.#inner = inner;
    this.#log = settings.log;
    this.#waitMs = settings.waitMs ?? MRTR_WAIT_MS;
    this.#max = settings.maxCalls ?? MAX_PAUSED_CALLS;
    this.#claims = settings.claims;
  }

  /** Calls paused now (for health and tests). */
  get size(): number {
    return this.#calls.size;
  }

  /** Forward `ex` (a modern tools/call, prompts/get or resources/read) on `session` and run its first round. */
  start(ex: McpExchange, session: LegacySession): Promise<ExchangeResult> {
    const message = ex.message as JsonRpcMessage & { id: JsonRpcId };
    const call = new PausedCall(ex, `airlock-bridge-call-${++this.#next}`, session);
    const forwarded = { ...withoutEnvelope(message), id: call.forwardedId };
    const notify = (server: JsonRpcMessage, headers: HeaderMap) => this.#fromServer(call, server, headers);
    void this.#inner
      .exchange({ message: forwarded, headers: call.headers, signal: call.controller.signal, notify })
      .then(
        (result) => this.#settle(call, result),
        (error: unknown) =>
          this.#settle(call, { kind: "failure", failure: { source: "client_internal" }, detail: String(error) }),
      );
    return this.#round(call, ex, session.initialize.serverInfo);
  }

  /** The retry of a paused call: its answers go to the waiting server requests, then the next round. */
  resume(ex: McpExchange, token: string, serverInfo: unknown): Promise<ExchangeResult> {
    const message = ex.message as JsonRpcMessage & { id: JsonRpcId };
    const call = this.#calls.get(token);
    if (!call)
      return Promise.resolve(
        errorAnswer(
          message.id,
          -32602,
          "Airlock's era bridge holds no call for this requestState: it ended (no retry in time, or already " +
            "answered), or another agent holds it. Call again without requestState.",
        ),
      );
    if (call.binding !== bindingOf(ex))
      return Promise.resolve(
        errorAnswer(
          message.id,
          -32602,
          "This requestState belongs to another request (method, name, arguments, client declaration or user differ).",
        ),
      );
    clearTimeout(call.timer);
    this.#deliver(call, isObject(message.params) ? message.params.inputResponses : undefined);
    return this.#round(call, ex, serverInfo);
  }

  /** Wait for the call's next question or its result, as the answer to `ex`. */
  async #round(call: PausedCall, ex: McpExchange, serverInfo: unknown): Promise<ExchangeResult> {
    const id = (ex.message as { id: JsonRpcId }).id;
    call.round = ex;
    // Taken out while a round runs: a second retry with the same state finds nothing.
    this.#calls.delete(call.token);
    try {
      await call.news(ex.signal);
    } finally {
      call.round = undefined;
    }
    if (call.settled) return restoreId(call.settled, id);
    if (ex.signal.aborted) {
      // The client closed its stream: the modern era's cancellation, the legacy era's notification.
      this.#end(call, "the client cancelled the request");
      return { kind: "cancelled" };
    }
    const inputRequests: Record<string, unknown> = {};
    for (const question of call.queued.splice(0)) {
      call.asked.set(question.key, question);
      inputRequests[question.key] = { method: question.method, params: question.params };
    }
    for (const question of call.asked.values())
      inputRequests[question.key] ??= { method: question.method, params: question.params };
    this.#pause(call);
    const result: Record<string, unknown> = { resultType: "input_required", inputRequests, requestState: call.token };
    if (serverInfo !== undefined) result._meta = { [SERVER_INFO_META_KEY]: serverInfo };
    return {
      kind: "response",
      status: 200,
      headers: { "Content-Type": ["application/json"] },
      message: { jsonrpc: "2.0", id, result },
    };
  }

  /**
   * The server answered the call. A question still waiting (asked outside it, say, as a
   * server syncing roots after `initialize` while the call ran) will reach no client now.
   */
  #settle(call: PausedCall, result: ExchangeResult): void {
    call.settle(result);
    this.#refuseWaiting(call, "Airlock: the call it came during has ended; no client will answer.");
  }

  /** Every question of the call still waiting gets an error: nobody will answer it. */
  #refuseWaiting(call: PausedCall, message: string): void {
    for (const question of [...call.queued.splice(0), ...call.asked.values()])
      this.#refuse(call, question.id, message, -32603);
    call.asked.clear();
  }

  /** Keep the call for its retry, within the bounds. */
  #pause(call: PausedCall): void {
    this.#calls.set(call.token, call);
    call.timer = setTimeout(
      () => this.#end(call, `the client did not retry with inputResponses within ${this.#waitMs} ms`),
      this.#waitMs,
    );
    (call.timer as { unref?: () => void }).unref?.();
    for (const [token, oldest] of this.#calls) {
      if (this.#calls.size <= this.#max) break;
      this.#calls.delete(token);
      this.#end(oldest, `more than ${this.#max} calls were waiting for their clients' input`);
    }
  }

  /** The client's answers, each to the server request that asked (a missing one is asked again next round). */
  #deliver(call: PausedCall, responses: unknown): void {
    if (!isObject(responses)) return;
    for (const [key, answer] of Object.entries(responses)) {
      const question = call.asked.get(key);
      if (!question || !isObject(answer)) continue;
      call.asked.delete(key);
      this.#reply(call, { jsonrpc: "2.0", id: question.id, result: answer });
    }
  }

  /** A message from the server during the call: questions are kept for the client, the rest passed on. */
  #fromServer(call: PausedCall, server: JsonRpcMessage, headers: HeaderMap): void {
    if (!isRequest(server)) {
      if (this.#claims?.(call.session, server)) return;
      const round = call.round;
      const passed = round && progressFor(server, call.progressToken, round.message);
      if (passed) round.notify(passed, headers);
    } else if (server.method === "ping") {
      this.#reply(call, { jsonrpc: "2.0", id: server.id, result: {} });
    } else if (!declares(call.capabilities, server.method)) {
      this.#log.warn("legacy MCP server asked a modern client something it did not declare; answered with an error", {
        backend: this.#inner.name,
        method: server.method,
      });
      this.#refuse(call, server.id, `The client did not declare support for ${server.method}.`);
    } else if (call.queued.length + call.asked.size >= MAX_QUESTIONS) {
      this.#refuse(call, server.id, `Airlock: more than ${MAX_QUESTIONS} questions wait for the client already.`);
    } else {
      call.enqueue(server);
    }
  }

  #refuse(call: PausedCall, id: JsonRpcId, message: string, code = -32601): void {
    this.#reply(call, { jsonrpc: "2.0", id, error: { code, message } });
  }

  #reply(call: PausedCall, message: JsonRpcMessage): void {
    void this.#inner
      .exchange({ message, headers: call.headers, signal: AbortSignal.timeout(REPLY_TIMEOUT_MS), notify: noop })
      .catch(noop);
  }

  /** End a paused call: its waiting server requests get an error, the server a `notifications/cancelled`. */
  #end(call: PausedCall, reason: string): void {
    clearTimeout(call.timer);
    this.#calls.delete(call.token);
    if (call.settled) return;
    this.#log.info("ending a bridged call that waited for its client's input", { backend: this.#inner.name, reason });
    this.#refuseWaiting(call, `Airlock: ${reason}`);
    cancelForwarded(this.#inner, call.forwardedId, call.headers, reason);
    call.controller.abort();
  }
}

/**
 * Tell a legacy server that the bridge gave up on one of its requests (`notifications/cancelled`
 * with the id the server knows). The backends end their own exchange for it on the way (the
 * HTTP backend aborts the POST, the stdio backend maps the id), so the call settles as cancelled.
 */
export function cancelForwarded(inner: Backend, forwardedId: JsonRpcId, headers: HeaderMap, reason: string): void {
  const note = { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: forwardedId, reason } };
  void inner
    .exchange({ message: note, headers, signal: AbortSignal.timeout(REPLY_TIMEOUT_MS), notify: noop })
    .catch(noop);
}

/** The backend's answer under the client's id. */
export function restoreId(result: ExchangeResult, id: JsonRpcId): ExchangeResult {
  return result.kind === "response" ? { ...result, message: { ...result.message, id } } : result;
}

/**
 * Progress for the call's first token under the current round's token (a retry may carry
 * another); without one in this round the client asked for none, so it is dropped.
 */
function progressFor(server: JsonRpcMessage, first: unknown, current: JsonRpcMessage): JsonRpcMessage | undefined {
  if (server.method !== "notifications/progress" || !isObject(server.params) || server.params.progressToken !== first)
    return server;
  const token = metaOf(current)?.progressToken;
  return token === undefined ? undefined : { ...server, params: { ...server.params, progressToken: token } };
}
