/**
 * What changes on a message crossing from the modern era (2026-07-28) to a legacy server
 * and back: the per-request envelope leaves `_meta` (a legacy server took those facts from
 * `initialize`), the modern headers leave the request, and each result gains what a modern
 * client requires of it (`resultType`, the server's info in `_meta`, cache hints on list
 * and read results). `server/discover` is answered from the legacy `initialize` result.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { isObject, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import {
  claimedVersion,
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  encodeHeaderParam,
  FIRST_MODERN_VERSION,
  LOG_LEVEL_META_KEY,
  MCP_METHOD_HEADER,
  MCP_NAME_HEADER,
  MCP_PARAM_HEADER_PREFIX,
  MCP_PROTOCOL_VERSION_HEADER,
  nameHeaderValue,
  PROTOCOL_VERSION_META_KEY,
  SERVER_INFO_META_KEY,
} from "../../shared/mcp/era.ts";

const ENVELOPE_KEYS = [
  PROTOCOL_VERSION_META_KEY,
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
];

/** The message without the modern envelope in `_meta` (other `_meta`, such as a progress token, stays). */
export function withoutEnvelope(message: JsonRpcMessage): JsonRpcMessage {
  const params = message.params;
  if (!isObject(params) || !isObject(params._meta)) return message;
  const meta = Object.fromEntries(Object.entries(params._meta).filter(([key]) => !ENVELOPE_KEYS.includes(key)));
  const { _meta: _dropped, ...rest } = params;
  return { ...message, params: Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest };
}

const MODERN_HEADERS = new Set(
  [MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PROTOCOL_VERSION_HEADER, "Mcp-Session-Id"].map((name) => name.toLowerCase()),
);

/** The client's headers for the legacy server: the modern mirrors go, the legacy session's own (`session`) come in. */
export function legacyHeaders(headers: HeaderMap, session: HeaderMap): HeaderMap {
  const kept = Object.entries(headers).filter(([name]) => {
    const lower = name.toLowerCase();
    return !MODERN_HEADERS.has(lower) && !lower.startsWith(MCP_PARAM_HEADER_PREFIX.toLowerCase());
  });
  return { ...Object.fromEntries(kept), ...session };
}

/** The legacy session's headers a modern client must not see (it has no session). */
export function modernResponseHeaders(headers: HeaderMap): HeaderMap {
  return Object.fromEntries(
    Object.entries(headers).filter(
      ([name]) => !["mcp-session-id", "mcp-protocol-version"].includes(name.toLowerCase()),
    ),
  );
}

/**
 * Results the modern era makes cacheable (SEP-2549): they must say for how long and for whom.
 * A legacy server says nothing of it, so the bridge claims the least: not cacheable, private.
 */
const CACHEABLE = new Set([
  "tools/list",
  "prompts/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
]);
const NO_CACHE = { ttlMs: 0, cacheScope: "private" } as const;

/** A legacy answer to `method` as a modern client expects it; errors pass as they are. */
export function modernAnswer(method: string, answer: JsonRpcMessage, serverInfo: unknown): JsonRpcMessage {
  const result = answer.result;
  if (!isObject(result)) return answer;
  const meta = isObject(result._meta) ? result._meta : {};
  return {
    ...answer,
    result: {
      ...(CACHEABLE.has(method) ? NO_CACHE : {}),
      ...result,
      resultType: "complete",
      ...(serverInfo === undefined ? {} : { _meta: { [SERVER_INFO_META_KEY]: serverInfo, ...meta } }),
    },
  };
}

/**
 * The capabilities a modern client may see of a legacy server: what the bridge serves.
 * `listChanged` and `subscribe` stay: the bridge serves `subscriptions/listen` from the
 * session's standalone stream and `resources/subscribe` (listen.ts).
 */
function modernCapabilities(capabilities: unknown): Record<string, unknown> {
  if (!isObject(capabilities)) return {};
  const out: Record<string, unknown> = {};
  for (const key of ["experimental", "logging", "completions", "prompts", "resources", "tools", "extensions"]) {
    const value = capabilities[key];
    if (isObject(value)) out[key] = value;
  }
  return out;
}

/** `server/discover`'s result for a legacy server, from its `initialize` result. */
export function discoverResult(
  initialize: Record<string, unknown>,
  versions: readonly string[],
): Record<string, unknown> {
  const result: Record<string, unknown> = {
    ...NO_CACHE,
    resultType: "complete",
    supportedVersions: [...versions],
    capabilities: modernCapabilities(initialize.capabilities),
  };
  if (typeof initialize.instructions === "string") result.instructions = initialize.instructions;
  if (initialize.serverInfo !== undefined) result._meta = { [SERVER_INFO_META_KEY]: initialize.serverInfo };
  return result;
}

/**
 * The client capabilities a legacy session is opened with: what the modern client declares.
 * Sampling, elicitation and roots included, so a legacy server asks (and offers the tools
 * that ask) exactly when the client can answer: the bridge turns its questions into
 * `input_required` rounds (mrtr.ts).
 */
export function legacyClientCapabilities(declared: unknown): Record<string, unknown> {
  return isObject(declared) ? declared : {};
}

/** What a modern request declares about its client (the `_meta` envelope). */
export interface Declaration {
  capabilities: Record<string, unknown>;
  clientInfo: Record<string, unknown>;
}

/** The message with the modern envelope in `_meta` (a legacy client's request, made stateless). */
export function withEnvelope(message: JsonRpcMessage, declaration: Declaration): JsonRpcMessage {
  const params = isObject(message.params) ? message.params : {};
  const meta = isObject(params._meta) ? params._meta : {};
  return {
    ...message,
    params: {
      ...params,
      _meta: {
        ...meta,
        [PROTOCOL_VERSION_META_KEY]: FIRST_MODERN_VERSION,
        [CLIENT_CAPABILITIES_META_KEY]: declaration.capabilities,
        [CLIENT_INFO_META_KEY]: declaration.clientInfo,
      },
    },
  };
}

/**
 * The headers a modern server requires, mirrored from the body (the hub checked any the client
 * sent against it; the OpenAI path may carry none); a legacy session's id goes.
 */
export function modernRequestHeaders(message: JsonRpcMessage, headers: HeaderMap): HeaderMap {
  const kept = Object.entries(headers).filter(([name]) => !MODERN_HEADERS.has(name.toLowerCase()));
  const out: HeaderMap = {
    ...Object.fromEntries(kept),
    [MCP_PROTOCOL_VERSION_HEADER]: [claimedVersion(message) ?? FIRST_MODERN_VERSION],
  };
  if (typeof message.method === "string") out[MCP_METHOD_HEADER] = [message.method];
  const name = nameHeaderValue(message);
  if (name !== undefined) out[MCP_NAME_HEADER] = [encodeHeaderParam(name)];
  return out;
}
