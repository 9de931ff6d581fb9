/**
 * OAuth at the hub is off unless `AIRLOCK_OIDC_ISSUER` is set. Then the hub is an OAuth 2.1
 * authorization server for MCP clients (tokens bound to one tunnel's MCP URL) that signs
 * people in at the company's OpenID provider:
 *
 *   AIRLOCK_OIDC_ISSUER             the OpenID provider's issuer URL (https, or http on loopback)
 *   AIRLOCK_OIDC_CLIENT_ID          the hub's client id at that provider
 *   AIRLOCK_OIDC_CLIENT_SECRET      its client secret (a Worker secret); unset = a public client (PKCE only)
 *   AIRLOCK_OIDC_SCOPES             scopes asked of the provider (default "openid email profile")
 *   AIRLOCK_OIDC_GROUPS_CLAIM       the ID token claim listing the person's groups (default "groups")
 *   AIRLOCK_OAUTH_REDIRECT_ORIGINS  comma-separated origins MCP clients may register redirect URIs on;
 *                                   default: loopback only (http://127.0.0.1, http://localhost, any port)
 *   AIRLOCK_OAUTH_ACCESS_TOKEN_TTL  seconds an access token lives (default 3600, the library's; at least 60,
 *                                   the library's floor, set by Cloudflare KV's minimum expiration)
 *   AIRLOCK_OAUTH_REAUTH_AFTER      how long a grant lives when the provider issued no refresh token to check the
 *                                   person again with (seconds, or a duration such as 24h; default 24h, at least 60)
 *   AIRLOCK_OAUTH_CIMD_ORIGINS      comma-separated https origins whose Client ID Metadata Documents the hub
 *                                   fetches (client_id = a URL there); default none (clients register)
 *   AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK  "1" admits http://127.0.0.1|localhost origins in that list (tests only)
 *   AIRLOCK_PUBLIC_URL              the hub's public base URL, when requests reach it under another origin
 */
import { HubConfigError } from "../config.ts";
import { parseDuration } from "../../shared/protocol/duration.ts";

export interface IdentityVars {
  AIRLOCK_OIDC_ISSUER?: string;
  AIRLOCK_OIDC_CLIENT_ID?: string;
  AIRLOCK_OIDC_CLIENT_SECRET?: string;
  AIRLOCK_OIDC_SCOPES?: string;
  AIRLOCK_OIDC_GROUPS_CLAIM?: string;
  AIRLOCK_OAUTH_REDIRECT_ORIGINS?: string;
  AIRLOCK_OAUTH_ACCESS_TOKEN_TTL?: string;
  AIRLOCK_OAUTH_REAUTH_AFTER?: string;
  AIRLOCK_OAUTH_CIMD_ORIGINS?: string;
  AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK?: string;
  AIRLOCK_PUBLIC_URL?: string;
  /** Identity to backends (relay/identity/backend-token.ts): an ES256 private key, JWK JSON or PKCS#8 PEM. Off when unset. */
  AIRLOCK_IDENTITY_SIGNING_KEY?: string;
}

export interface IdentitySettings {
  issuer: URL;
  clientId: string;
  clientSecret: string | undefined;
  scopes: string;
  groupsClaim: string;
  /** Exact origins (`https://claude.ai`), or `loopback` for http://127.0.0.1|localhost|[::1] on any port. */
  redirectOrigins: readonly string[];
  /** Access-token lifetime in seconds; undefined = the library's default (one hour). */
  accessTokenTtl: number | undefined;
  /**
   * Seconds a grant lives when the provider gave no refresh token: without one the hub cannot
   * ask the provider again at refresh, so the person must sign in again this often.
   */
  reauthAfter: number;
  /** Exact origins whose client metadata documents may be fetched (relay/identity/client-metadata.ts). */
  cimdOrigins: readonly string[];
}

/** Where the provider sends the browser back: registered at the provider by the admin. */
export const CALLBACK_PATH = "/oauth/callback";

/** The loopback hosts RFC 8252 native clients listen on. */
export const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** True for https URLs, and http ones on a loopback host (local development, tests). */
export function isSecureOrLoopback(url: URL): boolean {
  return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname));
}

function parseOrigins(raw: string | undefined): string[] {
  if (!raw?.trim()) return ["loopback"];
  return raw
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      if (entry === "loopback") return entry;
      let url: URL;
      try {
        url = new URL(entry);
      } catch {
        throw new HubConfigError(
          `AIRLOCK_OAUTH_REDIRECT_ORIGINS: "${entry.slice(0, 80)}" is not a URL; list origins such as https://claude.ai, or the word loopback`,
        );
      }
      if (url.protocol !== "https:")
        throw new HubConfigError(
          `AIRLOCK_OAUTH_REDIRECT_ORIGINS: ${url.origin} must be https (loopback http is the word loopback)`,
        );
      return url.origin;
    });
}

