/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) as Airlock carries it: in the
 * `traceparent`/`tracestate` headers of a client's request (which the tunnel protocol
 * already forwards, see protocol/headers.ts), and in a request's `params._meta`, where
 * MCP 2026-07-28 (SEP-414) puts the same keys for transports without headers (stdio).
 *
 * The sampled flag a client sends is only ever passed on, never obeyed: whether Airlock
 * records a trace is the operator's sampler setting (see docs/observability.md).
 */
import type { HeaderMap } from "../protocol/commands.ts";
import { headerValue } from "../protocol/headers.ts";
import { isObject, isRequest } from "../jsonrpc.ts";

export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";

/** One parsed `traceparent`: lower-case hex ids and the sampled bit. */
export interface SpanContextFields {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

/** What travels between hops: the parent and the vendor state that goes with it. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

const TRACEPARENT_PATTERN = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Parse a `traceparent` as the W3C spec says a receiver must: version `ff` and all-zero
 * ids are invalid, version 00 has exactly four fields, a later version may append more.
 */
export function parseTraceparent(value: string | undefined): SpanContextFields | undefined {
  const match = value === undefined ? null : TRACEPARENT_PATTERN.exec(value.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** A version-00 `traceparent`. */
export function formatTraceparent(context: SpanContextFields): string {
  return `00-${context.traceId}-${context.spanId}-${context.sampled ? "01" : "00"}`;
}

/** `params._meta` of a request, when it is an object. */
function metaOf(message: unknown): Record<string, unknown> | undefined {
  if (!isRequest(message) || !isObject(message.params)) return undefined;
  return isObject(message.params._meta) ? message.params._meta : undefined;
}

/** A valid carrier from a `traceparent` and `tracestate` pair; invalid parents are dropped whole, as the spec asks. */
function carrierOf(traceparent: unknown, tracestate: unknown): TraceCarrier | undefined {
  if (typeof traceparent !== "string" || !parseTraceparent(traceparent)) return undefined;
  return typeof tracestate === "string" && tracestate !== "" ? { traceparent, tracestate } : { traceparent };
}

/** The trace context a client sent: its headers first, else its request's `params._meta`. */
export function clientTraceContext(headers: HeaderMap | undefined, message: unknown): TraceCarrier | undefined {
  const fromHeaders = carrierOf(headerValue(headers, TRACEPARENT), headerValue(headers, TRACESTATE));
  if (fromHeaders) return fromHeaders;
  const meta = metaOf(message);
  return meta ? carrierOf(meta[TRACEPARENT], meta[TRACESTATE]) : undefined;
}

/** The trace id of the client's context ({@link clientTraceContext}), if it sent one. */
export function clientTraceId(headers: HeaderMap | undefined, message: unknown): string | undefined {
  const carrier = clientTraceContext(headers, message);
  return carrier ? parseTraceparent(carrier.traceparent)?.traceId : undefined;
}

/** `headers` with its trace context (any spelling) replaced by `carrier`. */
export function withTraceHeaders(headers: HeaderMap, carrier: TraceCarrier): HeaderMap {
  const out: HeaderMap = {};
  for (const [name, values] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower !== TRACEPARENT && lower !== TRACESTATE) out[name] = values;
  }
  out[TRACEPARENT] = [carrier.traceparent];
  if (carrier.tracestate) out[TRACESTATE] = [carrier.tracestate];
  return out;
}

/**
 * `message` with `carrier` in its `params._meta`, for servers that read trace context
 * there (stdio has no headers). Only requests get it, and never over a `traceparent` the
 * client put there itself: the client's own context in `_meta` is its business. Returns
 * `message` itself when nothing changes.
 */
export function withTraceMeta<M>(message: M, carrier: TraceCarrier): M {
  if (!isRequest(message)) return message;
  const params = message.params;
  if (params !== undefined && !isObject(params)) return message;
  const meta = params?._meta;
  if (meta !== undefined && !isObject(meta)) return message;
  if (meta && TRACEPARENT in meta) return message;
  const traceMeta = carrier.tracestate
    ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate }
    : { traceparent: carrier.traceparent };
  return { ...message, params: { ...params, _meta: { ...meta, ...traceMeta } } };
}
