/**
 * The admin UI's own credential. Network checks (`access.ts`) cannot tell the operator
 * from any other local process: a stdio MCP server, or a backend an MCP client steers into
 * fetching a URL, is a loopback peer too. So every UI request must also present a secret
 * that only the operator saw:
 *
 * - a random token, printed once at start; scripts send it as `Authorization: Bearer …`,
 *   and the sign-in form (`/ui/login`) accepts it;
 * - a one-time sign-in link (`/ui/login?code=…`), written to the log at start: opening it
 *   sets a session cookie (HttpOnly, SameSite=Strict, path /ui) and the code is spent.
 *
 * Comparisons hash both sides and compare the digests in constant time, so neither the
 * token's length nor the position of a mismatch shows in the timing.
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { constantTimeEqual } from "../../relay/auth.ts";
import { sha256Hex } from "../../shared/audit/digest.ts";

export const UI_SESSION_COOKIE = "airlock_ui";
/** Sessions kept at once; the oldest is forgotten first (a sign-in per browser is enough). */
const MAX_SESSIONS = 32;

export interface UiCredential {
  /** The bearer token (print it once; never log it). */
  readonly token: string;
  /** A fresh single-use sign-in code for `/ui/login?code=`. */
  issueLoginCode(): Promise<string>;
  /** Spend a sign-in code or accept the token; on success, a new session id for the cookie. */
  signIn(secret: string): Promise<string | undefined>;
  /** True when the request carries the token or a live session cookie. */
  authenticated(c: Context): Promise<boolean>;
}

/** 32 random bytes, base64url. */
export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

async function sameSecret(presented: string, digest: string): Promise<boolean> {
  return constantTimeEqual(await sha256Hex(presented), digest);
}

/** `token` is injectable for tests; by default a fresh random one per process. */
export async function createUiCredential(token: string = randomSecret()): Promise<UiCredential> {
  const tokenDigest = await sha256Hex(token);
  const codes = new Set<string>();
  const sessions = new Set<string>();

  async function anyOf(presented: string, digests: Set<string>): Promise<string | undefined> {
    const digest = await sha256Hex(presented);
    let found: string | undefined;
    // No early exit: every stored digest is compared.
    for (const candidate of digests) if (constantTimeEqual(digest, candidate)) found = candidate;
    return found;
  }

  return {
    token,
    async issueLoginCode() {
      const code = randomSecret();
      codes.add(await sha256Hex(code));
      return code;
    },
    async signIn(secret) {
      const code = await anyOf(secret, codes);
      if (code !== undefined) codes.delete(code);
      else if (!(await sameSecret(secret, tokenDigest))) return undefined;
      const session = randomSecret();
      sessions.add(await sha256Hex(session));
      if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.values().next().value!);
      return session;
    },
    async authenticated(c) {
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1];
      if (bearer !== undefined) return sameSecret(bearer, tokenDigest);
      const session = getCookie(c, UI_SESSION_COOKIE);
      return session !== undefined && (await anyOf(session, sessions)) !== undefined;
    },
  };
}

/** Set the session cookie for the UI mounted at `base` (e.g. `/ui`). */
export function setSessionCookie(c: Context, session: string, base: string): void {
  setCookie(c, UI_SESSION_COOKIE, session, {
    path: base || "/",
    httpOnly: true,
    sameSite: "Strict",
    secure: new URL(c.req.url).protocol === "https:",
  });
}

/** Refuse every request without the credential, with what to do instead. */
export function requireUiCredential(credential: UiCredential, loginPath: (c: Context) => string): MiddlewareHandler {
  return async (c, next) => {
    if (await credential.authenticated(c)) return next();
    return c.text(
      "401 Unauthorized: the Airlock admin UI needs its credential.\n\n" +
        "Open the one-time sign-in link the agent wrote to its log at start, or sign in at " +
        `${loginPath(c)} with the admin UI token it printed on stderr; scripts send "Authorization: Bearer <token>".\n`,
      401,
      { "Cache-Control": "no-store", "WWW-Authenticate": 'Bearer realm="airlock-admin-ui"' },
    );
  };
}
