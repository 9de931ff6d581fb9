/**
 * Trace context for one MCP server: the exchange's parent (the `traceparent` the
 * dispatcher put in the command's headers) goes on to the server in `params._meta`
 * (SEP-414, the only place a stdio server can find it) and, for HTTP servers, in the
 * `traceparent` header the backend already forwards. With tracing on, the exchange is
 * its own span and the server's spans become its children.
 */
import {
  ATTR,
  SPAN,
  callAttributes,
  clientTraceContext,
  inSpan,
  withTraceHeaders,
  withTraceMeta,
} from "../../shared/telemetry/index.ts";
import { decorate } from "../backends/decorate.ts";
import type { Backend, ExchangeResult, McpExchange } from "../backends/types.ts";
import type { Tracing } from "./tracing.ts";

function outcomeOf(result: ExchangeResult): string {
  return result.kind === "failure" ? `failure:${result.failure.source}` : result.kind;
}

async function tracedExchange(inner: Backend, tracing: Tracing, exchange: McpExchange): Promise<ExchangeResult> {
  const parent = clientTraceContext(exchange.headers, undefined);
  if (!parent) return inner.exchange(exchange);
  if (!tracing.enabled) return inner.exchange({ ...exchange, message: withTraceMeta(exchange.message, parent) });
  const span = tracing.start(SPAN.backendExchange, {
    parent,
    kind: "client",
    attributes: {
      [ATTR.backend]: inner.name,
      [ATTR.backendTransport]: inner.transport,
      ...callAttributes(exchange.message),
    },
  });
  const work = () =>
    inner.exchange({
      ...exchange,
      headers: withTraceHeaders(exchange.headers, span.carrier),
      message: withTraceMeta(exchange.message, span.carrier),
    });
  return inSpan(span, work, (result) => {
    span.set({
      [ATTR.outcome]: outcomeOf(result),
      ...("status" in result ? { [ATTR.httpStatus]: result.status } : {}),
    });
    if (result.kind === "failure") span.fail(result.failure.source);
  });
}

/** `inner` with trace context passed on to its server, and its exchanges traced when tracing is on. */
export function traceBackend(inner: Backend, tracing: Tracing): Backend {
  return decorate(inner, { exchange: (exchange) => tracedExchange(inner, tracing, exchange) });
}
