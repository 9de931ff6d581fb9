/**
 * A Streamable HTTP MCP server as a {@link Backend}: each exchange is one `POST` of the
 * JSON-RPC message to the server URL; the answer is a JSON body or an SSE stream whose
 * earlier messages become notifies. Sessions belong to the server (`Mcp-Session-Id`
 * travels in the command's headers), so this backend keeps no per-session state beyond
 * the requests in flight: a client's `notifications/cancelled` for one of them ends it at
 * once as `cancelled` (nothing is posted; the client asked for no answer, and a server
 * honouring the cancellation may keep its SSE stream open without one).
 *
 * `openStream` is the server's standalone stream: a `GET` of the same URL with
 * `Accept: text/event-stream`, read until the server closes it or the client goes. Only
 * the time to the response headers counts against `timeoutMs`.
 *
 * Reading the server's answers is `http/answer.ts`; SSE parsing is `../mcp/sse.ts`.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import {
  filterResponseHeaders,
  headerValue,
  hubAssertedHeaders,
  sanitizeClientHeaders,
  sanitizeOperatorHeaders,
} from "../../shared/protocol/headers.ts";
import { isNotification, isObject, isRequest } from "../../shared/jsonrpc.ts";
import type { JsonRpcId } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import { isLongLivedRequest } from "../../shared/mcp/era.ts";
import { readBounded } from "../runtime/body.ts";
import { createHttpClient } from "../runtime/http-client.ts";
import type { FetchLike, HttpClient, HttpClientOptions } from "../runtime/http-client.ts";
import { linkSignals } from "../runtime/signals.ts";
import { classifyFetchError } from "./failure-kind.ts";
import type { ClassifiedFailure } from "./failure-kind.ts";
import { readAnswer, readStream } from "./http/answer.ts";
import type { AnswerLimits } from "./http/answer.ts";
import { InflightCounter } from "./inflight.ts";
import type {
  Backend,
  BackendHealth,
  ExchangeResult,
  McpExchange,
  McpStream,
  StreamResult,
  TerminationResult,
} from "./types.ts";

/** The connection options (CA, proxy, Unix socket, mTLS) are the fetch seam's own. */
export interface HttpBackendOptions extends HttpClientOptions {
  name: string;
  /** The MCP endpoint, e.g. `https://mcp.internal/mcp`. */
  url: string;
  /**
   * Static headers sent on every request (values already resolved from `env:`/`file:`).
   * They win over the command's headers, case-insensitively; of the command's, only the
   * protocol's client allowlist is sent. Hop-by-hop, `Host` and `Content-Length` never are.
   */
  headers?: Record<string, string | string[]>;
  /** Per-call ceiling besides the command's deadline. Default 300 000 ms. */
  timeoutMs?: number;
  /** Largest JSON body, or single SSE event, accepted. Default 16 MiB. */
  maxResponseBytes?: number;
  /** Consecutive transport-level failures after which health says `failed`. Default 3. */
  failureThreshold?: number;
  /** Replaces the CA-aware client (tests). */
  fetch?: FetchLike;
  log: Logger;
}

const DEFAULT_TIMEOUT_MS = 300_000;
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** Words an operator can act on, per failure source. */
const FAILURE_WORDS: Record<FailureSpec["source"], string> = {
  target_http: "the server answered with an HTTP error",
  dns: "the host name does not resolve (check the URL's host and DNS)",
  tls: "the TLS handshake failed (is the certificate trusted? configure a CA bundle for a private CA)",
  connect: "the connection failed (is the server running and reachable from this host?)",
  transport_closed: "the server closed the connection",
  timeout: "the server did not answer in time",
  protocol: "the server's answer was not valid MCP",
  client_internal: "the agent could not send the request",
};

type Failed = (failure: FailureSpec, detail: string) => { kind: "failure"; failure: FailureSpec; detail: string };
const failed: Failed = (failure, detail) => ({ kind: "failure", failure, detail });

/** Build the Streamable HTTP backend. `start()` only checks the CA bundle; nothing connects until the first exchange. */
export function createHttpBackend(options: HttpBackendOptions): Backend {
  return new HttpBackend(options);
}

class HttpBackend implements Backend {
  readonly name: string;
  readonly transport = "http";
  readonly procAffinity = false;
  readonly #url: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #threshold: number;
  readonly #client: HttpClient;
  /** For the streams (GET, subscriptions/listen): bodies that may stay silent for as long as they live. */
  readonly #streamClient: HttpClient;
  readonly #staticHeaders: HeaderMap;
  readonly #closing = new AbortController();
  readonly #limits: AnswerLimits;
  /** The URL's origin, for health reasons (never its path or credentials). */
  readonly #origin: string;
  readonly #inflight = new InflightCounter();
  /** Requests in flight by session and JSON-RPC id, so the client's cancellation can end them. */
  readonly #cancellable = new Map<string, Set<AbortController>>();
  #consecutiveFailures = 0;
  #lastFailure: ClassifiedFailure | undefined;
  /** Why the backend cannot work at all (a CA bundle that does not load); set by `start()`. */
  #setupError: string | undefined;

