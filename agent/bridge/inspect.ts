/**
 * Asking a configured backend what it is, for `doctor` and `airlock routes`, the way a
 * 2026-07-28 client does: `server/discover`, then every page of `tools/list`, each request
 * stateless with the modern envelope. No protocol version is written here: the backend is
 * the era bridge around the server (backends/factory.ts), which answers for a legacy
 * server from its own `initialize`, and afterwards says in its health which era the server
 * itself speaks. So a 2026-only server and a 2025 one pass the same way.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { SERVER_INFO_META_KEY } from "../../shared/mcp/era.ts";
import type { Backend, BackendHealth, ExchangeResult } from "../backends/types.ts";
import { withEnvelope } from "./translate.ts";

/** What a backend said about itself. */
export interface ServerDescription {
  /** `serverInfo` (name, version) from the discover result's `_meta`. */
  serverInfo: Record<string, unknown>;
  /** The era the server itself speaks, as the bridge found it (undefined for an aggregate's members: see their health). */
  era?: BackendHealth["era"];
}

/** A request failed: the backend's answer (for the caller's diagnosis) and a sentence saying why. */
export interface Refusal {
  answer: ExchangeResult;
  why: string;
}

/** A 2026-07-28 request from `client` (stateless: the envelope carries the client's declaration). */
export function modernRequest(
  id: number,
  method: string,
  params: Record<string, unknown>,
  client: string,
  version: string,
): JsonRpcMessage {
  return withEnvelope(
    { jsonrpc: "2.0", id, method, params },
    { capabilities: {}, clientInfo: { name: client, version } },
  );
}

/** The result of one modern request, or why there is none. */
async function ask(
  backend: Backend,
  message: JsonRpcMessage,
  signal: AbortSignal,
): Promise<Record<string, unknown> | Refusal> {
  const answer = await backend.exchange({ message, headers: {}, signal, notify: () => {} });
  const method = String(message.method);
  if (answer.kind === "failure")
    return {
      answer,
      why: `${method} failed: ${answer.failure.source}${answer.failure.kind ? `/${answer.failure.kind}` : ""}${answer.detail ? ` (${answer.detail})` : ""}`,
    };
  if (answer.kind === "cancelled") return { answer, why: `${method} was cancelled` };
  if (answer.kind !== "response") return { answer, why: `${method} got no answer (HTTP ${answer.status})` };
  if (isObject(answer.message.result)) return answer.message.result;
  const error = answer.message.error;
  return {
    answer,
    why: `${method} failed: ${isObject(error) ? `error ${String(error.code)}: ${String(error.message)}` : "no result"}`,
  };
}

export function isRefusal(value: unknown): value is Refusal {
  return isObject(value) && "why" in value && "answer" in value;
}

/** `server/discover` through the bridge: the server's info, and its own era once the bridge knows it. */
export async function describeServer(
  backend: Backend,
  signal: AbortSignal,
  client: { name: string; version: string },
): Promise<ServerDescription | Refusal> {
  const result = await ask(backend, modernRequest(1, "server/discover", {}, client.name, client.version), signal);
  if (isRefusal(result)) return result;
  const meta = isObject(result._meta) ? result._meta : {};
  const serverInfo = isObject(meta[SERVER_INFO_META_KEY]) ? meta[SERVER_INFO_META_KEY] : {};
  const era = backend.health().era;
  return era === undefined ? { serverInfo } : { serverInfo, era };
}

/** Every page of `tools/list` (at most 100 pages): the tool names, or why not. */
export async function toolNames(
  backend: Backend,
  signal: AbortSignal,
  client: { name: string; version: string },
): Promise<string[] | Refusal> {
  const names: string[] = [];
  let cursor: unknown;
  for (let page = 0; page < 100; page++) {
    const params = typeof cursor === "string" ? { cursor } : {};
    const result = await ask(
      backend,
      modernRequest(2 + page, "tools/list", params, client.name, client.version),
      signal,
    );
    if (isRefusal(result)) return result;
    if (Array.isArray(result.tools))
      for (const tool of result.tools) if (isObject(tool) && typeof tool.name === "string") names.push(tool.name);
    cursor = result.nextCursor;
    if (typeof cursor !== "string") break;
  }
  return names;
}

/** An era as `doctor` and `routes` print it. */
export function eraWords(era: BackendHealth["era"]): string {
  if (era === "modern") return "a 2026-07-28 server; 2025-era clients are bridged";
  if (era === "legacy") return "a 2025-era server; 2026-07-28 clients are bridged";
  return "era unknown";
}
