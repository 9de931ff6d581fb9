/**
 * The hub's OAuth 2.1 authorization server, made by `@cloudflare/workers-oauth-provider`
 * (grants, tokens and registered clients in the `OAUTH_KV` namespace, stored hashed and
 * encrypted): RFC 8414 metadata, token and revocation endpoints, Dynamic Client
 * Registration, PKCE, RFC 8707 resources (each tunnel's MCP URL is one resource, so a
 * token is good for one tunnel only) and RFC 9207 `iss` in authorization responses.
 *
 * The library is loaded lazily: with OAuth off (no issuer configured) the hub never loads
 * it, and Node-side code that imports the app does not need the Workers runtime.
 */
import type {
  OAuthAuthorizationServer,
  OAuthHelpers,
  TokenExchangeCallbackOptions,
  TokenExchangeCallbackResult,
} from "@cloudflare/workers-oauth-provider";
import { TUNNEL_ID_PATTERN } from "../../shared/protocol/index.ts";
import { HubConfigError } from "../config.ts";
import { parseIdentitySettings, redirectAllowed, type IdentitySettings, type IdentityVars } from "./settings.ts";
import { refreshUpstream, stripUpstream, UpstreamRefused, type UpstreamGrant } from "./upstream-oidc.ts";

/** The KV binding the library keeps its records in (wrangler.toml `[[kv_namespaces]]`), and the settings. */
export interface IdentityBindings extends IdentityVars {
  OAUTH_KV?: unknown;
}

/** The one scope the hub grants: use of the tunnel's MCP URL (policy decides per tool). */
export const MCP_SCOPE = "mcp";
/** Dynamic Client Registration (RFC 7591). */
export const REGISTRATION_PATH = "/oauth/register";

type Library = typeof import("@cloudflare/workers-oauth-provider");
let library: Promise<Library> | undefined;

/** The library, imported on first use. */
export function oauthLibrary(): Promise<Library> {
  library ??= import("@cloudflare/workers-oauth-provider");
  return library;
}

/** A tunnel's canonical MCP URL: the resource (and token audience) of its grants. */
export function resourceFor(origin: string, tunnelId: string): string {
  return `${origin}/v1/mcp/${tunnelId}`;
}

/**
 * Stands in for every well-formed tunnel id the hub does not serve (see {@link maskUnknownTunnel}).
 * Not a tunnel id itself, so no MCP URL answers to it and no grant is ever issued for it.
 */
export function decoyResource(origin: string): string {
  return `${origin}/v1/mcp/unknown-tunnel`;
}

/**
 * A `resource` naming a tunnel this hub does not serve becomes the decoy resource, so the
 * authorization runs exactly as for a served tunnel (consent page, sign-in at the provider)
 * and is refused only at the callback, after the person signed in; at the token endpoint it
 * is refused in the same words as another tunnel's URL. Otherwise `invalid_target` at the
 * first request would tell anyone which tunnel ids exist. Channel URLs and other shapes are
 * left alone: the library refuses them alike for served and unknown tunnels.
 */
export function maskUnknownTunnel(value: string, origin: string, tunnelIds: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return value;
  }
  const id = url.pathname.slice("/v1/mcp/".length);
  const exact = url.origin === origin && url.search === "" && url.hash === "" && url.pathname === `/v1/mcp/${id}`;
  return exact && TUNNEL_ID_PATTERN.test(id) && !tunnelIds.includes(id) ? decoyResource(origin) : value;
}

/** The library reserves ':' in user ids; subjects are opaque strings, so grants are keyed by their URI encoding. */
export function userIdFor(subject: string): string {
  return encodeURIComponent(subject);
}

let cached: { key: string; server: OAuthAuthorizationServer<IdentityBindings> } | undefined;

/**
 * The authorization server for this origin and set of tunnels. Its resource list is fixed
 * at construction (the library checks every grant against it), so it is rebuilt when the
 * tunnels change; it holds no state of its own beyond that.
 */
