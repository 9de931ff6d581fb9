/**
 * How the hub answers an MCP client (docs/protocol.md "MCP clients → hub"): when the client
 * accepts `text/event-stream` and a server message arrives before the final response
 * (or the final one was itself SSE), the answer is `200 text/event-stream` with one
 * `data:` event per message, closed after the final; otherwise the final response as
 * JSON with the backend's status. Status codes pass through a mapping that never lets a
 * 1xx or an unknown code reach the client.
 *
 * An `initialize` is answered only once its final response is in: the response headers
 * must carry the session id, and the hub knows it (the backend's, or one it mints for a
 * backend without sessions) only from that final response. Server messages before it
 * wait and go out first on the stream.
 *
 * This runs in the Worker, once, on events that policy and audit already saw
 * (relay/policy/ingress-guard.ts): the `TunnelHub` Durable Object hands structured
 * {@link ExchangeEvent}s across RPC and never renders.
 */
import { RESPONSE_HEADER_ALLOWLIST, failureMessage, headerValue, type HeaderMap } from "../../shared/protocol/index.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { errorResponse, type HubError } from "../errors.ts";
import type { ExchangeEvent } from "./exchange.ts";

/**
 * The events of one command as the renderer reads them: the hub's `Exchange` in
 * process, or a submit reply read across RPC ({@link replyEvents}).
 */
export interface ExchangeEvents {
  /** The next event; `undefined` once the exchange closed without more. */
  next(): Promise<ExchangeEvent | undefined>;
  /** The client went away: the hub dequeues or cancels the command. */
  cancel(reason: string): void;
}

/** What a submit answers across RPC: its first event and, while more may follow, the way to them. */
export interface SubmitReply {
  /** `undefined` when the exchange closed before any event (the client went away). */
  first: ExchangeEvent | undefined;
  /** Present only when `first` is an intermediate message. */
  next?: () => Promise<ExchangeEvent | undefined>;
  cancel?: (reason: string) => Promise<void>;
}

const isLast = (event: ExchangeEvent | undefined) => event === undefined || event.type !== "notify";

/**
 * Read a {@link SubmitReply} as {@link ExchangeEvents}. `schedule` keeps a cancel alive
 * after the client's request ended (`waitUntil`). The reply's RPC stubs are released
 * once the last event is read or the command is cancelled.
 */
export function replyEvents(reply: SubmitReply, schedule: (work: Promise<unknown>) => void): ExchangeEvents {
  let first: ExchangeEvent | undefined | null = reply.first;
  let done = isLast(reply.first);
  const release = () => (reply as Partial<Disposable>)[Symbol.dispose]?.();
  return {
    async next() {
      if (first !== null) {
        const event = first;
        first = null;
        return event;
      }
      if (done || !reply.next) return undefined;
      const event = await reply.next();
      // A cancel while this read was on its way releases the stubs itself.
      if (isLast(event) && !done) {
        done = true;
        release();
      }
      return event;
    },
    cancel(reason) {
      if (done) return;
      done = true;
      if (reply.cancel) schedule(reply.cancel(reason).finally(release));
    },
  };
}

