/**
 * The client's requests in an aggregated session: each method either fans out (`lists.ts`)
 * or is routed by namespace to one backend with the name un-prefixed (`tools/call`,
 * `prompts/get`, resources by `airlock://<backend>/` URI, completions by their reference).
 * A backend that lost its session (HTTP 404, or a 400 about its session id) is
 * re-initialised and asked once more: its lost session is not the client's.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { ExchangeResult } from "../backends/types.ts";
import { answer, readySlot, relay, request, rpcError, unavailable } from "./channel.ts";
import type { CallContext, Channel } from "./channel.ts";
import { join } from "./join.ts";
import { fanOut, list } from "./lists.ts";
import type { Member } from "./member.ts";
import { mapContentUris, mapUri, splitNamespaced, unmapUri } from "./names.ts";

type ClientRequest = JsonRpcMessage & { id: JsonRpcId; method: string };
type ResultMap = (result: Record<string, unknown>) => unknown;

/** Answer one request of the client's session. */
export async function serve(channel: Channel, ctx: CallContext, message: ClientRequest): Promise<ExchangeResult> {
  const params = isObject(message.params) ? message.params : {};
  switch (message.method) {
    case "ping":
      await fanOut(channel, ctx, "ping", {}, () => true);
      return answer(message.id, {});
    case "logging/setLevel":
      await fanOut(channel, ctx, "logging/setLevel", params, (slot) => isObject(slot.capabilities.logging));
      return answer(message.id, {});
    case "tools/list":
    case "prompts/list":
    case "resources/list":
    case "resources/templates/list":
      return list(channel, ctx, message.id, message.method, params);
    case "tools/call":
      return byName(channel, ctx, message, params, "tool");
    case "prompts/get":
      return byName(channel, ctx, message, params, "prompt");
    case "resources/read":
    case "resources/subscribe":
    case "resources/unsubscribe":
      return byUri(channel, ctx, message, params);
    case "completion/complete":
      return completion(channel, ctx, message, params);
    default:
      return rpcError(
        message.id,
        -32601,
        `Method not found: ${message.method} (channel ${channel.name} aggregates ${channel.order.join(", ")} and does not route it)`,
      );
  }
}

/**
 * Send the client's request to one backend with rewritten params and relay its answer.
 * A backend that lost its session (HTTP 404) is re-initialised and asked once more.
 */
async function forward(
  channel: Channel,
  ctx: CallContext,
  message: ClientRequest,
  member: Member,
  params: Record<string, unknown>,
  map?: ResultMap,
): Promise<ExchangeResult> {
  for (let attempt = 0; ; attempt++) {
    let slot = ctx.session.members.get(member.name);
    if (slot?.state === "failed" && slot.retryAt <= channel.now()) {
      await join(channel, member, ctx);
      slot = ctx.session.members.get(member.name);
    }
    if (slot?.state === "failed") return unavailable(channel, slot, member.name);
    if (slot?.state !== "ready")
      return { kind: "failure", failure: { source: "connect" }, detail: `backend ${member.name} has no session` };
    const result = await request(channel, member, slot, message.method, params, ctx);
    const lost = slot.sessionId !== undefined && sessionLost(result);
    if (!lost || attempt > 0) return relay(message.id, result, map);
    channel.log.info("backend lost its session; opening a new one", { backend: member.name, session: ctx.session.id });
    ctx.session.members.set(member.name, { state: "new" });
    await join(channel, member, ctx);
    if (!readySlot(ctx.session, member.name)) {
      const failed = ctx.session.members.get(member.name);
      return failed?.state === "failed" ? unavailable(channel, failed, member.name) : relay(message.id, result, map);
    }
  }
}

