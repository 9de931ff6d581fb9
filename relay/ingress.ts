/**
 * The MCP ingress: any MCP client (Streamable HTTP) reaches a tunnel's private server at
 *
 *   POST   /v1/mcp/{tunnel_id}[/{channel}]   JSON-RPC message (or batch) → `jsonrpc` command
 *   DELETE /v1/mcp/{tunnel_id}[/{channel}]   → `session_termination` (needs Mcp-Session-Id)
 *   GET    /v1/mcp/{tunnel_id}[/{channel}]   standalone SSE stream; 405 unless an agent offers
 *                                            the `get-stream` extension
 *
 * Clients authenticate with `Authorization: Bearer <client token>`; on tunnels with
 * `pass_client_authorization` their `Authorization` goes to the backend instead and the
 * hub token travels in `X-Airlock-Token`.
 */
import { Hono, type Context } from "hono";
import { cors } from "hono/cors";
import { headerValue, normalizeChannel, sanitizeClientHeaders, type HeaderMap } from "../shared/protocol/index.ts";
import { isObject, isRequest, type JsonRpcMessage } from "../shared/jsonrpc.ts";
import { ATTR, callAttributes, clientTraceContext, withTraceHeaders } from "../shared/telemetry/index.ts";
import type { PolicyDecision } from "../shared/policy/index.ts";
import { watchConnection } from "./connection.ts";
import { credentialCheck, fail, sizeLimit, tunnelContext, type WorkerContext, type WorkerDeps } from "./context.ts";
import { errorResponse, invalidChannel } from "./errors.ts";
import { finalOf, jsonBody, renderExchange, type ExchangeEvents, type RenderOptions } from "./hub/render.ts";
import { newRequestId, type SessionOwner, type SubmitKind } from "./hub/tunnel-state.ts";
import { allowParamHeaders, eraRefusal, MODERN_REQUEST_HEADERS } from "./mcp/era-check.ts";
import { secretDigest } from "./auth.ts";
import { withIdentity } from "./identity/resource.ts";
import { IDENTITY_HEADER, identityToken } from "./identity/backend-token.ts";
import { guardedSubmit, judgeIngressBody } from "./policy/ingress-guard.ts";
import { describeIngress, traceIngress } from "./telemetry/ingress.ts";

/** Where a client puts its hub token when its `Authorization` belongs to the backend. */
export const HUB_TOKEN_HEADER = "X-Airlock-Token";

function acceptsSse(c: Context<WorkerContext>): boolean {
  return (c.req.header("Accept") ?? "").toLowerCase().includes("text/event-stream");
}

/**
 * Besides the protocol's sanitising: the hub token is the hub's alone, and
 * `Accept-Encoding` negotiated the client↔hub leg, not the agent↔backend one.
 */
const HUB_ONLY_HEADERS = new Set([HUB_TOKEN_HEADER.toLowerCase(), "accept-encoding", IDENTITY_HEADER.toLowerCase()]);

function clientHeaders(c: Context<WorkerContext>): HeaderMap {
  const headers = sanitizeClientHeaders(c.req.raw.headers, c.get("tunnel")?.pass_client_authorization ?? false);
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HUB_ONLY_HEADERS.has(name.toLowerCase())));
}

/**
 * The command's headers: the client's, with the trace context it sent in `_meta` (SEP-414)
 * moved into `traceparent`/`tracestate`, the one place the agent reads it from.
 */
async function commandHeaders(
  c: Context<WorkerContext>,
  message: JsonRpcMessage | undefined,
  channel: string,
): Promise<HeaderMap> {
  const headers = clientHeaders(c);
  const trace = clientTraceContext(headers, message);
  const traced = trace ? withTraceHeaders(headers, trace) : headers;
  // Who is calling, signed by the hub for the backend (off unless a signing key is set).
  const identity = await identityToken(c, channel);
  return identity ? { ...traced, [IDENTITY_HEADER]: [identity] } : traced;
}

/** One command as the ingress sends it: its JSON-RPC message, if any, and the body's policy decision for it. */
interface Command {
  kind: SubmitKind;
  channel: string;
  message?: JsonRpcMessage;
  decision?: PolicyDecision;
}

