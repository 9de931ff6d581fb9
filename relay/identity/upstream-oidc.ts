/**
 * The hub as an OpenID Connect relying party of the company's provider: authorization code
 * with PKCE and a nonce, the provider found by discovery from the configured issuer, the ID
 * token checked against its JWKS (signature, `iss`, `aud`, `exp`, `nonce`) and the
 * authorization response's `iss` (RFC 9207) when the provider sends it. oauth4webapi does
 * every check; this file only holds the hub's choices.
 *
 * The only URLs fetched are the configured issuer's discovery document and the endpoints
 * it names: operator configuration, never a value a client supplied.
 */
import * as oauth from "oauth4webapi";
import { isSecureOrLoopback, type IdentitySettings } from "./settings.ts";
export { CALLBACK_PATH } from "./settings.ts";

/** What the hub keeps between the redirect to the provider and its callback. */
export interface UpstreamPending {
  verifier: string;
  nonce: string;
}

/** The person, as the provider's ID token describes them: what access tokens carry to policy and audit. */
export interface UpstreamPerson {
  subject: string;
  email?: string;
  name?: string;
  groups: string[];
}

/**
 * What the hub keeps with a grant (encrypted by the OAuth library with its tokens): the
 * person, and the provider's refresh token when it gave one, to ask the provider again at
 * each refresh. Never logged; never put in an access token.
 */
export interface UpstreamGrant extends UpstreamPerson {
  upstreamRefreshToken?: string;
}

/** The provider refused to refresh: the person was disabled, their session or consent revoked. */
export class UpstreamRefused extends Error {}

let discovered: { issuer: string; server: Promise<oauth.AuthorizationServer> } | undefined;

function requestOptions(settings: IdentitySettings) {
  // oauth4webapi refuses http; a loopback issuer (tests, local development) is allowed explicitly.
  return settings.issuer.protocol === "http:" ? { [oauth.allowInsecureRequests]: true } : {};
}

/** The provider's metadata, discovered once per isolate. */
async function provider(settings: IdentitySettings): Promise<oauth.AuthorizationServer> {
  const issuer = settings.issuer.href;
  if (discovered?.issuer !== issuer) {
    const server = oauth
      .discoveryRequest(settings.issuer, { algorithm: "oidc", ...requestOptions(settings) })
      .then((response) => oauth.processDiscoveryResponse(settings.issuer, response));
    server.catch(() => {
      if (discovered?.server === server) discovered = undefined;
    });
    discovered = { issuer, server };
  }
  const server = await discovered.server;
  for (const endpoint of [server.authorization_endpoint, server.token_endpoint, server.jwks_uri]) {
    if (!endpoint || !isSecureOrLoopback(new URL(endpoint)))
      throw new Error(`the OpenID provider's metadata names ${endpoint ?? "no endpoint"}; expected https URLs`);
  }
  return server;
}

const OFFLINE_SCOPE = "offline_access";

/**
 * The scopes to ask for: the configured ones, plus offline_access (a refresh token) when the
 * provider says it issues them (Google, for one, lists no offline_access).
 */
function scopesFor(settings: IdentitySettings, server: oauth.AuthorizationServer): { scope: string; offline: boolean } {
  const configured = settings.scopes.split(/\s+/).includes(OFFLINE_SCOPE);
  if (configured) return { scope: settings.scopes, offline: true };
  const offered = (server.scopes_supported ?? []).includes(OFFLINE_SCOPE);
  return { scope: offered ? `${settings.scopes} ${OFFLINE_SCOPE}` : settings.scopes, offline: offered };
}

const client = (settings: IdentitySettings): oauth.Client => ({ client_id: settings.clientId });

const clientAuth = (settings: IdentitySettings) =>
  settings.clientSecret ? oauth.ClientSecretBasic(settings.clientSecret) : oauth.None();

/**
 * Prepare one sign-in: the PKCE verifier and nonce to keep for the callback, and the
 * provider's authorization URL once the `state` binding them to the browser exists.
 */
