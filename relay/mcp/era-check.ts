/**
 * The modern (2026-07-28) era at the hub's MCP ingress: a stateless request needs no
 * session, but its `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers must agree
 * with its body before policy, audit or an agent see it (shared/mcp/era.ts holds the
 * rules). Browser clients send those headers, and `Mcp-Param-*` ones, so CORS allows them.
 */
import type { Context, MiddlewareHandler } from "hono";
import { isObject, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import {
  checkEraHeaders,
  claimedVersion,
  MCP_METHOD_HEADER,
  MCP_NAME_HEADER,
  MCP_PARAM_HEADER_PREFIX,
  MCP_PROTOCOL_VERSION_HEADER,
  refusalMessage,
} from "../../shared/mcp/era.ts";
import type { WorkerContext } from "../context.ts";

/** The modern headers a browser client may send (next to the legacy ones the ingress allows). */
export const MODERN_REQUEST_HEADERS = [MCP_PROTOCOL_VERSION_HEADER, MCP_METHOD_HEADER, MCP_NAME_HEADER] as const;

/**
 * The spec's answer when a POSTed body and its headers disagree, or names a revision the
 * hub cannot serve; `undefined` when the message may go on. A batch may not hold modern
 * requests (batches ended with 2025-06-18; the modern era never had them).
 */
export function eraRefusal(c: Context<WorkerContext>, body: JsonRpcMessage | JsonRpcMessage[]): Response | undefined {
  if (Array.isArray(body)) {
    if (!body.some((element) => isObject(element) && claimedVersion(element) !== undefined)) return undefined;
    const message = "Bad Request: JSON-RPC batches may not contain requests for protocol revision 2026-07-28 or later.";
    return Response.json({ jsonrpc: "2.0", id: null, error: { code: -32600, message } }, { status: 400 });
  }
  const refusal = checkEraHeaders(body, (name) => c.req.header(name));
  if (!refusal) return undefined;
  return Response.json(refusalMessage(refusal, body.id), { status: refusal.status });
}

/**
 * Let a CORS preflight through with the `Mcp-Param-*` headers it asks for: their names are
 * the tool's own (`x-mcp-header`), so no fixed list can hold them. Wraps the cors middleware.
 */
export function allowParamHeaders(): MiddlewareHandler<WorkerContext> {
  const prefix = MCP_PARAM_HEADER_PREFIX.toLowerCase();
  return async (c, next) => {
    await next();
    if (c.req.method !== "OPTIONS") return;
    const asked = (c.req.header("Access-Control-Request-Headers") ?? "")
      .split(",")
      .map((name) => name.trim())
      .filter((name) => name.toLowerCase().startsWith(prefix));
    const allowed = c.res.headers.get("Access-Control-Allow-Headers");
    if (asked.length === 0 || allowed === null) return;
    c.res.headers.set("Access-Control-Allow-Headers", [allowed, ...asked].join(","));
  };
}
