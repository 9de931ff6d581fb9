/**
 * The hub Worker as a Hono app: the agent API under `/v1/tunnels`, the MCP ingress
 * under `/v1/mcp`, and every error in the upstream service's envelope.
 */
import { Hono, type ErrorHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { agentApi } from "./agent-api.ts";
import { auditApi } from "./audit/audit-api.ts";
import { HubConfigError } from "./config.ts";
import { disconnectApi } from "./connection.ts";
import { tunnelsAdminApi } from "./admin/tunnels-api.ts";
import { adminApi } from "./identity/admin-api.ts";
import { jwks } from "./identity/backend-token.ts";
import { identityApi } from "./identity/routes.ts";
import { fail, type WorkerContext, type WorkerDeps } from "./context.ts";
import { ingressApi } from "./ingress.ts";
import { relayMode } from "./upstream/relay-api.ts";

export type { WorkerDeps, WorkerEnv } from "./context.ts";

/** Build the hub app; `deps` replaces the Durable Object binding in tests. */
export function createWorkerApp(deps: WorkerDeps = {}): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  app.get("/healthz", (c) => c.text("ok\n"));
  // Tunnels with an upstream_url are relayed (relay/upstream/); the others are served by the hub.
  app.use("/v1/tunnels/:tunnel_id/*", relayMode(deps, onError));
  app.route("/v1/tunnels", agentApi(deps));
  app.route("/v1/mcp", ingressApi(deps));
  app.route("/v1/audit", auditApi(deps));
  // Before the grant routes: those guard all of /v1/admin/* with the auditor token.
  app.route("/v1/admin/tunnels", tunnelsAdminApi());
  app.route("/v1/admin", adminApi());
  // The public half of the key that signs identity tokens for backends (404 while that is off).
  app.get("/.well-known/jwks.json", async (c) => {
    const keys = await jwks(c.env);
    return keys
      ? c.json(keys, 200, { "Cache-Control": "max-age=300" })
      : fail({
          status: 404,
          code: null,
          message: "Identity to backends is off on this hub (AIRLOCK_IDENTITY_SIGNING_KEY is not set).",
        });
  });
  app.route("/", disconnectApi(deps));
  // OAuth for MCP clients; every path falls through unless AIRLOCK_OIDC_ISSUER is set.
  app.route("/", identityApi());
  app.notFound((c) =>
    fail({
      status: 404,
      code: null,
      message: `No route for ${c.req.method} ${new URL(c.req.url).pathname} on this hub.`,
    }),
  );
  app.onError(onError);
  return app;
}

const onError: ErrorHandler<WorkerContext> = (error) => {
  if (error instanceof HTTPException) return error.getResponse();
  if (error instanceof HubConfigError) return fail({ status: 500, code: "hub_misconfigured", message: error.message });
  console.error("airlock hub: unhandled error", error);
  return fail({ status: 500, code: null, message: "The hub failed while handling this request; see the Worker logs." });
};