async function byName(
  channel: Channel,
  ctx: CallContext,
  message: ClientRequest,
  params: Record<string, unknown>,
  kind: "tool" | "prompt",
): Promise<ExchangeResult> {
  const name = params.name;
  if (typeof name !== "string")
    return rpcError(message.id, -32602, `Invalid params: ${message.method} needs params.name`);
  const target = splitNamespaced(name);
  const member = target ? channel.members.get(target.backend) : undefined;
  if (!target || !member || (kind === "tool" && !member.tools.allows(target.name))) {
    return rpcError(
      message.id,
      -32602,
      `Unknown ${kind}: ${name} (channel ${channel.name} names ${kind}s <backend>__<name>, backends: ${channel.order.join(", ")})`,
    );
  }
  const map = kind === "tool" ? mapToolResult(member.name) : mapPromptResult(member.name);
  return forward(channel, ctx, message, member, { ...params, name: target.name }, map);
}

async function byUri(
  channel: Channel,
  ctx: CallContext,
  message: ClientRequest,
  params: Record<string, unknown>,
): Promise<ExchangeResult> {
  const uri = params.uri;
  if (typeof uri !== "string")
    return rpcError(message.id, -32602, `Invalid params: ${message.method} needs params.uri`);
  const target = unmapUri(uri);
  const member = target ? channel.members.get(target.backend) : undefined;
  if (!target || !member)
    return rpcError(
      message.id,
      -32602,
      `Unknown resource: ${uri} (channel ${channel.name} serves resources as airlock://<backend>/<uri>, backends: ${channel.order.join(", ")})`,
    );
  const map = message.method === "resources/read" ? mapReadResult(member.name) : undefined;
  return forward(channel, ctx, message, member, { ...params, uri: target.uri }, map);
}

async function completion(
  channel: Channel,
  ctx: CallContext,
  message: ClientRequest,
  params: Record<string, unknown>,
): Promise<ExchangeResult> {
  const ref = isObject(params.ref) ? params.ref : {};
  if (ref.type === "ref/prompt" && typeof ref.name === "string") {
    const target = splitNamespaced(ref.name);
    const member = target ? channel.members.get(target.backend) : undefined;
    if (!target || !member) return rpcError(message.id, -32602, `Unknown prompt: ${ref.name}`);
    return forward(channel, ctx, message, member, { ...params, ref: { ...ref, name: target.name } });
  }
  if (ref.type === "ref/resource" && typeof ref.uri === "string") {
    const target = unmapUri(ref.uri);
    const member = target ? channel.members.get(target.backend) : undefined;
    if (!target || !member) return rpcError(message.id, -32602, `Unknown resource: ${ref.uri}`);
    return forward(channel, ctx, message, member, { ...params, ref: { ...ref, uri: target.uri } });
  }
  return rpcError(
    message.id,
    -32602,
    "Invalid params: completion/complete needs ref {type: ref/prompt, name} or {type: ref/resource, uri}",
  );
}

/**
 * Did an HTTP backend refuse the call because it no longer knows the session? MCP says
 * 404; some servers (server-everything among them) answer 400 with a JSON-RPC error about
 * the session id instead.
 */
function sessionLost(result: ExchangeResult): boolean {
  if (result.kind !== "response") return false;
  if (result.status === 404) return true;
  const error = result.message.error;
  return (
    result.status === 400 && isObject(error) && typeof error.message === "string" && /session/i.test(error.message)
  );
}

function mapToolResult(backend: string): ResultMap {
  return (result) =>
    Array.isArray(result.content)
      ? { ...result, content: result.content.map((item) => mapContentUris(backend, item)) }
      : result;
}

function mapPromptResult(backend: string): ResultMap {
  return (result) =>
    Array.isArray(result.messages)
      ? {
          ...result,
          messages: result.messages.map((m) =>
            isObject(m) ? { ...m, content: mapContentUris(backend, m.content) } : m,
          ),
        }
      : result;
}

function mapReadResult(backend: string): ResultMap {
  return (result) =>
    Array.isArray(result.contents)
      ? {
          ...result,
          contents: result.contents.map((c) =>
            isObject(c) && typeof c.uri === "string" ? { ...c, uri: mapUri(backend, c.uri) } : c,
          ),
        }
      : result;
}
