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
 */
import { createParser } from "eventsource-parser";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import { filterResponseHeaders, headerValue, sanitizeClientHeaders, sanitizeOperatorHeaders } from "../../shared/protocol/headers.ts";
import { isErrorResponse, isNotification, isObject, isRequest, isResponse } from "../../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import { createHttpClient } from "../runtime/http-client.ts";
import type { FetchLike, HttpClient, HttpClientOptions } from "../runtime/http-client.ts";
import { classifyBodyError, classifyFetchError, scrubDetail } from "./failure-kind.ts";
import type { ClassifiedFailure } from "./failure-kind.ts";
import type { Backend, BackendHealth, ExchangeResult, McpExchange, McpStream, StreamResult, TerminationResult } from "./types.ts";

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

class BodyTooLarge extends Error {
  override name = "BodyTooLarge";
}

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

/** Build the Streamable HTTP backend. `start()` only checks the CA bundle; nothing connects until the first exchange. */
export function createHttpBackend(options: HttpBackendOptions): Backend {
  const name = options.name;
  const url = options.url;
  const log = options.log.child({ backend: name });
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const threshold = options.failureThreshold ?? 3;
  const client: HttpClient = options.fetch
    ? { fetch: options.fetch, ready: async () => {}, close: async () => {} }
    : createHttpClient(options);
  const staticHeaders = toHeaderMap(options.headers);
  const closing = new AbortController();
  let origin = "the configured URL";
  try { origin = new URL(url).origin; } catch { /* config validation reports bad URLs */ }

  let inflight = 0;
  /** Requests in flight by session and JSON-RPC id, so the client's cancellation can end them. */
  const cancellable = new Map<string, Set<AbortController>>();
  let consecutiveFailures = 0;
  let lastFailure: ClassifiedFailure | undefined;
  let setupError: string | undefined;

  /** Book-keeping shared by exchange and termination: a transport failure counts against health. */
  function transportFailure(classified: ClassifiedFailure): ClassifiedFailure {
    consecutiveFailures++;
    lastFailure = classified;
    log.warn("MCP server call failed", { source: classified.failure.source, kind: classified.failure.kind, detail: classified.detail });
    return classified;
  }

  /**
   * Run one HTTP call with the exchange's signal, the backend's timeout and `close()`
   * combined; map a rejected fetch to a failure. `onResponse` reads the answer. A
   * `stream` call (the standalone stream) is timed only until its headers arrive and is
   * not counted as a request in flight.
   */
  async function call<T>(
    signal: AbortSignal,
    init: RequestInit,
    onResponse: (response: Response, signal: AbortSignal, timedOut: () => boolean) => Promise<T>,
    onFailure: (failure: FailureSpec, detail: string) => T,
    stream = false,
  ): Promise<T> {
    if (closing.signal.aborted) return onFailure({ source: "transport_closed", kind: "connection_closed" }, "backend closed");
    if (!stream) inflight++;
    const timer = new AbortController();
    const handle = setTimeout(() => timer.abort(new DOMException("backend timeout", "TimeoutError")), timeoutMs);
    const combined = AbortSignal.any([signal, timer.signal, closing.signal]);
    const timedOut = () => timer.signal.aborted || signal.aborted;
    try {
      let response: Response;
      try {
        response = await client.fetch(url, { ...init, signal: combined, redirect: "follow" });
      } catch (error) {
        if (closing.signal.aborted) return onFailure({ source: "transport_closed", kind: "connection_closed" }, "backend closed");
        const classified = classifyFetchError(error, timedOut());
        // The caller's own deadline says nothing about the server's health.
        if (signal.aborted) return onFailure(classified.failure, classified.detail);
        const counted = transportFailure(classified);
        return onFailure(counted.failure, counted.detail);
      }
      consecutiveFailures = 0;
      if (stream) clearTimeout(handle);
      return await onResponse(response, combined, timedOut);
    } finally {
      clearTimeout(handle);
      if (!stream) inflight--;
    }
  }

  const cancelKey = (headers: HeaderMap, id: unknown) => `${headerValue(headers, "mcp-session-id") ?? ""} ${JSON.stringify(id)}`;

  /** The client cancelled a request: end it (and its stream from the server) as `cancelled`. */
  function cancelRequest(exchange: McpExchange): void {
    const { message } = exchange;
    if (message.method !== "notifications/cancelled" || !isObject(message.params)) return;
    for (const controller of cancellable.get(cancelKey(exchange.headers, message.params.requestId)) ?? []) controller.abort();
  }

  async function readAnswer(exchange: McpExchange, response: Response, signal: AbortSignal, timedOut: () => boolean): Promise<ExchangeResult> {
    const status = response.status;
    const headers = filterResponseHeaders(response.headers);
    const contentType = (response.headers.get("content-type") ?? "").toLowerCase();
    const request = isRequest(exchange.message) ? exchange.message : undefined;
    const fail = (failure: FailureSpec, detail: string): ExchangeResult => ({ kind: "failure", failure, headers, detail });
    const bodyFailure = (error: unknown): ExchangeResult => {
      if (error instanceof BodyTooLarge) {
        return fail({ source: "protocol", kind: "response_body_too_large", upstreamResponseReceived: true }, `response body over ${maxBytes} bytes`);
      }
      if (closing.signal.aborted) return fail({ source: "transport_closed", kind: "connection_closed" }, "backend closed");
      const classified = classifyBodyError(error, timedOut());
      return fail(classified.failure, classified.detail);
    };

    if (status >= 200 && status < 300 && contentType.startsWith("text/event-stream")) {
      try {
        return await readEventStream(exchange, request, response, headers, signal);
      } catch (error) {
        return bodyFailure(error);
      }
    }
    let text: string;
    try {
      text = await readBounded(response, maxBytes, signal);
    } catch (error) {
      return bodyFailure(error);
    }
    const parsed = parseJson(text);
    if (status >= 400 && status <= 599) {
      if (isForwardableError(parsed)) return { kind: "response", status, headers, message: parsed };
      const kind = isObject(parsed) && "error" in parsed ? "invalid_mcp_error" : "http_status";
      return fail({ source: "target_http", status, kind }, `HTTP ${status} without a JSON-RPC error body`);
    }
    if (status < 200 || status >= 300) {
      return fail({ source: "protocol", kind: "non_protocol_response", upstreamResponseReceived: true }, `unexpected HTTP ${status}`);
    }
    if (!request) return { kind: "ack", status, headers };
    if (text.trim() === "") {
      return fail({ source: "protocol", kind: "response_body_missing", upstreamResponseReceived: true }, `HTTP ${status} with no body for a request`);
    }
    if (parsed === undefined) {
      const kind = contentType.includes("json") ? "malformed_json" : "non_protocol_response";
      return fail({ source: "protocol", kind, upstreamResponseReceived: true }, `body is not JSON (content-type ${scrubDetail(contentType) || "none"})`);
    }
    if (!answers(request, parsed)) {
      return fail({ source: "protocol", kind: "invalid_protocol_response", upstreamResponseReceived: true }, "JSON body is not the JSON-RPC response to this request");
    }
    return { kind: "response", status, headers, message: parsed as JsonRpcMessage };
  }

  /**
   * Every message before the one answering `request` is a notify, in order; the answer
   * ends the exchange (the rest of the stream is cancelled). A stream that ends first is
   * a truncated answer.
   */
  async function readEventStream(exchange: McpExchange, request: JsonRpcMessage | undefined, response: Response, headers: HeaderMap, signal: AbortSignal): Promise<ExchangeResult> {
    let final: JsonRpcMessage | undefined;
    const status = response.status;
    const body = response.body;
    if (!body) return { kind: "failure", failure: { source: "protocol", kind: "response_body_missing", upstreamResponseReceived: true }, headers };
    await readMessages(body, signal, (message) => {
      if (request && answers(request, message)) {
        final = message;
        return true;
      }
      try {
        exchange.notify(message, headers);
      } catch (error) {
        log.warn("notify handler failed", { error });
      }
      return false;
    });
    if (final) return { kind: "response", status, headers, message: final };
    if (!request) return { kind: "ack", status, headers };
    return {
      kind: "failure",
      failure: { source: "protocol", kind: "unexpected_eof", upstreamResponseReceived: true },
      headers,
      detail: "event stream ended before the response",
    };
  }

  /**
   * Hand each JSON-RPC message of an SSE body to `onMessage`, in order, until the body
   * ends or `onMessage` returns true. Throws {@link BodyTooLarge} for an oversized event,
   * the signal's reason once it aborted, and whatever reading the body throws.
   */
  async function readMessages(body: ReadableStream<Uint8Array>, signal: AbortSignal, onMessage: (message: JsonRpcMessage) => boolean): Promise<void> {
    let stopped = false;
    let tooLarge = false;
    const parser = createParser({
      maxBufferSize: maxBytes,
      onError: (error) => { if (error.type === "max-buffer-size-exceeded") tooLarge = true; },
      onEvent: (event) => {
        // Empty `data:` events are priming/keep-alive events of resumable streams.
        if (stopped || event.data.trim() === "") return;
        const message = parseJson(event.data);
        if (!isObject(message)) {
          log.debug("skipping an SSE event that is not a JSON-RPC message", { event: event.event });
          return;
        }
        stopped = onMessage(message);
      },
    });
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const cancel = () => { reader.cancel().catch(() => {}); };
    signal.addEventListener("abort", cancel, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
        if (tooLarge) throw new BodyTooLarge();
        if (stopped) break;
      }
      if (signal.aborted) throw signal.reason;
    } finally {
      signal.removeEventListener("abort", cancel);
      cancel();
    }
  }

  /** The standalone stream's answer: open (2xx SSE) → its messages until it ends; otherwise what the server said. */
  async function readStream(stream: McpStream, response: Response, signal: AbortSignal, timedOut: () => boolean): Promise<StreamResult> {
    const headers = filterResponseHeaders(response.headers);
    const contentType = (response.headers.get("content-type") ?? "").toLowerCase();
    if (response.ok && contentType.startsWith("text/event-stream") && response.body) {
      stream.opened(headers);
      try {
        await readMessages(response.body, signal, (message) => {
          stream.notify(message);
          return false;
        });
        return { kind: "ended" };
      } catch (error) {
        if (stream.signal.aborted) return { kind: "ended" };
        if (error instanceof BodyTooLarge) return { kind: "ended", detail: `an event over ${maxBytes} bytes` };
        return { kind: "ended", detail: classifyBodyError(error, timedOut()).detail };
      }
    }
    const text = await readBounded(response, maxBytes, signal).catch(() => "");
    if (response.ok) {
      return {
        kind: "failure",
        failure: { source: "protocol", kind: "non_protocol_response", upstreamResponseReceived: true },
        detail: `GET answered HTTP ${response.status} without an event stream (content-type ${scrubDetail(contentType) || "none"})`,
      };
    }
    const parsed = parseJson(text);
    return isForwardableError(parsed)
      ? { kind: "refused", status: response.status, headers, message: parsed }
      : { kind: "refused", status: response.status, headers };
  }

  return {
    name,
    transport: "http",
    procAffinity: false,

    async start() {
      try {
        await client.ready();
        setupError = undefined;
      } catch (error) {
        setupError = error instanceof Error ? error.message : String(error);
        log.error("HTTP backend cannot start", { reason: setupError });
      }
    },

    async exchange(exchange) {
      if (setupError !== undefined) return { kind: "failure", failure: { source: "client_internal" }, detail: setupError };
      const headers = requestHeaders(staticHeaders, exchange.headers, {
        Accept: "application/json, text/event-stream",
      });
      let body: string;
      try {
        body = JSON.stringify(exchange.message);
      } catch {
        return { kind: "failure", failure: { source: "client_internal" }, detail: "message is not serialisable" };
      }
      const post = (signal: AbortSignal) => call<ExchangeResult>(signal, { method: "POST", headers, body },
        (response, bodySignal, timedOut) => readAnswer(exchange, response, bodySignal, timedOut),
        (failure, detail) => ({ kind: "failure", failure, detail }));
      const { message } = exchange;
      if (isNotification(message)) cancelRequest(exchange);
      if (!isRequest(message)) return post(exchange.signal);
      const key = cancelKey(exchange.headers, message.id);
      const cancelled = new AbortController();
      const entries = cancellable.get(key) ?? new Set();
      cancellable.set(key, entries.add(cancelled));
      try {
        const result = await post(AbortSignal.any([exchange.signal, cancelled.signal]));
        return cancelled.signal.aborted ? { kind: "cancelled" } : result;
      } finally {
        entries.delete(cancelled);
        if (entries.size === 0) cancellable.delete(key);
      }
    },

    async openStream(stream) {
      if (setupError !== undefined) return { kind: "failure", failure: { source: "client_internal" }, detail: setupError };
      const headers = requestHeaders(staticHeaders, stream.headers, { Accept: "text/event-stream" });
      headers.delete("Content-Type");
      return call<StreamResult>(stream.signal, { method: "GET", headers },
        (response, signal, timedOut) => readStream(stream, response, signal, timedOut),
        (failure, detail) => ({ kind: "failure", failure, detail }), true);
    },

    async terminateSession(commandHeaders, signal) {
      if (setupError !== undefined) return { kind: "failure", failure: { source: "client_internal" }, detail: setupError };
      const headers = requestHeaders(staticHeaders, commandHeaders, {});
      return call<TerminationResult>(signal, { method: "DELETE", headers },
        async (response, bodySignal) => {
          await readBounded(response, maxBytes, bodySignal).catch(() => "");
          return { kind: "terminated", status: response.status, headers: filterResponseHeaders(response.headers) };
        },
        (failure, detail) => ({ kind: "failure", failure, detail }));
    },

    health(): BackendHealth {
      const health: BackendHealth = { name, transport: "http", state: "up", restarts: 0, inflight };
      if (lastFailure) health.lastError = `${lastFailure.failure.source}${lastFailure.failure.kind ? `/${lastFailure.failure.kind}` : ""}: ${lastFailure.detail}`;
      if (closing.signal.aborted) return { ...health, state: "stopped", reason: "backend closed" };
      if (setupError !== undefined) return { ...health, state: "failed", reason: setupError };
      if (consecutiveFailures >= threshold && lastFailure) {
        health.state = "failed";
        health.reason = `the last ${consecutiveFailures} calls to ${origin} failed: ${FAILURE_WORDS[lastFailure.failure.source]}`;
      }
      return health;
    },

    async close() {
      closing.abort();
      await client.close().catch(() => {});
    },
  };
}

