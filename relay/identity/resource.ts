/**
 * The MCP URL as an OAuth protected resource: who is calling, for policy and audit.
 *
 * A static client token (machine clients) is checked first, exactly as before, and names
 * its caller `token:<digest prefix>`. With OAuth on, any other bearer token must be an
 * access token this hub issued for this tunnel's MCP URL (RFC 8707 audience: a token for
 * another tunnel is refused); without one the answer is 401 with
 * `WWW-Authenticate: Bearer resource_metadata=…` so a client can discover how to sign in.
 */
import type { Context, MiddlewareHandler } from "hono";
import { sha256Hex } from "../../shared/audit/digest.ts";
import type { CallerIdentity } from "../../shared/policy/identity.ts";
import { matchesDigest } from "../auth.ts";
import { loadConfig } from "../config.ts";
import { fail, type WorkerContext } from "../context.ts";
import { authorizationServer, MCP_SCOPE, resourceFor } from "./authorization-server.ts";
import { publicOrigin } from "./origin.ts";
import { parseIdentitySettings } from "./settings.ts";
import type { UpstreamPerson } from "./upstream-oidc.ts";

/** Where a tunnel's protected-resource metadata lives (RFC 9728 §3.1: the path is suffixed). */
export function resourceMetadataUrl(origin: string, tunnelId: string): string {
  return `${origin}/.well-known/oauth-protected-resource/v1/mcp/${tunnelId}`;
}

/** The identity of a static client token: not a person, but which token. */
export async function staticTokenIdentity(token: string): Promise<CallerIdentity> {
  return { subject: `token:${(await sha256Hex(token)).slice(0, 12)}`, groups: [], method: "static_token" };
}

function bearerToken(c: Context<WorkerContext>): string | undefined {
  return /^Bearer +(\S+) *$/i.exec(c.req.header("Authorization") ?? "")?.[1];
}

function challenge(c: Context<WorkerContext>, origin: string, presented: boolean): Response {
  const response = fail({
    status: 401,
    code: "invalid_api_key",
    message: presented
      ? "The access token is not valid for this tunnel (expired, revoked, or issued for another MCP URL); sign in again."
      : "Missing credentials: sign in (OAuth; see WWW-Authenticate) or send Authorization: Bearer <client token>.",
  });
  const error = presented ? `error="invalid_token", ` : "";
  response.headers.set(
    "WWW-Authenticate",
    `Bearer ${error}resource_metadata="${resourceMetadataUrl(origin, c.get("tunnelId"))}", scope="${MCP_SCOPE}"`,
  );
  return response;
}

/**
 * Authenticate an MCP request. `staticCheck` is the ingress's own token middleware; with
 * OAuth off (or on a tunnel that passes `Authorization` to its server, whose hub token
 * travels in `hubTokenHeader`) it decides alone.
 */
export function withIdentity(
  staticCheck: MiddlewareHandler<WorkerContext>,
  hubTokenHeader: string,
): MiddlewareHandler<WorkerContext> {
  return async (c, next) => {
    const settings = parseIdentitySettings(c.env);
    const tunnel = c.get("tunnel");
    const token = bearerToken(c);
    if (!settings || tunnel?.pass_client_authorization) {
      // A pass-through tunnel without hub tokens checks nothing: then there is no one to name.
      const checked = tunnel?.pass_client_authorization
        ? tunnel.client_token_sha256.length > 0
          ? c.req.header(hubTokenHeader)?.trim()
          : undefined
        : token;
      return staticCheck(c, async () => {
        if (checked) c.set("identity", await staticTokenIdentity(checked));
        await next();
      });
    }
    const origin = publicOrigin(c);
    // An unknown tunnel is answered like a known one, so the challenge does not confirm which exist.
    if (!token || !tunnel) return challenge(c, origin, token !== undefined);
    if (await matchesDigest(token, tunnel.client_token_sha256)) {
      c.set("identity", await staticTokenIdentity(token));
      return next();
    }
    const server = await authorizationServer(settings, origin, [...loadConfig(c.env).tunnels.keys()], c.env);
    const validated = await server.validateToken<UpstreamPerson>(resourceFor(origin, c.get("tunnelId")), token, c.env);
    if (!validated) return challenge(c, origin, true);
    const person = validated.props;
    c.set("identity", {
      subject: person.subject,
      ...(person.email ? { email: person.email } : {}),
      ...(person.name ? { name: person.name } : {}),
      groups: person.groups,
      client: validated.clientId,
      method: "oauth",
    });
    return next();
  };
}
