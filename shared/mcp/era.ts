/**
 * The two generations of MCP, kept once for the hub and the agent.
 *
 * Legacy (2024-11-05 … 2025-11-25): an `initialize` handshake, then requests on a session.
 * Modern (2026-07-28 on): stateless; every request names its protocol version, client
 * capabilities and client info in `_meta`, and on Streamable HTTP mirrors the version,
 * the method and (for calls, gets and reads) the name in headers that must match the body
 * (SEP-2243). The era of a message is decided by its body, never by its headers alone, so
 * a proxy that drops a header cannot change it.
 */
import { isObject, isRequest, type JsonRpcMessage } from "../jsonrpc.ts";

export const PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion";
export const CLIENT_CAPABILITIES_META_KEY = "io.modelcontextprotocol/clientCapabilities";
export const CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo";
export const SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo";
export const LOG_LEVEL_META_KEY = "io.modelcontextprotocol/logLevel";
/** On every notification of a `subscriptions/listen` stream (and its closing result): the listen request's id. */
export const SUBSCRIPTION_ID_META_KEY = "io.modelcontextprotocol/subscriptionId";

/** The first modern revision; revisions are ISO dates, so string order is time order. */
export const FIRST_MODERN_VERSION = "2026-07-28";
/** Modern revisions Airlock understands (and bridges to legacy servers). */
export const MODERN_VERSIONS = [FIRST_MODERN_VERSION] as const;
/** Legacy revisions, newest first: the one Airlock opens a legacy session with comes first. */
export const LEGACY_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"] as const;

/** JSON-RPC error codes of the modern era. */
export const HEADER_MISMATCH = -32020;
export const UNSUPPORTED_PROTOCOL_VERSION = -32022;

export const MCP_METHOD_HEADER = "Mcp-Method";
export const MCP_NAME_HEADER = "Mcp-Name";
export const MCP_PROTOCOL_VERSION_HEADER = "MCP-Protocol-Version";
/** Tool parameters a modern client mirrors into headers (`Mcp-Param-{Name}`); a prefix, not a list. */
export const MCP_PARAM_HEADER_PREFIX = "Mcp-Param-";

export function isModernVersion(version: string): boolean {
  return version >= FIRST_MODERN_VERSION;
}

/** The `_meta` of a message's params, when it has one. */
export function metaOf(message: JsonRpcMessage): Record<string, unknown> | undefined {
  const params = message.params;
  if (!isObject(params) || !isObject(params._meta)) return undefined;
  return params._meta;
}

/**
 * The protocol version a message's `_meta` claims (the modern envelope), or `undefined`
 * when it claims none: then it is a legacy message. A non-string claim is `""`.
 */
export function claimedVersion(message: JsonRpcMessage): string | undefined {
  const meta = metaOf(message);
  if (!meta || !(PROTOCOL_VERSION_META_KEY in meta)) return undefined;
  const version = meta[PROTOCOL_VERSION_META_KEY];
  return typeof version === "string" ? version : "";
}

/** True when the message carries a modern envelope (a claim naming a 2026-07-28+ revision). */
export function isModernMessage(message: JsonRpcMessage): boolean {
  const version = claimedVersion(message);
  return version !== undefined && isModernVersion(version);
}

/**
 * Requests whose answer is a stream that lives until the client or the server ends it
 * (`subscriptions/listen`, the modern era's GET stream): no response deadline applies.
 */
export function isLongLivedRequest(message: JsonRpcMessage | undefined): boolean {
  return (
    message !== undefined && isRequest(message) && message.method === "subscriptions/listen" && isModernMessage(message)
  );
}

/** The body field `Mcp-Name` mirrors for a method (SEP-2243 and SEP-2663's tasks rows). */
const NAME_SOURCE: Readonly<Record<string, string>> = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
  "tasks/get": "taskId",
  "tasks/update": "taskId",
  "tasks/cancel": "taskId",
};

/** The value `Mcp-Name` must carry for `message`: `undefined` when the method has none (or the body lacks it). */
export function nameHeaderValue(message: JsonRpcMessage): string | undefined {
  const field =
    typeof message.method === "string" && Object.hasOwn(NAME_SOURCE, message.method)
      ? NAME_SOURCE[message.method]
      : undefined;
  if (field === undefined || !isObject(message.params)) return undefined;
  const value = message.params[field];
  return typeof value === "string" ? value : undefined;
}

const BASE64_PREFIX = "=?base64?";
const BASE64_SUFFIX = "?=";
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * An `Mcp-Name` / `Mcp-Param-*` value as text: values that are not plain header text travel
 * as `=?base64?…?=` (UTF-8). `undefined` when that wrapper holds no canonical Base64 / UTF-8.
 */
