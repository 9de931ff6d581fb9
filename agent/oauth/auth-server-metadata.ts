/**
 * The authorization server's metadata (RFC 8414, and OpenID Connect discovery as a fallback)
 * for `authorization_servers[0]` of the protected-resource metadata. For an issuer with a
 * path both spellings are tried — the well-known segment inserted before the path (RFC 8414)
 * and appended after it (OIDC) — the RFC's first. A document whose `issuer` equals the
 * issuer URL wins; otherwise the first usable one is taken (tunnel-client does the same, with
 * a warning), and the URLs it names are then treated as off-origin by auto-registration.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import { type DiscoveryHttp, discoveryFetch } from "./fetch-guard.ts";

const DOCUMENTS = ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"];

/** The endpoints discovery cares about (the ones auto-registration may turn into targets). */
export const AUTH_SERVER_FIELDS = {
  issuer: "issuer",
  token_endpoint: "token-endpoint",
  jwks_uri: "jwks-uri",
  introspection_endpoint: "introspection-endpoint",
  registration_endpoint: "registration-endpoint",
  revocation_endpoint: "revocation-endpoint",
} as const;

export interface AuthServerMetadata {
  /** Where the document was found. */
  url: URL;
  document: Record<string, unknown>;
  /** The document's `issuer` differs from the issuer URL asked for. */
  issuerMismatch: boolean;
}

/** Candidate metadata URLs for an issuer, in the order tried. */
export function authServerMetadataUrls(issuer: URL): URL[] {
  const path = issuer.pathname.replace(/\/+$/, "");
  const urls: URL[] = [];
  for (const document of DOCUMENTS) {
    const prepend = new URL(`${document}${path}`, issuer.origin);
    const append = new URL(`${path}${document}`, issuer.origin);
    for (const url of path === "" ? [prepend] : [prepend, append])
      if (!urls.some((other) => other.href === url.href)) urls.push(url);
  }
  return urls;
}

/** Fetch the issuer's metadata; `undefined` with the reasons when no candidate served a usable document. */
export async function fetchAuthServerMetadata(
  http: DiscoveryHttp,
  issuer: URL,
): Promise<{ metadata?: AuthServerMetadata; errors: string[] }> {
  const errors: string[] = [];
  let fallback: AuthServerMetadata | undefined;
  for (const url of authServerMetadataUrls(issuer)) {
    try {
      const response = await discoveryFetch(http, url, { method: "GET", accept: "application/json" });
      if (response.status !== 200) throw new Error(`status ${response.status}`);
      const type = (response.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
      if (type !== "application/json") throw new Error(`content type ${JSON.stringify(type)} is not application/json`);
      const document: unknown = JSON.parse(response.body);
      if (!isObject(document)) throw new Error("not a JSON object");
      const issuerMismatch = document.issuer !== issuer.href && document.issuer !== issuer.href.replace(/\/$/, "");
      const found = { url: response.url, document, issuerMismatch };
      if (!issuerMismatch) return { metadata: found, errors };
      fallback ??= found;
    } catch (error) {
      errors.push(`${url.href}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return fallback ? { metadata: fallback, errors } : { errors };
}
