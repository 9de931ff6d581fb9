/**
 * What every relay route shares: the Worker's bindings, per-request variables, and
 * the middleware that resolves `/:tunnel_id`, checks credentials and bounds bodies.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bodyLimit } from "hono/body-limit";
import { TUNNEL_ID_PATTERN } from "../shared/protocol/index.ts";
import { matchesDigest } from "./auth.ts";
import { loadConfig, type HubConfig, type HubVars, type TunnelConfig } from "./config.ts";
import { errorResponse, invalidTunnelId, type HubError } from "./errors.ts";
import { objectNamed } from "./object-ids.ts";
import type { TunnelHubApi } from "./hub/hub-service.ts";
import type { TunnelHub } from "./hub/tunnel-hub.ts";
import type { IngressTrace } from "./telemetry/ingress.ts";
import type { CallerIdentity } from "../shared/policy/identity.ts";
import type { IdentityBindings } from "./identity/authorization-server.ts";
import type { IdentityVars } from "./identity/settings.ts";
import { registeredTunnel, type RegistryBindings } from "./admin/registry-lookup.ts";

/** The Worker's environment: configuration variables plus the `TunnelHub` namespace. */
export interface WorkerEnv extends HubVars, IdentityVars, IdentityBindings, RegistryBindings {
  TUNNEL_HUB: DurableObjectNamespace<TunnelHub>;
  /** Set only by the local runner: authenticates its front proxy's disconnect reports (relay/connection.ts). */
  AIRLOCK_INTERNAL_SECRET?: string;
}

export interface RelayVariables {
  config: HubConfig;
  tunnelId: string;
  /** Undefined for a well-formed id the hub does not know; credentials then never match. */
  tunnel: TunnelConfig | undefined;
  hub: TunnelHubApi;
  /** The MCP request's ingress span, when the hub traces. */
  trace?: IngressTrace;
  /** Who is calling (relay/identity/resource.ts); unset on routes without client authentication. */
  identity?: CallerIdentity;
}

export type WorkerContext = { Bindings: WorkerEnv; Variables: RelayVariables };

/** Injected seams: tests can run the app with an in-process hub instead of a Durable Object. */
export interface WorkerDeps {
  /** The hub of one tunnel; defaults to the `TUNNEL_HUB` Durable Object named by the tunnel id. */
  hub?: (env: WorkerEnv, tunnelId: string) => TunnelHubApi;
}

/** The hub of one tunnel: the injected one, or the `TUNNEL_HUB` Durable Object named by the tunnel id. */
export function hubFor(deps: WorkerDeps, env: WorkerEnv, tunnelId: string): TunnelHubApi {
  return deps.hub ? deps.hub(env, tunnelId) : objectNamed(env.TUNNEL_HUB, tunnelId);
}

/** Respond with the envelope for `error` (a Hono-friendly wrapper). */
export function fail(error: HubError): Response {
  return errorResponse(error);
}

/** Resolve `:tunnel_id` (format, configuration, hub stub) for the routes below it. */
export function tunnelContext(deps: WorkerDeps): MiddlewareHandler<WorkerContext> {
  return async (c, next) => {
    const tunnelId = c.req.param("tunnel_id") ?? "";
    if (!TUNNEL_ID_PATTERN.test(tunnelId)) return fail(invalidTunnelId(tunnelId));
    const config = loadConfig(c.env);
    c.set("config", config);
    c.set("tunnelId", tunnelId);
    // Static tunnels first (no extra hop); an id they lack may have been made at runtime.
    c.set("tunnel", config.tunnels.get(tunnelId) ?? (await registeredTunnel(c.env, tunnelId)));
    c.set("hub", hubFor(deps, c.env, tunnelId));
    await next();
  };
}

/** The one challenge every unauthenticated answer carries, whatever the tunnel or the credential sent. */
const CHALLENGE = 'Bearer realm="airlock"';

/**
 * `Authorization: Bearer <key>` (or the token in another header) checked against the
 * tunnel's digests. Hono's middleware does the header parsing; the comparison is ours
 * because the hub holds digests, not keys. A missing, malformed or wrong credential —
 * on a hub tunnel, a relay tunnel, a pass-through tunnel or one that does not exist —
 * gets the very same answer (status, body, headers), so nobody without a key can tell
 * tunnels or their modes apart. `message` must therefore say nothing about the tunnel.
 */
export function credentialCheck(
  digests: (c: Context<WorkerContext>) => readonly string[],
  what: { header?: string; message: string; code: HubError["code"] },
): MiddlewareHandler<WorkerContext> {
  const answer = () => {
    const response = fail({ status: 401, code: what.code, message: what.message });
    response.headers.set("WWW-Authenticate", CHALLENGE);
    return response;
  };
  return bearerAuth<WorkerContext>({
    headerName: what.header,
    prefix: what.header ? "" : "Bearer",
    verifyToken: (token, c) => matchesDigest(token, digests(c)),
    noAuthenticationHeader: { message: answer, wwwAuthenticateHeader: CHALLENGE },
    invalidAuthenticationHeader: { message: answer, wwwAuthenticateHeader: CHALLENGE },
    invalidToken: { message: answer, wwwAuthenticateHeader: CHALLENGE },
  });
}

/** What every unauthenticated answer of the agent API says, hub and relay tunnels alike. */
export const AGENT_KEY_MESSAGE =
  "Missing or invalid agent key for this tunnel: send Authorization: Bearer <agent key> " +
  "(control_plane.api_key / CONTROL_PLANE_API_KEY; behind a relay, the relay's agent key, not the upstream's) and check control_plane.tunnel_id.";

/** Reject bodies over `limit(c)` bytes with 413 `request_body_too_large`. */
export function sizeLimit(
  limit: (c: Context<WorkerContext>) => number,
  what: string,
): MiddlewareHandler<WorkerContext> {
  return (c, next) => {
    const maxSize = limit(c);
    return bodyLimit({
      maxSize,
      onError: () =>
        fail({
          status: 413,
          code: "request_body_too_large",
          message: `${what} is larger than the hub's limit of ${maxSize} bytes; send a smaller payload.`,
        }),
    })(c, next);
  };
}

/** Schedule work that must outlive the response (Workers) or just run it (tests without an execution context). */
export function background(c: Context<WorkerContext>, promise: Promise<unknown>): void {
  const guarded = promise.catch((error: unknown) => console.error("airlock hub: background task failed", error));
  try {
    c.executionCtx.waitUntil(guarded);
  } catch {
    // No execution context outside the Workers runtime; the promise runs anyway.
  }
}
