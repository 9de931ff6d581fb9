/**
 * One set of span names and attributes for the hub (Worker) and the agent, so a trace
 * reads the same whichever side recorded a span. Attribute keys follow the OpenTelemetry
 * semantic conventions where they exist: MCP (`mcp.method.name`), GenAI
 * (`gen_ai.tool.name`), JSON-RPC (`jsonrpc.request.id`), RPC (`rpc.system.name`); the
 * rest are Airlock's own, under `airlock.`.
 *
 * What never becomes an attribute: arguments, results, resource URIs, headers, session
 * ids (on a hub without session binding an `Mcp-Session-Id` is a capability) and
 * tokens. A trace backend is read by more people than the audit log.
 */
import { isObject, isRequest } from "../jsonrpc.ts";

/** Span names, one per step of a call's trip. */
export const SPAN = {
  /** Hub: the client's HTTP request at `/v1/mcp/...`, from arrival to the answer's headers. */
  ingress: "airlock.hub.ingress",
  /** Hub: the policy's judgement of the request. */
  policy: "airlock.hub.policy",
  /** Hub: appending the request's record to the audit log. */
  auditAppend: "airlock.hub.audit_append",
  /** Hub: from queueing the command for an agent to its answer. Its span id is the agent's parent. */
  handoff: "airlock.hub.handoff",
  /** Hub: the command waiting in the tunnel's queue until a poll takes it. */
  hubQueueWait: "airlock.hub.queue_wait",
  /** Agent: one command, from the poll that brought it to its last post. */
  dispatch: "airlock.agent.dispatch",
  /** Agent: the command waiting for a worker slot. */
  agentQueueWait: "airlock.agent.queue_wait",
  /** Agent: running the command (routing, the backend, the answer's post). */
  execute: "airlock.agent.execute",
  /** Agent: which backend serves the command's channel. */
  route: "airlock.agent.route",
  /** Agent: one exchange with one MCP server (stdio or HTTP); a routing table's members each get theirs. */
  backendExchange: "airlock.agent.backend_exchange",
  /** Agent: one response post to the control plane. */
  post: "airlock.agent.post",
} as const;

/** Attribute keys. */
export const ATTR = {
  rpcSystem: "rpc.system.name",
  mcpMethod: "mcp.method.name",
  toolName: "gen_ai.tool.name",
  jsonrpcRequestId: "jsonrpc.request.id",
  networkTransport: "network.transport",
  httpStatus: "http.response.status_code",
  errorType: "error.type",
  tunnel: "airlock.tunnel.id",
  channel: "airlock.channel",
  requestId: "airlock.request_id",
  commandType: "airlock.command.type",
  backend: "airlock.backend.name",
  backendTransport: "airlock.backend.transport",
  policyDecision: "airlock.policy.decision",
  policyRule: "airlock.policy.rule",
  outcome: "airlock.outcome",
  postKind: "airlock.post.kind",
} as const;

export type SpanAttributes = Record<string, string | number | boolean>;

/**
 * What a JSON-RPC message says about the call, as attributes: the method, and for
 * `tools/call` / `prompts/get` the name (never the arguments).
 */
export function callAttributes(message: unknown): SpanAttributes {
  if (!isObject(message) || typeof message.method !== "string") return {};
  const out: SpanAttributes = { [ATTR.rpcSystem]: "jsonrpc", [ATTR.mcpMethod]: message.method };
  if (isRequest(message)) out[ATTR.jsonrpcRequestId] = String(message.id);
  const params = isObject(message.params) ? message.params : {};
  if (message.method === "tools/call" && typeof params.name === "string") out[ATTR.toolName] = params.name;
  return out;
}
