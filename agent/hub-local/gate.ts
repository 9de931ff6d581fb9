/**
 * What the local hub's front proxy decides from a request's headers alone, before it reads
 * a byte of the body: whether the request carries a credential the Worker will accept, and
 * how large a body the Worker will take. The Worker checks again (it is the authority, and
 * on Cloudflare the only check); this lets the front answer an unauthenticated or oversized
 * request at once instead of buffering it first.
 *
 * The rules mirror the Worker's routes (relay/agent-api.ts, relay/ingress.ts,
 * relay/audit/audit-api.ts) through the same configuration parser and digest comparison;
 * only the mapping from path to credential lives here.
 */
import { matchesDigest } from "../../relay/auth.ts";
import { loadConfig, type HubConfig, type HubVars } from "../../relay/config.ts";
import type { IdentityVars } from "../../relay/identity/settings.ts";
import { HUB_TOKEN_HEADER } from "../../relay/ingress.ts";
import { loadEnforcement } from "../../relay/policy/load.ts";

export interface Admission {
  /** True when the headers carry what the Worker will accept (or the route needs nothing). */
  authenticated: boolean;
  /** The largest body the Worker accepts on this route. */
  maxBodyBytes: number;
  /** The body, in words, for the 413 message (as the Worker words it). */
  what: string;
}

/** `/v1/<area>/<tunnel id>[/…]`: the three areas that need a credential. */
const GATED = /^\/v1\/(mcp|tunnels|audit)\/([^/?#]*)/;

function bearer(value: string | undefined): string | undefined {
  return /^Bearer +(\S+) *$/i.exec(value ?? "")?.[1];
}

/** The credential a request to `area` presents, read the way the Worker's middleware reads it. */
function presented(
  area: string,
  passesAuthorization: boolean,
  header: (name: string) => string | undefined,
): string | undefined {
  if (area === "mcp" && passesAuthorization) return header(HUB_TOKEN_HEADER.toLowerCase())?.trim() || undefined;
  return bearer(header("authorization"));
}

/** Decide on `path` and its headers (`header(lower-case name)`), with the hub's own variables. */
export async function admit(
  vars: HubVars & IdentityVars,
  path: string,
  header: (name: string) => string | undefined,
): Promise<Admission> {
  const config: HubConfig = loadConfig(vars);
  const { maxRequestBytes, maxResponseBytes } = config.settings;
  const match = GATED.exec(path);
  // The agent API takes results (the response limit); everything else takes requests.
  const [maxBodyBytes, what] =
    match?.[1] === "tunnels" ? [maxResponseBytes, "The response body"] : [maxRequestBytes, "The MCP request body"];
  if (!match) return { authenticated: true, maxBodyBytes, what };
  const [, area, tunnelId] = match as unknown as [string, string, string];
  const tunnel = config.tunnels.get(tunnelId);
  // Not a static tunnel. With tunnel management on it may have been made at runtime
  // (relay/admin/), which only the Worker's registry knows: the Worker checks the credential
  // (the body stays bounded). Without it, no such tunnel can exist: refuse before any body.
  if (!tunnel) return { authenticated: Boolean(vars.AIRLOCK_ADMIN_TOKEN_SHA256), maxBodyBytes, what };
  const passes = tunnel.pass_client_authorization;
  let digests: readonly string[];
  if (area === "tunnels") digests = tunnel.agent_key_sha256;
  else if (area === "audit")
    digests = [...(tunnel.auditor_token_sha256 ?? []), ...loadEnforcement(vars).auditorDigests];
  else if (passes && tunnel.client_token_sha256.length === 0) return { authenticated: true, maxBodyBytes, what };
  else digests = tunnel.client_token_sha256;
  const secret = presented(area, passes, header);
  // With OAuth on, a bearer token that is no static token may be an access token, which only
  // the Worker (holding the token store) can check: let its body through to that check.
  if (area === "mcp" && !passes && secret !== undefined && vars.AIRLOCK_OIDC_ISSUER)
    return { authenticated: true, maxBodyBytes, what };
  return { authenticated: secret !== undefined && (await matchesDigest(secret, digests)), maxBodyBytes, what };
}
