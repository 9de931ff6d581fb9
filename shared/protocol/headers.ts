/** Header rules both directions of the tunnel share. */
import type { HeaderMap } from "./commands.ts";

/** The only response headers an agent reports back in `resp_headers`. */
export const RESPONSE_HEADER_ALLOWLIST = [
  "Content-Type",
  "Mcp-Session-Id",
  "Mcp-Protocol-Version",
  "Last-Event-ID",
  "Access-Control-Expose-Headers",
  "WWW-Authenticate",
  // A busy backend's 503 (stdio at max_sessions) and an upstream's 429/503 say when to come back.
  "Retry-After",
] as const;

const HOP_BY_HOP = new Set(["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"]);

/** Names the `Connection` header nominates as hop-by-hop, lower-cased. */
function connectionNominated(get: (name: string) => string[]): Set<string> {
  const names = new Set<string>();
  for (const value of get("connection")) {
    for (const name of value.split(",")) if (name.trim()) names.add(name.trim().toLowerCase());
  }
  return names;
}

/**
 * Reduce upstream response headers to the allowlist, dropping empty values and any
 * header the `Connection` header nominates. Names keep their canonical spelling.
 */
export function filterResponseHeaders(headers: Headers): HeaderMap {
  const nominated = connectionNominated((name) => {
    const value = headers.get(name);
    return value === null ? [] : [value];
  });
  const out: HeaderMap = {};
  for (const name of RESPONSE_HEADER_ALLOWLIST) {
    if (nominated.has(name.toLowerCase())) continue;
    const value = headers.get(name);
    if (value === null || value.trim() === "") continue;
    out[name] = [value];
  }
  return out;
}

/**
 * The only headers of an MCP client's request that may travel on to a backend: what
 * Streamable HTTP needs (`Accept`, the session, protocol version and resumption ids), the
 * client's credential when the operator lets it through, and W3C trace context. Anything
 * else (client-IP, `X-Forwarded-*`, `X-Original-URL`, cookies, a client's guess at an
 * operator header such as `X-Read-Only`) never leaves: an allowlist, because no list of
 * dangerous names is ever complete.
 */
export const CLIENT_REQUEST_HEADER_ALLOWLIST = [
  "Accept",
  "Authorization",
  "Mcp-Session-Id",
  "Mcp-Protocol-Version",
  "Last-Event-ID",
  "traceparent",
  "tracestate",
  // The modern era's mirrors of the body (checked against it at the hub, needed by modern servers).
  "Mcp-Method",
  "Mcp-Name",
] as const;

/**
 * The hub's signed statement of who is calling (a short-lived JWT, docs/identity.md), for
 * the backend. Never a client's: the hub drops any copy a client sends and sets its own,
 * and an agent passes it on only from a hub that offers the `identity` extension.
 */
export const IDENTITY_HEADER = "X-Airlock-Identity";

/** The hub-asserted headers of a command (only {@link IDENTITY_HEADER}), for the backend. */
export function hubAssertedHeaders(headers: HeaderMap): HeaderMap {
  const wanted = IDENTITY_HEADER.toLowerCase();
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() === wanted));
}

/** `headers` without the hub-asserted ones: what an agent keeps from a control plane that does not assert identity. */
export function withoutHubAssertedHeaders(headers: HeaderMap): HeaderMap {
  const wanted = IDENTITY_HEADER.toLowerCase();
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== wanted));
}

/** `Mcp-Param-{Name}`: a modern client mirrors declared tool arguments into these; the names are the tool's own. */
const CLIENT_ALLOWED_PREFIX = "mcp-param-";

const CLIENT_ALLOWED = new Set(CLIENT_REQUEST_HEADER_ALLOWLIST.map((name) => name.toLowerCase()));

/** Headers the HTTP stack owns on each hop (framing, routing): never copied from one request to another. */
const FRAMING = new Set([...HOP_BY_HOP, "host", "content-length"]);

/** Read `headers` into a map, skipping `skip(lower-case name)` and names `Connection` nominates. */
function copyHeaders(headers: Headers, skip: (name: string) => boolean): HeaderMap {
  const nominated = connectionNominated((name) => {
    const value = headers.get(name);
    return value === null ? [] : [value];
  });
  const out: HeaderMap = {};
  headers.forEach((value, rawName) => {
    const name = rawName.toLowerCase();
    if (FRAMING.has(name) || nominated.has(name) || skip(name)) return;
    const values = out[rawName] ?? [];
    values.push(value);
    out[rawName] = values;
  });
  return out;
}

/**
 * Headers of an MCP client's request that may travel to the backend: those on
 * {@link CLIENT_REQUEST_HEADER_ALLOWLIST}, `Authorization` only when `keepAuthorization`.
 */
export function sanitizeClientHeaders(headers: Headers, keepAuthorization: boolean): HeaderMap {
  return copyHeaders(
    headers,
    (name) =>
      !(CLIENT_ALLOWED.has(name) || name.startsWith(CLIENT_ALLOWED_PREFIX)) ||
      (name === "authorization" && !keepAuthorization),
  );
}

/**
 * Headers an operator configured (`mcp.extra_headers`, a backend's `headers:`): any name,
 * except the per-hop framing the HTTP stack sets itself.
 */
export function sanitizeOperatorHeaders(headers: Headers): HeaderMap {
  return copyHeaders(headers, () => false);
}

/** Case-insensitive lookup of the first value of a header in a {@link HeaderMap}. */
export function headerValue(headers: HeaderMap | null | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, values] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted && values.length > 0) return values[0];
  }
  return undefined;
}