export async function authorizationServer(
  settings: IdentitySettings,
  origin: string,
  tunnelIds: readonly string[],
  env: IdentityBindings,
): Promise<OAuthAuthorizationServer<IdentityBindings>> {
  if (!env.OAUTH_KV)
    throw new HubConfigError(
      "OAuth is on (AIRLOCK_OIDC_ISSUER is set) but the OAUTH_KV namespace binding is missing: add it to wrangler.toml (see docs/identity.md)",
    );
  const key = JSON.stringify([origin, tunnelIds, settings.redirectOrigins, settings.accessTokenTtl]);
  if (cached?.key === key) return cached.server;
  const { OAuthAuthorizationServer } = await oauthLibrary();
  const server = new OAuthAuthorizationServer<IdentityBindings>({
    issuer: origin,
    resources: [...tunnelIds.map((id) => resourceFor(origin, id)), decoyResource(origin)],
    scopesSupported: [MCP_SCOPE],
    ...(settings.accessTokenTtl !== undefined ? { accessTokenTTL: settings.accessTokenTtl } : {}),
    clientRegistrationEndpoint: REGISTRATION_PATH,
    tokenExchangeCallback: exchangeTokens,
    // Confused-deputy rule: a registered client may only send codes where the admin allows.
    clientRegistrationCallback: ({ clientMetadata }) => {
      const uris = Array.isArray(clientMetadata.redirect_uris) ? clientMetadata.redirect_uris : [];
      const refused = uris.find((uri) => typeof uri !== "string" || !redirectAllowed(settings, uri));
      if (uris.length === 0 || refused !== undefined) {
        return {
          code: "invalid_redirect_uri",
          description: `redirect URI ${uris.length === 0 ? "(none)" : JSON.stringify(refused)} is not on this hub's allowlist (AIRLOCK_OAUTH_REDIRECT_ORIGINS); ask the hub's admin to add its origin`,
        };
      }
      return undefined;
    },
  });
  cached = { key, server };
  return server;
}

/**
 * Every token the hub issues passes here. Access tokens carry the person without the
 * provider's refresh token, which stays with the grant. At a refresh the hub asks the
 * provider again, so a person disabled there loses access at their client's next refresh
 * (`invalid_grant`, which also makes the library revoke the grant and its tokens) and a
 * change of groups counts from then on. A grant without the provider's refresh token
 * cannot be checked that way, so it lives only `AIRLOCK_OAUTH_REAUTH_AFTER`.
 */
async function exchangeTokens(
  options: TokenExchangeCallbackOptions<IdentityBindings>,
): Promise<TokenExchangeCallbackResult | undefined> {
  const grant = options.props as UpstreamGrant;
  const settings = parseIdentitySettings(options.env)!;
  if (options.grantType === "authorization_code") {
    return {
      accessTokenProps: stripUpstream(grant),
      ...(grant.upstreamRefreshToken ? {} : { refreshTokenTTL: settings.reauthAfter }),
    };
  }
  if (options.grantType !== "refresh_token" || !grant.upstreamRefreshToken)
    return { accessTokenProps: stripUpstream(grant) };
  const { OAuthError } = await oauthLibrary();
  let fresh: UpstreamGrant;
  try {
    fresh = await refreshUpstream(settings, grant);
  } catch (error) {
    if (error instanceof UpstreamRefused) throw new OAuthError("invalid_grant", { description: error.message });
    // Not the person's fault (the provider is down, or the hub's registration is wrong): keep the grant.
    console.error("airlock hub: refreshing at the OpenID provider failed", error);
    throw new OAuthError("temporarily_unavailable", {
      description: "the identity provider could not be reached to refresh this sign-in; try again shortly",
      statusCode: 503,
      headers: { "Retry-After": "30" },
    });
  }
  return { newProps: fresh, accessTokenProps: stripUpstream(fresh) };
}

/** The helpers (parse and complete authorization, consent, upstream sign-in) for one request's environment. */
export function helpers(server: OAuthAuthorizationServer<IdentityBindings>, env: IdentityBindings): OAuthHelpers {
  return server.getOAuthApi(env);
}