/**
 * Who is asking, for session binding: the digest of the credential that authenticated the
 * request — the client token (in `Authorization`, or `X-Airlock-Token` on pass-through
 * tunnels), or on a pass-through tunnel without hub tokens the `Authorization` the
 * backend will judge. An identity subject joins it once clients carry one.
 */
async function ownerOf(c: Context<WorkerContext>): Promise<SessionOwner> {
  const tunnel = c.get("tunnel");
  const hubToken = tunnel?.pass_client_authorization
    ? c.req.header(HUB_TOKEN_HEADER)
    : c.req.header("Authorization")?.replace(/^Bearer\s+/i, "");
  const credential =
    tunnel?.pass_client_authorization && tunnel.client_token_sha256.length === 0
      ? c.req.header("Authorization")
      : hubToken;
  return { credential: `sha256:${await secretDigest(credential ?? "")}` };
}

/**
 * Submit one command and read its events, with policy and audit around the hub
 * (relay/policy/ingress-guard.ts); a client that goes away cancels it.
 */
async function submitOne(
  c: Context<WorkerContext>,
  command: Command,
  options: IngressRendering,
  connection: string,
): Promise<ExchangeEvents> {
  return guardedSubmit(
    c,
    {
      owner: await ownerOf(c),
      tunnelId: c.get("tunnelId"),
      requestId: newRequestId(),
      connection,
      channel: command.channel,
      kind: command.kind,
      message: command.message,
      headers: await commandHeaders(c, command.message, command.channel),
      ...options,
    },
    command.decision,
  );
}

type IngressRendering = Omit<RenderOptions, "keepaliveMs">;

/** How a command's answer is rendered, from its message and the client's `Accept`. */
function rendering(message: JsonRpcMessage | undefined, acceptsSse: boolean): IngressRendering {
  const request = message !== undefined && isRequest(message) ? message : undefined;
  // The answer to initialize must carry the session id, known only from its final response.
  return { acceptsSse, rpcId: request?.id, holdUntilFinal: request?.method === "initialize" };
}

/** Submit one command and render its answer, once: JSON, SSE, or the hub's error envelope. */
async function answerOne(c: Context<WorkerContext>, command: Command, sse: boolean): Promise<Response> {
  const options = rendering(command.message, sse);
  const events = await submitOne(c, command, options, watchConnection(c));
  return renderExchange(events, { ...options, keepaliveMs: c.get("config").settings.sseKeepaliveMs });
}

/**
 * A JSON-RPC batch (MCP 2025-03-26): each element becomes its own command; the answers
 * are collected into one JSON array. A hub-level failure of any element (no agent, queue
 * full, timeout) answers the whole batch, since the client cannot tell which part ran.
 */
async function submitBatch(
  c: Context<WorkerContext>,
  channel: string,
  batch: JsonRpcMessage[],
  decisions: PolicyDecision[],
): Promise<Response> {
  const connection = watchConnection(c);
  const ends = await Promise.all(
    batch.map(async (message, index) =>
      finalOf(
        await submitOne(
          c,
          { kind: "jsonrpc", channel, message, decision: decisions[index] },
          rendering(message, false),
          connection,
        ),
      ),
    ),
  );
  const answers: JsonRpcMessage[] = [];
  for (const end of ends) {
    if (end.type === "failed") return errorResponse(end.error);
    const body = jsonBody(end);
    if (body !== undefined) answers.push(body);
  }
  if (answers.length === 0) return new Response(null, { status: 202 });
  return Response.json(answers);
}

function channelOf(c: Context<WorkerContext>): string | Response {
  const raw = c.req.param("channel");
  const channel = normalizeChannel(raw);
  return channel ?? fail(invalidChannel(raw ?? "", "MCP URL channel"));
}