/**
 * A JSON-RPC error to forward as is. Besides well-formed ones this admits an error without
 * `id`: MCP SDK servers send that when they reject a request before reading its body, and
 * MCP's own schema allows it.
 */
function isForwardableError(value: unknown): value is JsonRpcMessage {
  if (isErrorResponse(value)) return true;
  return isObject(value) && !("id" in value) && isErrorResponse({ ...value, id: null });
}

/** Does `message` answer `request`? Errors about requests the server could not read carry `id: null` or none. */
function answers(request: JsonRpcMessage, message: unknown): boolean {
  if (isResponse(message) && message.id === request.id) return true;
  return isForwardableError(message) && (message.id === null || message.id === undefined);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
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
      try { headers.append(key, value); } catch { /* skipped */ }
    }
  }
  return headers;
}

/**
 * Defaults, then the client's headers (only those the protocol's allowlist lets through),
 * then the operator's static headers: each later layer replaces a name the earlier ones set
 * (case-insensitively), so a client can never override what the operator configured
 * (e.g. `X-Read-Only: true`). The body is always JSON.
 */
function requestHeaders(staticHeaders: HeaderMap, commandHeaders: HeaderMap, defaults: Record<string, string>): Headers {
  const out = new Headers(defaults);
  for (const clean of [sanitizeClientHeaders(toHeaders(commandHeaders), true), sanitizeOperatorHeaders(toHeaders(staticHeaders))]) {
    for (const [key, values] of Object.entries(clean)) {
      out.delete(key);
      for (const value of values) out.append(key, value);
    }
  }
  out.set("Content-Type", "application/json");
  return out;
}

/** Read a whole body as text, refusing more than `maxBytes`. */
async function readBounded(response: Response, maxBytes: number, signal: AbortSignal): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw new BodyTooLarge();
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const cancel = () => { reader.cancel().catch(() => {}); };
  signal.addEventListener("abort", cancel, { once: true });
  const decoder = new TextDecoder();
  let size = 0;
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) throw new BodyTooLarge();
      text += decoder.decode(value, { stream: true });
    }
    if (signal.aborted) throw signal.reason;
    return text + decoder.decode();
  } finally {
    signal.removeEventListener("abort", cancel);
    cancel();
  }
}