export async function beginSignIn(
  settings: IdentitySettings,
  callback: string,
): Promise<{ pending: UpstreamPending; url(state: string): URL }> {
  const server = await provider(settings);
  const verifier = oauth.generateRandomCodeVerifier();
  const nonce = oauth.generateRandomNonce();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const { scope, offline } = scopesFor(settings, server);
  return {
    pending: { verifier, nonce },
    url(state) {
      const url = new URL(server.authorization_endpoint!);
      url.search = new URLSearchParams({
        client_id: settings.clientId,
        redirect_uri: callback,
        response_type: "code",
        scope,
        // OpenID Connect Core §11: offline access is asked for with prompt=consent (oidc-provider
        // drops the scope without it).
        ...(offline ? { prompt: "consent" } : {}),
        state,
        nonce,
        code_challenge: challenge,
        code_challenge_method: "S256",
      }).toString();
      return url;
    },
  };
}

function stringList(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

function personOf(settings: IdentitySettings, claims: oauth.IDToken): UpstreamPerson {
  return {
    subject: claims.sub,
    email: typeof claims.email === "string" ? claims.email : undefined,
    name: typeof claims.name === "string" ? claims.name : undefined,
    groups: stringList(claims[settings.groupsClaim]),
  };
}

/** Finish a sign-in at the callback: check the response, redeem the code, verify the ID token. */
export async function finishSignIn(
  settings: IdentitySettings,
  callbackUrl: URL,
  callback: string,
  pending: UpstreamPending,
): Promise<UpstreamGrant> {
  const server = await provider(settings);
  const params = oauth.validateAuthResponse(
    server,
    client(settings),
    callbackUrl,
    callbackUrl.searchParams.get("state") ?? undefined,
  );
  const response = await oauth.authorizationCodeGrantRequest(
    server,
    client(settings),
    clientAuth(settings),
    params,
    callback,
    pending.verifier,
    requestOptions(settings),
  );
  const tokens = await oauth.processAuthorizationCodeResponse(server, client(settings), response, {
    expectedNonce: pending.nonce,
    requireIdToken: true,
  });
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  if (!claims?.sub) throw new Error("the OpenID provider's ID token has no subject");
  return {
    ...personOf(settings, claims),
    ...(tokens.refresh_token ? { upstreamRefreshToken: tokens.refresh_token } : {}),
  };
}

/**
 * Ask the provider again, with the grant's refresh token: the person as the provider sees
 * them now. A fresh ID token (checked: issuer, audience, expiry, and the same subject) updates
 * email, name and groups; without one the provider still vouched for the person by answering,
 * and the claims stay as they were. A rotated refresh token replaces the old one.
 * Throws {@link UpstreamRefused} when the provider refuses the refresh token (`invalid_grant`)
 * or names someone else; anything else (network, 5xx, misconfiguration) throws as it is.
 */
export async function refreshUpstream(settings: IdentitySettings, grant: UpstreamGrant): Promise<UpstreamGrant> {
  const server = await provider(settings);
  const refreshToken = grant.upstreamRefreshToken!;
  let tokens: oauth.TokenEndpointResponse;
  try {
    const response = await oauth.refreshTokenGrantRequest(
      server,
      client(settings),
      clientAuth(settings),
      refreshToken,
      requestOptions(settings),
    );
    tokens = await oauth.processRefreshTokenResponse(server, client(settings), response);
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError && error.error === "invalid_grant")
      throw new UpstreamRefused(`the identity provider refused the refresh: ${error.error_description ?? error.error}`);
    throw error;
  }
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  if (claims && claims.sub !== grant.subject)
    throw new UpstreamRefused("the identity provider's refreshed ID token names another subject");
  return {
    ...(claims ? personOf(settings, claims) : stripUpstream(grant)),
    upstreamRefreshToken: tokens.refresh_token ?? refreshToken,
  };
}

/** The person alone, for access tokens: the provider's refresh token stays with the grant. */
export function stripUpstream(grant: UpstreamGrant): UpstreamPerson {
  const { upstreamRefreshToken: _kept, ...person } = grant;
  return person;
}
