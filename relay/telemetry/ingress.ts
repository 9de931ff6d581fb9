/**
 * The hub's spans around one MCP request: `ingress` for the client's HTTP request (its
 * parent is the client's own span, from `traceparent` or `params._meta`), and as its
 * children the policy decision, the audit appends and the hand-off to an agent, whose span
 * becomes the command's `traceparent`: the agent's spans are its children.
 */
import type { Context, MiddlewareHandler } from "hono";
import {
  ATTR,
  SPAN,
  clientTraceContext,
  clientTraceId,
  inSpan,
  withTraceHeaders,
} from "../../shared/telemetry/index.ts";
import type { SpanAttributes, TraceCarrier, TraceSpan } from "../../shared/telemetry/index.ts";
import type { HeaderMap } from "../../shared/protocol/index.ts";
import { background, type WorkerContext } from "../context.ts";
import { hubTracing, type HubTracing } from "./tracing.ts";

export interface IngressTrace {
  tracing: HubTracing;
  ingress: TraceSpan;
}

function traceHeaders(c: Context<WorkerContext>): HeaderMap {
  const headers: HeaderMap = {};
  for (const name of ["traceparent", "tracestate"]) {
    const value = c.req.header(name);
    if (value !== undefined) headers[name] = [value];
  }
  return headers;
}

/** The client's trace context: its headers, else (a POST of one message) the message's `_meta`. */
async function clientParent(c: Context<WorkerContext>): Promise<TraceCarrier | undefined> {
  const headers = traceHeaders(c);
  let message: unknown;
  if (headers.traceparent === undefined && c.req.method === "POST") {
    // Hono caches the body: the route reads it again. A read that fails (the body limit)
    // propagates to its middleware; only a body that is not JSON is the route's to refuse.
    const text = await c.req.text();
    try {
      message = JSON.parse(text);
    } catch {
      message = undefined;
    }
  }
  return clientTraceContext(headers, message);
}

/** Middleware: the ingress span of each MCP request, exported when the request is done. */
export function traceIngress(): MiddlewareHandler<WorkerContext> {
  return async (c, next) => {
    const tracing = await hubTracing(c.env);
    if (!tracing.enabled) return next();
    const parent = await clientParent(c);
    const ingress = tracing.start(SPAN.ingress, {
      kind: "server",
      ...(parent ? { parent } : {}),
      attributes: { [ATTR.tunnel]: c.get("tunnelId"), "http.request.method": c.req.method },
    });
    c.set("trace", { tracing, ingress });
    try {
      await next();
      ingress.set({ [ATTR.httpStatus]: c.res.status });
      if (c.res.status >= 500) ingress.fail(String(c.res.status));
    } finally {
      ingress.end();
      background(c, tracing.flush());
    }
  };
}

/** Describe the request on its ingress span (method, tool; never arguments). */
export function describeIngress(c: Context<WorkerContext>, attributes: SpanAttributes): void {
  c.get("trace")?.ingress.set(attributes);
}

/** Run `work` as a child span of the ingress; `attributes(result)` describes how it went. */
export async function traced<T>(
  c: Context<WorkerContext>,
  name: string,
  work: () => Promise<T> | T,
  attributes?: (result: T) => SpanAttributes,
): Promise<T> {
  const trace = c.get("trace");
  if (!trace) return work();
  const span = trace.tracing.start(name, { parent: trace.ingress.carrier });
  return inSpan(span, work, (result) => attributes && span.set(attributes(result)));
}

/**
 * Hand a command to the tunnel's hub under a `handoff` span, whose context replaces the
 * client's in the command's headers: the agent continues the trace from here. The span
 * lasts until the hub's first answer (the final one, for a call answered once).
 */
export async function handoff<R extends { headers: HeaderMap; requestId: string; channel: string; kind: string }, T>(
  c: Context<WorkerContext>,
  request: R,
  submit: (request: R) => Promise<T>,
  describe?: (result: T, span: TraceSpan) => void,
): Promise<T> {
  const trace = c.get("trace");
  if (!trace) return submit(request);
  const span = trace.tracing.start(SPAN.handoff, {
    parent: trace.ingress.carrier,
    kind: "producer",
    attributes: {
      [ATTR.requestId]: request.requestId,
      [ATTR.channel]: request.channel,
      [ATTR.commandType]: request.kind,
    },
  });
  return inSpan(span, () => submit({ ...request, headers: withTraceHeaders(request.headers, span.carrier) }), describe);
}

/**
 * The trace id an audit record carries: the hub's trace when it traces, else the one the
 * client sent (headers, else `message`'s `_meta`), so a record and a trace find each other
 * either way.
 */
export function callTraceId(c: Context<WorkerContext>, message: unknown): string | undefined {
  const traced = c.get("trace")?.ingress.traceId;
  if (traced) return traced;
  return clientTraceId(traceHeaders(c), message);
}
