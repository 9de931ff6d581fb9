/**
 * What a Streamable HTTP server's response means: for a `POST`, a JSON body or an SSE
 * stream whose earlier messages become notifies and whose answer to the request ends the
 * exchange; for the standalone stream's `GET`, an open event stream or the server's refusal.
 */
import type { HeaderMap } from "../../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../../shared/protocol/failure.ts";
import { filterResponseHeaders } from "../../../shared/protocol/headers.ts";
import { isErrorResponse, isObject, isRequest, isResponse } from "../../../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../../../shared/jsonrpc.ts";
import type { Logger } from "../../../shared/log.ts";
import { readSseMessages } from "../../mcp/sse.ts";
import { BodyTooLarge, parseJson, readBounded } from "../../runtime/body.ts";
import { classifyBodyError, scrubDetail } from "../failure-kind.ts";
import type { ExchangeResult, McpExchange, McpStream, StreamResult } from "../types.ts";

/** What reading an answer needs from its backend. */
export interface AnswerLimits {
  /** Largest JSON body, or single SSE event. */
  maxBytes: number;
  /** The backend's `close()`: a read it cut short is `connection_closed`. */
  closing: AbortSignal;
  log: Logger;
}

/** The `POST`'s answer as an exchange result. */
export async function readAnswer(
  limits: AnswerLimits,
  exchange: McpExchange,
  response: Response,
  signal: AbortSignal,
  timedOut: () => boolean,
): Promise<ExchangeResult> {
  const status = response.status;
  const headers = filterResponseHeaders(response.headers);
  const contentType = (response.headers.get("content-type") ?? "").toLowerCase();
  const request = isRequest(exchange.message) ? exchange.message : undefined;
  const fail = (failure: FailureSpec, detail: string): ExchangeResult => ({
    kind: "failure",
    failure,
    headers,
    detail,
  });
  const bodyFailure = (error: unknown): ExchangeResult => {
    if (error instanceof BodyTooLarge) {
      return fail(
        { source: "protocol", kind: "response_body_too_large", upstreamResponseReceived: true },
        `response body over ${limits.maxBytes} bytes`,
      );
    }
    if (limits.closing.aborted)
      return fail({ source: "transport_closed", kind: "connection_closed" }, "backend closed");
    const classified = classifyBodyError(error, timedOut());
    return fail(classified.failure, classified.detail);
  };

  if (status >= 200 && status < 300 && contentType.startsWith("text/event-stream")) {
    try {
      return await readEventStream(limits, exchange, request, response, headers, signal);
    } catch (error) {
      return bodyFailure(error);
    }
  }
  let text: string;
  try {
    text = await readBounded(response, limits.maxBytes, signal);
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
    return fail(
      { source: "protocol", kind: "non_protocol_response", upstreamResponseReceived: true },
      `unexpected HTTP ${status}`,
    );
  }
  if (!request) return { kind: "ack", status, headers };
  if (text.trim() === "") {
    return fail(
      { source: "protocol", kind: "response_body_missing", upstreamResponseReceived: true },
      `HTTP ${status} with no body for a request`,
    );
  }
  if (parsed === undefined) {
    const kind = contentType.includes("json") ? "malformed_json" : "non_protocol_response";
    return fail(
      { source: "protocol", kind, upstreamResponseReceived: true },
      `body is not JSON (content-type ${scrubDetail(contentType) || "none"})`,
    );
  }
  if (!answers(request, parsed)) {
    return fail(
      { source: "protocol", kind: "invalid_protocol_response", upstreamResponseReceived: true },
      "JSON body is not the JSON-RPC response to this request",
    );
  }
  return { kind: "response", status, headers, message: parsed as JsonRpcMessage };
}

/**
 * Every message before the one answering `request` is a notify, in order; the answer
 * ends the exchange (the rest of the stream is cancelled). A stream that ends first is
 * a truncated answer.
 */
async function readEventStream(
  limits: AnswerLimits,
  exchange: McpExchange,
  request: JsonRpcMessage | undefined,
  response: Response,
  headers: HeaderMap,
  signal: AbortSignal,
): Promise<ExchangeResult> {
  let final: JsonRpcMessage | undefined;
  const status = response.status;
  const body = response.body;
  if (!body)
    return {
      kind: "failure",
      failure: { source: "protocol", kind: "response_body_missing", upstreamResponseReceived: true },
      headers,
    };
  await readSseMessages(body, {
    maxEventBytes: limits.maxBytes,
    signal,
    log: limits.log,
    onMessage: (message) => {
      if (request && answers(request, message)) {
        final = message;
        return true;
      }
      try {
        exchange.notify(message, headers);
      } catch (error) {
        limits.log.warn("notify handler failed", { error });
      }
      return false;
    },
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

/** The standalone stream's answer: open (2xx SSE) → its messages until it ends; otherwise what the server said. */
export async function readStream(
  limits: AnswerLimits,
  stream: McpStream,
  response: Response,
  signal: AbortSignal,
  timedOut: () => boolean,
): Promise<StreamResult> {
  const headers = filterResponseHeaders(response.headers);
  const contentType = (response.headers.get("content-type") ?? "").toLowerCase();
  if (response.ok && contentType.startsWith("text/event-stream") && response.body) {
    stream.opened(headers);
    try {
      await readSseMessages(response.body, {
        maxEventBytes: limits.maxBytes,
        signal,
        log: limits.log,
        onMessage: (message) => {
          stream.notify(message);
          return false;
        },
      });
      return { kind: "ended" };
    } catch (error) {
      if (stream.signal.aborted) return { kind: "ended" };
      if (error instanceof BodyTooLarge) return { kind: "ended", detail: `an event over ${limits.maxBytes} bytes` };
      return { kind: "ended", detail: classifyBodyError(error, timedOut()).detail };
    }
  }
  const text = await readBounded(response, limits.maxBytes, signal).catch(() => "");
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
