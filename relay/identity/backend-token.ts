/**
 * Identity to backends: a short-lived JWT the hub signs for each command of a caller it
 * knows, sent to the MCP server in {@link IDENTITY_HEADER}. Off unless the Worker secret
 * `AIRLOCK_IDENTITY_SIGNING_KEY` holds an ES256 (P-256) private key, as a JWK (JSON) or
 * PKCS#8 PEM. The public half is published at `/.well-known/jwks.json`, so a backend can
 * verify `iss` (the hub's origin), `aud` (its channel's MCP URL) and `exp` (≤ 5 minutes).
 *
 * The hub drops any copy of the header a client sends (relay/ingress.ts), and an agent
 * passes the header on only from a hub that advertises the `identity` extension.
 */
import type { Context } from "hono";
import { HubConfigError } from "../config.ts";
import type { WorkerContext } from "../context.ts";
import type { CallerIdentity } from "../../shared/policy/identity.ts";
export { IDENTITY_HEADER } from "../../shared/protocol/headers.ts";
import { publicOrigin } from "./origin.ts";
import { resourceFor } from "./authorization-server.ts";

/** How long a backend may accept one token: long enough for a slow call to start, short enough to be useless stolen. */
export const IDENTITY_TOKEN_TTL_S = 120;

interface SigningKey {
  privateKey: CryptoKey;
  publicJwk: JsonWebKey & { kid: string; alg: "ES256"; use: "sig" };
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
let cached: { source: string; key: Promise<SigningKey> } | undefined;

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const encodeJson = (value: unknown) => base64url(new TextEncoder().encode(JSON.stringify(value)));

function pemBytes(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(body), (char) => char.charCodeAt(0));
}

async function importKey(source: string): Promise<SigningKey> {
  const text = source.trim();
  const problem =
    "AIRLOCK_IDENTITY_SIGNING_KEY: expected an ES256 (P-256) private key as a JWK (JSON with d) or a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); see docs/identity.md";
  let privateKey: CryptoKey;
  try {
    privateKey = text.startsWith("{")
      ? await crypto.subtle.importKey("jwk", JSON.parse(text) as JsonWebKey, ALGORITHM, true, ["sign"])
      : await crypto.subtle.importKey("pkcs8", pemBytes(text), ALGORITHM, true, ["sign"]);
  } catch (error) {
    throw new HubConfigError(`${problem} (${error instanceof Error ? error.message : String(error)})`);
  }
  const { kty, crv, x, y } = (await crypto.subtle.exportKey("jwk", privateKey)) as JsonWebKey;
  if (kty !== "EC" || crv !== "P-256" || !x || !y) throw new HubConfigError(problem);
  // RFC 7638 thumbprint: the key id changes exactly when the key does.
  const thumbprint = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify({ crv, kty, x, y })),
  );
  return {
    privateKey,
    publicJwk: { kty, crv, x, y, kid: base64url(new Uint8Array(thumbprint)), alg: "ES256", use: "sig" },
  };
}

/** The hub's signing key, or undefined when identity to backends is off. */
export function signingKey(env: { AIRLOCK_IDENTITY_SIGNING_KEY?: string }): Promise<SigningKey> | undefined {
  const source = env.AIRLOCK_IDENTITY_SIGNING_KEY;
  if (!source) return undefined;
  if (cached?.source !== source) cached = { source, key: importKey(source) };
  return cached.key;
}

/** The JWKS document (`/.well-known/jwks.json`); undefined when off. */
export async function jwks(env: {
  AIRLOCK_IDENTITY_SIGNING_KEY?: string;
}): Promise<{ keys: JsonWebKey[] } | undefined> {
  const key = signingKey(env);
  return key ? { keys: [(await key).publicJwk] } : undefined;
}

/** The audience of a channel's tokens: that channel's MCP URL at this hub. */
export function identityAudience(origin: string, tunnelId: string, channel: string): string {
  return `${resourceFor(origin, tunnelId)}/${channel}`;
}

/** A signed token for this request's caller on `channel`; undefined when off or nobody is known. */
export async function identityToken(c: Context<WorkerContext>, channel: string): Promise<string | undefined> {
  const identity: CallerIdentity | undefined = c.get("identity");
  const key = signingKey(c.env);
  if (!identity || !key) return undefined;
  const { privateKey, publicJwk } = await key;
  const origin = publicOrigin(c);
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: origin,
    sub: identity.subject,
    aud: identityAudience(origin, c.get("tunnelId"), channel),
    iat: now,
    exp: now + IDENTITY_TOKEN_TTL_S,
    jti: crypto.randomUUID(),
    groups: identity.groups,
    auth_method: identity.method,
    ...(identity.email ? { email: identity.email } : {}),
    ...(identity.name ? { name: identity.name } : {}),
    ...(identity.client ? { client_id: identity.client } : {}),
  };
  const input = `${encodeJson({ alg: "ES256", typ: "JWT", kid: publicJwk.kid })}.${encodeJson(claims)}`;
  // WebCrypto's ECDSA signature is r‖s (IEEE P1363), exactly the JWS encoding.
  const signature = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    privateKey,
    new TextEncoder().encode(input),
  );
  return `${input}.${base64url(new Uint8Array(signature))}`;
}