  constructor(options: HttpBackendOptions) {
    this.name = options.name;
    this.#url = options.url;
    this.#log = options.log.child({ backend: options.name });
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#threshold = options.failureThreshold ?? 3;
    this.#client = options.fetch
      ? { fetch: options.fetch, ready: async () => {}, close: async () => {} }
      : createHttpClient({ ...options, nodeHttp: "streamed" });
    this.#streamClient = options.fetch
      ? this.#client
      : createHttpClient({ ...options, nodeHttp: "streamed", bodyTimeoutMs: 0 });
    this.#staticHeaders = toHeaderMap(options.headers);
    this.#limits = {
      maxBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      closing: this.#closing.signal,
      log: this.#log,
    };
    let origin = "the configured URL";
    try {
      origin = new URL(options.url).origin;
    } catch {
      /* config validation reports bad URLs */
    }
    this.#origin = origin;
  }

  async start(): Promise<void> {
    try {
      await this.#client.ready();
      this.#setupError = undefined;
    } catch (error) {
      this.#setupError = error instanceof Error ? error.message : String(error);
      this.#log.error("HTTP backend cannot start", { reason: this.#setupError });
    }
  }

  async exchange(exchange: McpExchange): Promise<ExchangeResult> {
    if (this.#setupError !== undefined) return failed({ source: "client_internal" }, this.#setupError);
    const headers = requestHeaders(this.#staticHeaders, exchange.headers, {
      Accept: "application/json, text/event-stream",
    });
    let body: string;
    try {
      body = JSON.stringify(exchange.message);
    } catch {
      return failed({ source: "client_internal" }, "message is not serialisable");
    }
    const { message } = exchange;
    // A subscriptions/listen answer is a stream that lives until the client or server ends it:
    // timed, like the GET stream, only until its headers arrive.
    const post = (signal: AbortSignal) =>
      this.#call<ExchangeResult>(
        signal,
        { method: "POST", headers, body },
        (response, bodySignal, timedOut) => readAnswer(this.#limits, exchange, response, bodySignal, timedOut),
        isLongLivedRequest(message),
      );
    if (isNotification(message)) this.#cancelRequest(exchange);
    if (!isRequest(message)) return post(exchange.signal);
    return this.#cancellableBy(exchange, message.id, post);
  }

  async openStream(stream: McpStream): Promise<StreamResult> {
    if (this.#setupError !== undefined) return failed({ source: "client_internal" }, this.#setupError);
    const headers = requestHeaders(this.#staticHeaders, stream.headers, { Accept: "text/event-stream" });
    headers.delete("Content-Type");
    return this.#call<StreamResult>(
      stream.signal,
      { method: "GET", headers },
      (response, signal, timedOut) => readStream(this.#limits, stream, response, signal, timedOut),
      true,
    );
  }

  async terminateSession(commandHeaders: HeaderMap, signal: AbortSignal): Promise<TerminationResult> {
    if (this.#setupError !== undefined) return failed({ source: "client_internal" }, this.#setupError);
    const headers = requestHeaders(this.#staticHeaders, commandHeaders, {});
    return this.#call<TerminationResult>(signal, { method: "DELETE", headers }, async (response, bodySignal) => {
      await readBounded(response, this.#limits.maxBytes, bodySignal).catch(() => "");
      return { kind: "terminated", status: response.status, headers: filterResponseHeaders(response.headers) };
    });
  }

  health(): BackendHealth {
    const lastFailure = this.#lastFailure;
    const health: BackendHealth = {
      name: this.name,
      transport: "http",
      state: "up",
      restarts: 0,
      inflight: this.#inflight.count,
    };
    if (lastFailure)
      health.lastError = `${lastFailure.failure.source}${lastFailure.failure.kind ? `/${lastFailure.failure.kind}` : ""}: ${lastFailure.detail}`;
    if (this.#closing.signal.aborted) return { ...health, state: "stopped", reason: "backend closed" };
    if (this.#setupError !== undefined) return { ...health, state: "failed", reason: this.#setupError };
    if (this.#consecutiveFailures >= this.#threshold && lastFailure) {
      health.state = "failed";
      health.reason = `the last ${this.#consecutiveFailures} calls to ${this.#origin} failed: ${FAILURE_WORDS[lastFailure.failure.source]}`;
    }
    return health;
  }

  async close(): Promise<void> {
    this.#closing.abort();
    await Promise.all([this.#client.close(), this.#streamClient.close()]).catch(() => {});
  }

  /** Book-keeping shared by exchange and termination: a transport failure counts against health. */
  #transportFailure(classified: ClassifiedFailure): ClassifiedFailure {
    this.#consecutiveFailures++;
    this.#lastFailure = classified;
    // tunnel-client's field names for the same bounded values (its mcpclient/dispatcher failure lines).
    this.#log.warn("MCP server call failed", {
      failure_source: classified.failure.source,
      transport_error_kind: classified.failure.kind ?? "unknown",
      detail: classified.detail,
    });
    return classified;
  }

  /**
   * Run one HTTP call with the exchange's signal, the backend's timeout and `close()`
   * linked; map a rejected fetch to a failure. `onResponse` reads the answer. A `stream`
   * call (the standalone stream) is timed only until its headers arrive and is not counted
   * as a request in flight.
   */
  async #call<T>(
    signal: AbortSignal,
    init: RequestInit,
    onResponse: (response: Response, signal: AbortSignal, timedOut: () => boolean) => Promise<T>,
    stream = false,
  ): Promise<T | ReturnType<Failed>> {
    if (this.#closing.signal.aborted)
      return failed({ source: "transport_closed", kind: "connection_closed" }, "backend closed");
    const run = () => this.#fetch(signal, init, onResponse, stream);
    return stream ? run() : this.#inflight.track(run);
  }

  async #fetch<T>(
    signal: AbortSignal,
    init: RequestInit,
    onResponse: (response: Response, signal: AbortSignal, timedOut: () => boolean) => Promise<T>,
    stream: boolean,
  ): Promise<T | ReturnType<Failed>> {
    const closing = this.#closing.signal;
    const linked = linkSignals([signal, closing], this.#timeoutMs);
    const timedOut = () => linked.timedOut || signal.aborted;
    try {
      let response: Response;
      try {
        const client = stream ? this.#streamClient : this.#client;
        response = await client.fetch(this.#url, { ...init, signal: linked.signal, redirect: "follow" });
      } catch (error) {
        if (closing.aborted) return failed({ source: "transport_closed", kind: "connection_closed" }, "backend closed");
        const classified = classifyFetchError(error, timedOut());
        // The caller's own deadline says nothing about the server's health.
        if (signal.aborted) return failed(classified.failure, classified.detail);
        const counted = this.#transportFailure(classified);
        return failed(counted.failure, counted.detail);
      }
      this.#consecutiveFailures = 0;
      if (stream) linked.stopDeadline();
      return await onResponse(response, linked.signal, timedOut);
    } finally {
      linked.dispose();
    }
  }

  #cancelKey(headers: HeaderMap, id: unknown): string {
    return `${headerValue(headers, "mcp-session-id") ?? ""} ${JSON.stringify(id)}`;
  }

  /** Run a request so that the client's `notifications/cancelled` for it ends it as `cancelled`. */
  async #cancellableBy(
    exchange: McpExchange,
    id: JsonRpcId,
    post: (signal: AbortSignal) => Promise<ExchangeResult>,
  ): Promise<ExchangeResult> {
    const key = this.#cancelKey(exchange.headers, id);
    const cancelled = new AbortController();
    const entries = this.#cancellable.get(key) ?? new Set();
    this.#cancellable.set(key, entries.add(cancelled));
    const linked = linkSignals([exchange.signal, cancelled.signal]);
    try {
      const result = await post(linked.signal);
      return cancelled.signal.aborted ? { kind: "cancelled" } : result;
    } finally {
      linked.dispose();
      entries.delete(cancelled);
      if (entries.size === 0) this.#cancellable.delete(key);
    }
  }

  /** The client cancelled a request: end it (and its stream from the server) as `cancelled`. */
  #cancelRequest(exchange: McpExchange): void {
    const { message } = exchange;
    if (message.method !== "notifications/cancelled" || !isObject(message.params)) return;
    for (const controller of this.#cancellable.get(this.#cancelKey(exchange.headers, message.params.requestId)) ?? [])
      controller.abort();
  }
}

function toHeaderMap(headers: Record<string, string | string[]> | undefined): HeaderMap {
  const out: HeaderMap = {};
  for (const [key, value] of Object.entries(headers ?? {})) out[key] = Array.isArray(value) ? value : [value];
  return out;
}

function toHeaders(map: HeaderMap): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(map)) {
    for (const value of values) {
      // A header fetch refuses (bad name or value) is dropped rather than failing the call.
      try {
        headers.append(key, value);
      } catch {
        /* skipped */
      }
    }
  }
  return headers;
}

/**
 * Defaults, then the client's headers (only those the protocol's allowlist lets through),
 * then the hub's signed identity (poller-checked: only from a hub asserting it), then the operator's static headers: each later layer replaces a name the earlier ones set
 * (case-insensitively), so a client can never override what the operator configured
 * (e.g. `X-Read-Only: true`). The body is always JSON.
 */
function requestHeaders(
  staticHeaders: HeaderMap,
  commandHeaders: HeaderMap,
  defaults: Record<string, string>,
): Headers {
  const out = new Headers(defaults);
  const layers = [
    sanitizeClientHeaders(toHeaders(commandHeaders), true),
    hubAssertedHeaders(commandHeaders),
    sanitizeOperatorHeaders(toHeaders(staticHeaders)),
  ];
  for (const clean of layers) {
    for (const [key, values] of Object.entries(clean)) {
      out.delete(key);
      for (const value of values) out.append(key, value);
    }
  }
  out.set("Content-Type", "application/json");
  return out;
}
