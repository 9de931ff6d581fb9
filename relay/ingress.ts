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
import { watchConnection } from "./connection.ts";
import { credentialCheck, fail, sizeLimit, tunnelContext, type WorkerContext, type WorkerDeps } from "./context.ts";
import { invalidChannel } from "./errors.ts";
import { newRequestId, type SubmitKind } from "./hub/tunnel-state.ts";
import { allowParamHeaders, eraRefusal, MODERN_REQUEST_HEADERS } from "./mcp/era-check.ts";
import { guardedSubmit, judgeIngressBody } from "./policy/ingress-guard.ts";

/** Where a client puts its hub token when its `Authorization` belongs to the backend. */
export const HUB_TOKEN_HEADER = "X-Airlock-Token";

function acceptsSse(c: Context<WorkerContext>): boolean {
  return (c.req.header("Accept") ?? "").toLowerCase().includes("text/event-stream");
}

/**
 * Besides the protocol's sanitising: the hub token is the hub's alone, and
 * `Accept-Encoding` negotiated the client↔hub leg, not the agent↔backend one.
 */
const HUB_ONLY_HEADERS = new Set([HUB_TOKEN_HEADER.toLowerCase(), "accept-encoding"]);

function clientHeaders(c: Context<WorkerContext>): HeaderMap {
  const headers = sanitizeClientHeaders(c.req.raw.headers, c.get("tunnel")?.pass_client_authorization ?? false);
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HUB_ONLY_HEADERS.has(name.toLowerCase())));
}

/**
 * Submit one command and answer with what the hub renders; a client that goes away cancels it.
 * Policy and audit wrap the hub (relay/policy/ingress-guard.ts).
 */
async function submitOne(c: Context<WorkerContext>, kind: SubmitKind, channel: string, message: JsonRpcMessage | undefined, sse: boolean, connection: string): Promise<Response> {
  return guardedSubmit(c, {
    tunnelId: c.get("tunnelId"),
    requestId: newRequestId(),
    connection,
    channel,
    kind,
    message,
    headers: clientHeaders(c),
    acceptsSse: sse,
    rpcId: message && isRequest(message) ? message.id : undefined,
  });
}

/**
 * A JSON-RPC batch (MCP 2025-03-26): each element becomes its own command; the answers
 * are collected into one JSON array. A hub-level failure of any element (no agent, queue
 * full, timeout) answers the whole batch, since the client cannot tell which part ran.
 */
async function submitBatch(c: Context<WorkerContext>, channel: string, batch: JsonRpcMessage[]): Promise<Response> {
  const connection = watchConnection(c);
  const responses = await Promise.all(batch.map((message) => submitOne(c, "jsonrpc", channel, message, false, connection)));
  const answers: unknown[] = [];
  for (const response of responses) {
    const text = await response.text();
    if (text === "") continue;
    const body: unknown = JSON.parse(text);
    if (response.status >= 400 && isObject(body) && !("jsonrpc" in body)) {
      return new Response(text, { status: response.status, headers: response.headers });
    }
    answers.push(body);
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
  app.use("*", cors({
    origin: "*",
    allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
    allowHeaders: ["Authorization", "Content-Type", "Accept", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-ID", HUB_TOKEN_HEADER, ...MODERN_REQUEST_HEADERS],
    exposeHeaders: ["Mcp-Session-Id", "Mcp-Protocol-Version", "WWW-Authenticate"],
  }));
  const clientTokens = (c: Context<WorkerContext>) => c.get("tunnel")?.client_token_sha256 ?? [];
  const wrong = "The client token is not valid for this tunnel, or the hub has no such tunnel.";
  const bearerCheck = credentialCheck(clientTokens, {
    code: "invalid_api_key",
    missing: "Missing client token: send Authorization: Bearer <client token> for this tunnel.",
    wrong,
  });
  const hubTokenCheck = credentialCheck(clientTokens, {
    header: HUB_TOKEN_HEADER,
    code: "invalid_api_key",
    missing: `Missing hub token: this tunnel passes Authorization to the MCP server, so send the hub token in ${HUB_TOKEN_HEADER}.`,
    wrong,
  });
  for (const path of ["/:tunnel_id", "/:tunnel_id/:channel"]) {
    app.use(path, tunnelContext(deps));
    app.use(path, async (c, next) => {
      const tunnel = c.get("tunnel");
      if (!tunnel?.pass_client_authorization) return bearerCheck(c, next);
      // A pass-through tunnel without hub tokens leaves authentication to the MCP server itself.
      return tunnel.client_token_sha256.length === 0 ? next() : hubTokenCheck(c, next);
    });
    app.use(path, sizeLimit((c) => c.get("config").settings.maxRequestBytes, "The MCP request body"));

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
          return fail({ status: 400, code: "invalid_json_payload", message: "A JSON-RPC batch must be a non-empty array of JSON objects." });
        }
        return eraRefusal(c, body) ?? (await judgeIngressBody(c, channel, text, body)) ?? submitBatch(c, channel, body);
      }
      if (!isObject(body)) {
        return fail({ status: 400, code: "invalid_json_payload", message: "The MCP request body must be a JSON-RPC message (a JSON object) or a batch of them." });
      }
      const refusal = eraRefusal(c, body) ?? await judgeIngressBody(c, channel, text, body);
      if (refusal) return refusal;
      return submitOne(c, "jsonrpc", channel, body, acceptsSse(c), watchConnection(c));
    });

    app.delete(path, async (c) => {
      const channel = channelOf(c);
      if (channel instanceof Response) return channel;
      if (headerValue(clientHeaders(c), "Mcp-Session-Id") === undefined) {
        return fail({ status: 400, code: "missing_mcp_session_id", message: "DELETE ends an MCP session: send the session's Mcp-Session-Id header." });
      }
      return submitOne(c, "session_termination", channel, undefined, false, watchConnection(c));
    });

    app.get(path, async (c) => {
      const channel = channelOf(c);
      if (channel instanceof Response) return channel;
      if (!acceptsSse(c)) {
        return fail({ status: 406, code: null, message: "GET opens a server-sent event stream: send Accept: text/event-stream." });
      }
      return submitOne(c, "stream_open", channel, undefined, true, watchConnection(c));
    });
  }
  return app;
}
