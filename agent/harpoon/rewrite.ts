/**
 * Results speak in labels, not private URLs: a response header (`Location`,
 * `Content-Location`, `Link`) or a JSON string value that is exactly a registered target's
 * URL becomes `harpoon://<label>`. That is how the tunnel service learns, say, that an
 * authorization server's `token_endpoint` is reachable through Harpoon, without the private
 * URL itself being the thing it calls. Anything that is not an exact match stays as it is.
 *
 * Two OAuth refinements: a protected-resource metadata `resource` value is never rewritten
 * (RFC 9728 requires it to equal the resource identifier), and where several targets share a
 * URL, the JSON key picks the one whose role fits (`token_endpoint` → the `token-endpoint` target).
 */
import { hasAllTags, normalizeToken, type HarpoonTarget } from "./registry.ts";

/** Headers whose URLs are rewritten. */
const URL_HEADERS = new Set(["location", "content-location", "link"]);
const URL_IN_TEXT = /https?:\/\/[^\s<>"']+/gi;

const ROLE_FOR_KEY: Record<string, string> = {
  authorization_servers: "authorization-server",
  introspection_endpoint: "introspection-endpoint",
  issuer: "issuer",
  jwks_uri: "jwks-uri",
  registration_endpoint: "registration-endpoint",
  revocation_endpoint: "revocation-endpoint",
  token_endpoint: "token-endpoint",
};

export interface UrlRewriter {
  /** `harpoon://<label>` for an exact target URL, else `undefined`. `key` is the JSON key it sits under. */
  url(raw: string, key?: string): string | undefined;
  /** A copy of `headers` with URL-bearing values rewritten. */
  headers(headers: Record<string, string[]>): Record<string, string[]>;
  /** The body re-encoded with rewritten string values, or `undefined` when it is not JSON or nothing matched. */
  jsonBody(body: Uint8Array): Uint8Array | undefined;
}

export function createRewriter(targets: readonly HarpoonTarget[]): UrlRewriter {
  const byUrl = new Map<string, HarpoonTarget[]>();
  for (const target of targets) byUrl.set(target.url.href, [...(byUrl.get(target.url.href) ?? []), target]);

  const url = (raw: string, key = ""): string | undefined => {
    // The URL parser accepts `https:host/x`; only absolute, authority-bearing spellings count.
    if (!/^https?:\/\//i.test(raw)) return undefined;
    let href: string;
    try {
      href = new URL(raw).href;
    } catch {
      return undefined;
    }
    const candidates = byUrl.get(href);
    if (!candidates) return undefined;
    if (
      key === "resource" &&
      candidates.some((target) => hasAllTags(target.tags, ["protected-resource-metadata", "resource"]))
    )
      return undefined;
    const role = ROLE_FOR_KEY[key];
    const preferred = role
      ? candidates.find((target) => target.tags.some((tag) => normalizeToken(tag) === role))
      : undefined;
    return `harpoon://${(preferred ?? candidates[0]!).label}`;
  };

  const walk = (value: unknown, key: string): { value: unknown; changed: boolean } => {
    if (typeof value === "string") {
      const rewritten = url(value, key);
      return rewritten === undefined ? { value, changed: false } : { value: rewritten, changed: true };
    }
    if (Array.isArray(value)) {
      let changed = false;
      const out = value.map((item) => {
        const result = walk(item, key);
        changed ||= result.changed;
        return result.value;
      });
      return { value: out, changed };
    }
    if (value !== null && typeof value === "object") {
      let changed = false;
      // Null prototype: a `__proto__` key in the body stays an ordinary key.
      const out = Object.create(null) as Record<string, unknown>;
      for (const [name, item] of Object.entries(value)) {
        const result = walk(item, name);
        changed ||= result.changed;
        out[name] = result.value;
      }
      return { value: out, changed };
    }
    return { value, changed: false };
  };

  return {
    url,
    headers(headers) {
      const out: Record<string, string[]> = {};
      for (const [name, values] of Object.entries(headers)) {
        out[name] = URL_HEADERS.has(name.toLowerCase())
          ? values.map((value) => value.replace(URL_IN_TEXT, (match) => url(match) ?? match))
          : [...values];
      }
      return out;
    },
    jsonBody(body) {
      if (body.byteLength === 0 || byUrl.size === 0) return undefined;
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
      } catch {
        return undefined;
      }
      const result = walk(parsed, "");
      return result.changed ? new TextEncoder().encode(JSON.stringify(result.value)) : undefined;
    },
  };
}