export function decodeHeaderParam(value: string): string | undefined {
  if (!(value.startsWith(BASE64_PREFIX) && value.endsWith(BASE64_SUFFIX))) return value;
  const base64 = value.slice(BASE64_PREFIX.length, value.length - BASE64_SUFFIX.length);
  if (!CANONICAL_BASE64.test(base64)) return undefined;
  try {
    const bytes = Uint8Array.from(atob(base64), (char) => char.codePointAt(0)!);
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** A value as an `Mcp-Name` / `Mcp-Param-*` header carries it: plain when it is safe header text, else `=?base64?…?=`. */
export function encodeHeaderParam(value: string): string {
  const plain =
    /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(value) &&
    !(value.startsWith(BASE64_PREFIX) && value.endsWith(BASE64_SUFFIX));
  if (plain) return value;
  const bytes = new TextEncoder().encode(value);
  return `${BASE64_PREFIX}${btoa(String.fromCodePoint(...bytes))}${BASE64_SUFFIX}`;
}

/** A refusal in the modern era's terms: the HTTP status and the JSON-RPC error to answer with. */
export interface EraRefusal {
  status: number;
  code: number;
  message: string;
  data?: Record<string, unknown>;
}

/** What the era check reads: a header by name (case-insensitive), `undefined` when absent. */
export type HeaderLookup = (name: string) => string | undefined;

function mismatch(header: string, body: string): EraRefusal {
  return {
    status: 400,
    code: HEADER_MISMATCH,
    message: `Bad Request: the request headers and body disagree: ${body}`,
    data: { mismatch: { header, body } },
  };
}

/** The versions an `UnsupportedProtocolVersion` error offers, so a client can pick one. */
export function supportedVersions(): string[] {
  return [...MODERN_VERSIONS, ...LEGACY_VERSIONS];
}

function unsupported(requested: string): EraRefusal {
  return {
    status: 400,
    code: UNSUPPORTED_PROTOCOL_VERSION,
    message: `Unsupported protocol version ${requested.slice(0, 40) || "(not a string)"}: Airlock serves ${supportedVersions().join(", ")}.`,
    data: { supported: supportedVersions(), requested },
  };
}

/**
 * The Streamable HTTP checks of one POSTed message, as a modern server does them: the
 * body's claimed version must be one Airlock knows (−32022), and the `MCP-Protocol-Version`,
 * `Mcp-Method` and `Mcp-Name` headers must be present on a modern request and agree with
 * the body (−32020). A modern version header on a body without the envelope is invalid
 * params. Legacy messages pass untouched (`undefined`): their checks are the server's.
 */
export function checkEraHeaders(message: JsonRpcMessage, header: HeaderLookup): EraRefusal | undefined {
  const claim = claimedVersion(message);
  const versionHeader = header(MCP_PROTOCOL_VERSION_HEADER)?.trim();
  const methodHeader = header(MCP_METHOD_HEADER)?.trim();
  if (claim === undefined) {
    if (
      versionHeader === undefined ||
      !isModernVersion(versionHeader) ||
      !isRequest(message) ||
      message.method === "initialize"
    )
      return undefined;
    return {
      status: 400,
      code: -32602,
      message: `Invalid params: the MCP-Protocol-Version header names ${versionHeader.slice(0, 40)}, but the request has no _meta["${PROTOCOL_VERSION_META_KEY}"].`,
      data: { envelope: { missing: [PROTOCOL_VERSION_META_KEY] } },
    };
  }
  if (!isModernVersion(claim)) return undefined;
  if (!(MODERN_VERSIONS as readonly string[]).includes(claim)) return unsupported(claim);
  if (versionHeader !== undefined && versionHeader !== claim) {
    return mismatch(
      versionHeader,
      `the body names protocol version ${claim} but the MCP-Protocol-Version header names ${versionHeader}`,
    );
  }
  const method = String(message.method);
  if (methodHeader !== undefined && methodHeader !== method) {
    return mismatch(methodHeader, `the body names method ${method} but the Mcp-Method header names ${methodHeader}`);
  }
  if (!isRequest(message)) return undefined;
  if (versionHeader === undefined)
    return mismatch(
      "(missing)",
      `the body names protocol version ${claim} but the required MCP-Protocol-Version header is absent`,
    );
  if (methodHeader === undefined)
    return mismatch("(missing)", `the body names method ${method} but the required Mcp-Method header is absent`);
  return checkNameHeader(message, header(MCP_NAME_HEADER)?.trim());
}

function checkNameHeader(message: JsonRpcMessage, nameHeader: string | undefined): EraRefusal | undefined {
  const expected = nameHeaderValue(message);
  if (expected === undefined) return undefined;
  if (nameHeader === undefined)
    return mismatch("(missing)", `the body names ${expected} but the required Mcp-Name header is absent`);
  const decoded = decodeHeaderParam(nameHeader);
  if (decoded === undefined) return mismatch(nameHeader, "the Mcp-Name header carries an invalid Base64 value");
  if (decoded !== expected)
    return mismatch(nameHeader, `the body names ${expected} but the Mcp-Name header names ${decoded}`);
  return undefined;
}

/** A JSON-RPC error answer for a refusal of the request with `id`. */
export function refusalMessage(refusal: EraRefusal, id: unknown): JsonRpcMessage {
  const error: Record<string, unknown> = { code: refusal.code, message: refusal.message };
  if (refusal.data) error.data = refusal.data;
  return { jsonrpc: "2.0", id: id ?? null, error };
}