const KNOWN_STATUSES = new Set([
  200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404,
  405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431,
  451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

/** 1xx → 502; an unknown 2xx → 200; any other unknown code → 502. */
export function clientStatus(code: number): number {
  if (!Number.isInteger(code) || code < 200 || code > 599) return 502;
  if (KNOWN_STATUSES.has(code)) return code;
  return code < 300 ? 200 : 502;
}

/** Response headers from `resp_headers`, limited to the protocol's allowlist whatever the agent sent. */
export function clientHeaders(headers: HeaderMap): Headers {
  const out = new Headers();
  for (const name of RESPONSE_HEADER_ALLOWLIST) {
    const value = headerValue(headers, name);
    if (value !== undefined && value.trim() !== "") out.set(name, value);
  }
  return out;
}

export interface RenderOptions {
  /** The client's `Accept` lists `text/event-stream`. */
  acceptsSse: boolean;
  /** Interval of `: keepalive` comments on an open SSE stream; a failing write reveals a gone client. */
  keepaliveMs: number;
  /** The id of the client's JSON-RPC request, to answer with an error event if the hub gives up mid-stream. */
  rpcId?: JsonRpcId;
  /** Send nothing before the final response, so the headers are the final's (`initialize`: `Mcp-Session-Id`). */
  holdUntilFinal?: boolean;
}

function isSse(headers: HeaderMap): boolean {
  return (headerValue(headers, "Content-Type") ?? "").toLowerCase().startsWith("text/event-stream");
}

export type FinalEvent = Extract<ExchangeEvent, { type: "final" }>;

/** The message a JSON answer carries: a `jsonrpc_response` whose status allows a body; otherwise none. */
export function jsonBody(event: FinalEvent): JsonRpcMessage | undefined {
  const withBody = event.respType === "jsonrpc_response" && !NULL_BODY_STATUSES.has(clientStatus(event.status));
  return withBody ? event.message : undefined;
}

function jsonFinal(event: FinalEvent): Response {
  const status = clientStatus(event.status);
  const headers = clientHeaders(event.headers);
  const message = jsonBody(event);
  if (message === undefined) {
    headers.delete("Content-Type");
    return new Response(null, { status, headers });
  }
  headers.set("Content-Type", "application/json");
  return new Response(JSON.stringify(message), { status, headers });
}

/** The answer when the exchange closed before any event: the client itself went away. */
export const CLIENT_CLOSED: HubError = {
  status: 499,
  code: null,
  message: "The client closed the request before it was answered.",
};

/**
 * The end of a command for a reader that takes no server messages (a JSON-only client,
 * a batch element): its final response, or the hub's error.
 */
export async function finalOf(events: ExchangeEvents): Promise<FinalEvent | { type: "failed"; error: HubError }> {
  for (;;) {
    const event = await events.next();
    if (!event) return { type: "failed", error: CLIENT_CLOSED };
    if (event.type !== "notify") return event;
  }
}

/** Whether an intermediate message, arriving before the final, opens the SSE stream at once. */
export function opensStream(
  event: ExchangeEvent,
  options: Pick<RenderOptions, "acceptsSse" | "holdUntilFinal">,
): boolean {
  return event.type === "notify" && options.acceptsSse && !options.holdUntilFinal;
}

const encoder = new TextEncoder();
/** The one SSE encoding of a JSON-RPC message on the client leg. */
const sseData = (message: JsonRpcMessage) => encoder.encode(`event: message\ndata: ${JSON.stringify(message)}\n\n`);

/** The hub gave up after the stream started: the status is sent, so say it as a JSON-RPC error. */
function streamFailure(error: HubError, rpcId: JsonRpcId | undefined): JsonRpcMessage | undefined {
  if (rpcId === undefined) return undefined;
  const message = failureMessage(rpcId, { source: error.status === 504 ? "timeout" : "client_internal" });
  return { ...message, error: { ...message.error, message: error.message } };
}

function sseResponse(
  exchange: ExchangeEvents,
  first: ExchangeEvent[],
  headersFrom: HeaderMap,
  options: RenderOptions,
): Response {
  const headers = clientHeaders(headersFrom);
  headers.set("Content-Type", "text/event-stream");
  headers.set("Cache-Control", "no-cache");
  // A buffering reverse proxy in front of the hub (nginx and kin honour this header) would hold
  // events back until its buffer fills: a listen or GET stream would see its notifications late.
  headers.set("X-Accel-Buffering", "no");
  let keepalive: ReturnType<typeof setInterval> | undefined;
  let done = false;
  const finish = () => {
    done = true;
    if (keepalive !== undefined) clearInterval(keepalive);
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (chunk: Uint8Array): boolean => {
        if (done) return false;
        try {
          controller.enqueue(chunk);
          return true;
        } catch {
          finish();
          exchange.cancel("client_disconnected");
          return false;
        }
      };
      const close = () => {
        if (done) return;
        finish();
        try {
          controller.close();
        } catch {
          // Already cancelled by the client.
        }
      };
      keepalive = setInterval(() => write(encoder.encode(": keepalive\n\n")), options.keepaliveMs);
      const handle = (event: ExchangeEvent | undefined): boolean => {
        if (!event) {
          close();
          return false;
        }
        if (event.type === "notify") {
          if (event.message) write(sseData(event.message));
          return true;
        }
        if (event.type === "final") {
          if (event.message) write(sseData(event.message));
        } else {
          const failure = streamFailure(event.error, options.rpcId);
          if (failure) write(sseData(failure));
        }
        close();
        return false;
      };
      void (async () => {
        let more = true;
        for (const event of first) more &&= handle(event);
        while (more && !done) more = handle(await exchange.next());
      })().catch((error: unknown) => {
        // The hub's object went away mid-stream (or the audit log failed): end the stream with
        // the client's error rather than leaving it open on keepalives.
        const reason = error instanceof Error ? error.message : String(error);
        handle({
          type: "failed",
          error: {
            status: 502,
            code: null,
            message: `The hub stopped answering this request (${reason}); send it again.`,
          },
        });
      });
    },
    cancel() {
      finish();
      exchange.cancel("client_disconnected");
    },
  });
  return new Response(body, { status: 200, headers });
}

/** Wait for the exchange's first event and answer the client accordingly. */
export async function renderExchange(exchange: ExchangeEvents, options: RenderOptions): Promise<Response> {
  if (!options.acceptsSse) {
    // A JSON-only client cannot receive a server message; it waits for the final response.
    const end = await finalOf(exchange);
    return end.type === "failed" ? errorResponse(end.error) : jsonFinal(end);
  }
  const held: ExchangeEvent[] = [];
  for (;;) {
    const event = await exchange.next();
    if (!event) return errorResponse(CLIENT_CLOSED);
    if (event.type === "failed") return errorResponse(event.error);
    if (event.type === "final") {
      const stream = isSse(event.headers) || (held.length > 0 && clientStatus(event.status) < 300);
      if (stream && event.message) return sseResponse(exchange, [...held, event], event.headers, options);
      return jsonFinal(event);
    }
    // A server message before the final answer: stream it at once, or hold it (initialize).
    if (opensStream(event, options)) return sseResponse(exchange, [event], event.headers, options);
    held.push(event);
  }
}
