/** Header rules both directions of the tunnel share. */
import type { HeaderMap } from "./commands.ts";

/** The only response headers an agent reports back in `resp_headers`. */
export const RESPONSE_HEADER_ALLOWLIST = [
  "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-ID", "Access-Control-Expose-Headers",
  "WWW-Authenticate",
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

const STRIPPED_REQUEST_HEADERS = new Set([
  "host", "content-length", "cookie", "via", "forwarded", "x-real-ip", "true-client-ip", "cf-connecting-ip",
  "cf-ipcountry", "cf-ray", "cf-visitor", "cf-worker", "x-client-ip", "x-cluster-client-ip", "client-ip",
]);

/**
 * Headers of an MCP client's request that may travel to the backend: hop-by-hop headers,
 * `Connection`-nominated names, `Host`, `Content-Length`, cookies, proxy and client-IP
 * headers are stripped. `authorization` is kept only when `keepAuthorization` is set.
 */
export function sanitizeClientHeaders(headers: Headers, keepAuthorization: boolean): HeaderMap {
  const nominated = connectionNominated((name) => {
    const value = headers.get(name);
    return value === null ? [] : [value];
  });
  const out: HeaderMap = {};
  headers.forEach((value, rawName) => {
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || nominated.has(name) || STRIPPED_REQUEST_HEADERS.has(name)) return;
    if (name.startsWith("proxy-") || name.startsWith("x-forwarded-") || name.startsWith("x-airlock-internal")) return;
    if (name === "authorization" && !keepAuthorization) return;
    (out[rawName] ??= []).push(value);
  });
  return out;
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