/** The library refuses lifetimes under a minute (Cloudflare KV cannot expire records sooner). */
const MIN_ACCESS_TOKEN_TTL = 60;

function parseAccessTokenTtl(raw: string | undefined): number | undefined {
  if (!raw?.trim()) return undefined;
  const seconds = Number(raw.trim());
  if (!Number.isInteger(seconds) || seconds < MIN_ACCESS_TOKEN_TTL) {
    throw new HubConfigError(
      `AIRLOCK_OAUTH_ACCESS_TOKEN_TTL: "${raw.slice(0, 40)}" must be a whole number of seconds, at least ${MIN_ACCESS_TOKEN_TTL} (e.g. 3600 for an hour)`,
    );
  }
  return seconds;
}

/** A day: a working day's sessions without a second sign-in, and a bounded cut-off. */
const DEFAULT_REAUTH_AFTER = 86_400;

function parseReauthAfter(raw: string | undefined): number {
  const text = raw?.trim();
  if (!text) return DEFAULT_REAUTH_AFTER;
  const ms = /^[0-9]+$/.test(text) ? Number(text) * 1000 : parseDuration(text);
  if (ms === undefined || !Number.isSafeInteger(ms / 1000) || ms / 1000 < MIN_ACCESS_TOKEN_TTL) {
    throw new HubConfigError(
      `AIRLOCK_OAUTH_REAUTH_AFTER: "${text.slice(0, 40)}" must be whole seconds or a duration such as 24h, at least ${MIN_ACCESS_TOKEN_TTL}s`,
    );
  }
  return ms / 1000;
}

function parseCimdOrigins(raw: string | undefined, allowLoopback: boolean): string[] {
  if (!raw?.trim()) return [];
  return raw
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      let url: URL;
      try {
        url = new URL(entry);
      } catch {
        throw new HubConfigError(
          `AIRLOCK_OAUTH_CIMD_ORIGINS: "${entry.slice(0, 80)}" is not a URL; list origins such as https://app.example.com`,
        );
      }
      const loopback = allowLoopback && url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
      if (url.protocol !== "https:" && !loopback)
        throw new HubConfigError(
          `AIRLOCK_OAUTH_CIMD_ORIGINS: ${url.origin} must be https (http on loopback only with AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK=1, for tests)`,
        );
      return url.origin;
    });
}

/** The identity settings, or undefined when OAuth is off (no issuer configured). */
export function parseIdentitySettings(vars: IdentityVars): IdentitySettings | undefined {
  const raw = vars.AIRLOCK_OIDC_ISSUER?.trim();
  if (!raw) return undefined;
  let issuer: URL;
  try {
    issuer = new URL(raw);
  } catch {
    throw new HubConfigError(
      `AIRLOCK_OIDC_ISSUER: "${raw.slice(0, 80)}" is not a URL; give the provider's issuer, e.g. https://login.example.com/`,
    );
  }
  if (!isSecureOrLoopback(issuer))
    throw new HubConfigError(
      `AIRLOCK_OIDC_ISSUER: ${issuer.origin} must be https (http only on 127.0.0.1 or localhost)`,
    );
  const clientId = vars.AIRLOCK_OIDC_CLIENT_ID?.trim();
  if (!clientId)
    throw new HubConfigError(
      "AIRLOCK_OIDC_CLIENT_ID is not set: register the hub as a client at the OpenID provider and give its client id",
    );
  return {
    issuer,
    clientId,
    clientSecret: vars.AIRLOCK_OIDC_CLIENT_SECRET || undefined,
    scopes: vars.AIRLOCK_OIDC_SCOPES?.trim() || "openid email profile",
    groupsClaim: vars.AIRLOCK_OIDC_GROUPS_CLAIM?.trim() || "groups",
    redirectOrigins: parseOrigins(vars.AIRLOCK_OAUTH_REDIRECT_ORIGINS),
    accessTokenTtl: parseAccessTokenTtl(vars.AIRLOCK_OAUTH_ACCESS_TOKEN_TTL),
    reauthAfter: parseReauthAfter(vars.AIRLOCK_OAUTH_REAUTH_AFTER),
    cimdOrigins: parseCimdOrigins(vars.AIRLOCK_OAUTH_CIMD_ORIGINS, vars.AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK === "1"),
  };
}

/** May a client register (or use) this redirect URI? Checked against the admin's allowlist. */
export function redirectAllowed(settings: IdentitySettings, uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  if (url.username || url.password || url.hash) return false;
  return settings.redirectOrigins.some((origin) =>
    origin === "loopback"
      ? url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)
      : url.origin === origin && url.protocol === "https:",
  );
}