/** The ingress routes, mounted at `/v1/mcp`. */
export function ingressApi(deps: WorkerDeps): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  // Browser-based clients (MCP Inspector) call the hub directly; tokens, not cookies, authenticate.
  app.use("*", allowParamHeaders());
  app.use(
    "*",
    cors({
      origin: "*",
      allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
      allowHeaders: [
        "Authorization",
        "Content-Type",
        "Accept",
        "Mcp-Session-Id",
        "Mcp-Protocol-Version",
        "Last-Event-ID",
        HUB_TOKEN_HEADER,
        ...MODERN_REQUEST_HEADERS,
      ],
      exposeHeaders: ["Mcp-Session-Id", "Mcp-Protocol-Version", "WWW-Authenticate"],
    }),
  );
  const clientTokens = (c: Context<WorkerContext>) => c.get("tunnel")?.client_token_sha256 ?? [];
  // One message for every tunnel, pass-through or not, existing or not (see credentialCheck).
  const message =
    "Missing or invalid client token for this tunnel: send Authorization: Bearer <client token>, or, where the tunnel " +
    `passes Authorization to the MCP server, the hub token in ${HUB_TOKEN_HEADER}.`;
  const bearerCheck = credentialCheck(clientTokens, { code: "invalid_api_key", message });
  const hubTokenCheck = credentialCheck(clientTokens, { header: HUB_TOKEN_HEADER, code: "invalid_api_key", message });
  for (const path of ["/:tunnel_id", "/:tunnel_id/:channel"]) {
    app.use(path, tunnelContext(deps));
    app.use(
      path,
      withIdentity(async (c, next) => {
        const tunnel = c.get("tunnel");
        if (!tunnel?.pass_client_authorization) return bearerCheck(c, next);
        // A pass-through tunnel without hub tokens leaves authentication to the MCP server itself.
        return tunnel.client_token_sha256.length === 0 ? next() : hubTokenCheck(c, next);
      }, HUB_TOKEN_HEADER),
    );
    app.use(
      path,
      sizeLimit((c) => c.get("config").settings.maxRequestBytes, "The MCP request body"),
    );
    app.use(path, traceIngress());

    app.post(path, async (c) => {
      const channel = channelOf(c);
      if (channel instanceof Response) return channel;
      const text = await c.req.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return fail({ status: 400, code: "invalid_json_payload", message: "The MCP request body is not valid JSON." });
      }
      if (Array.isArray(body)) {
        if (body.length === 0 || !body.every(isObject)) {
          return fail({
            status: 400,
            code: "invalid_json_payload",
            message: "A JSON-RPC batch must be a non-empty array of JSON objects.",
          });
        }
        const refused = eraRefusal(c, body);
        if (refused) return refused;
        const judged = await judgeIngressBody(c, channel, text, body);
        return judged instanceof Response ? judged : submitBatch(c, channel, body, judged);
      }
      if (!isObject(body)) {
        return fail({
          status: 400,
          code: "invalid_json_payload",
          message: "The MCP request body must be a JSON-RPC message (a JSON object) or a batch of them.",
        });
      }
      describeIngress(c, { ...callAttributes(body), [ATTR.channel]: channel });
      const refused = eraRefusal(c, body);
      if (refused) return refused;
      const judged = await judgeIngressBody(c, channel, text, body);
      if (judged instanceof Response) return judged;
      return answerOne(c, { kind: "jsonrpc", channel, message: body, decision: judged[0] }, acceptsSse(c));
    });

    app.delete(path, async (c) => {
      const channel = channelOf(c);
      if (channel instanceof Response) return channel;
      if (headerValue(clientHeaders(c), "Mcp-Session-Id") === undefined) {
        return fail({
          status: 400,
          code: "missing_mcp_session_id",
          message: "DELETE ends an MCP session: send the session's Mcp-Session-Id header.",
        });
      }
      return answerOne(c, { kind: "session_termination", channel }, false);
    });

    app.get(path, async (c) => {
      const channel = channelOf(c);
      if (channel instanceof Response) return channel;
      if (!acceptsSse(c)) {
        return fail({
          status: 406,
          code: null,
          message: "GET opens a server-sent event stream: send Accept: text/event-stream.",
        });
      }
      return answerOne(c, { kind: "stream_open", channel }, true);
    });
  }
  return app;
}
