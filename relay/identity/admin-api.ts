/**
 * The hub admin's grant routes, over the OAuth library's own grant store
 * (`OAuthHelpers.listUserGrants` / `revokeGrant`), authenticated with a hub-wide auditor
 * token (`AIRLOCK_AUDITOR_TOKEN_SHA256`; digests, compared in constant time):
 *
 *   GET    /v1/admin/grants?subject=S                 the person's grants (every client, every tunnel)
 *   DELETE /v1/admin/grants/{grant_id}?subject=S      revoke one: its access and refresh tokens die with it
 *
 * The library keys grants by user, so a listing names the subject (the provider's `sub`).
 */
import { Hono, type Context } from "hono";
import type { GrantSummary, OAuthHelpers } from "@cloudflare/workers-oauth-provider";
import { loadConfig } from "../config.ts";
import { credentialCheck, fail, type WorkerContext } from "../context.ts";
import { loadEnforcement } from "../policy/load.ts";
import { authorizationServer, helpers, userIdFor } from "./authorization-server.ts";
import { publicOrigin } from "./origin.ts";
import { parseIdentitySettings } from "./settings.ts";

/** One grant as the admin API shows it. */
export interface GrantView {
  id: string;
  subject: string;
  client_id: string;
  scope: string[];
  resource: string[];
  created_at: string;
  expires_at: string | null;
}

function view(grant: GrantSummary, subject: string): GrantView {
  const resource = grant.resource === undefined ? [] : [grant.resource].flat();
  return {
    id: grant.id,
    subject,
    client_id: grant.clientId,
    scope: grant.scope,
    resource,
    created_at: new Date(grant.createdAt * 1000).toISOString(),
    expires_at: grant.expiresAt === undefined ? null : new Date(grant.expiresAt * 1000).toISOString(),
  };
}

async function allGrants(oauth: OAuthHelpers, userId: string): Promise<GrantSummary[]> {
  const grants: GrantSummary[] = [];
  let cursor: string | undefined;
  do {
    const page = await oauth.listUserGrants(userId, { limit: 1000, ...(cursor ? { cursor } : {}) });
    grants.push(...page.items);
    cursor = page.cursor;
  } while (cursor);
  return grants;
}

const SUBJECT_MESSAGE =
  "Name the person: ?subject=<the identity provider's sub> (as the audit log's subject field shows it).";

/** The admin routes, mounted at `/v1/admin`. Without OAuth configured they answer 404. */
export function adminApi(): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  app.use(
    "*",
    credentialCheck((c) => loadEnforcement(c.env).auditorDigests, {
      code: "invalid_api_key",
      message:
        "Missing or invalid admin token: send Authorization: Bearer <hub-wide auditor token> (AIRLOCK_AUDITOR_TOKEN_SHA256).",
    }),
  );
  app.use("*", async (c, next) =>
    parseIdentitySettings(c.env)
      ? next()
      : fail({
          status: 404,
          code: null,
          message: "OAuth is off on this hub (AIRLOCK_OIDC_ISSUER is not set): there are no grants.",
        }),
  );

  const oauthFor = async (c: Context<WorkerContext>) => {
    const settings = parseIdentitySettings(c.env)!;
    const server = await authorizationServer(settings, publicOrigin(c), [...loadConfig(c.env).tunnels.keys()], c.env);
    return helpers(server, c.env);
  };

  app.get("/grants", async (c) => {
    const subject = c.req.query("subject");
    if (!subject) return fail({ status: 400, code: null, param: "subject", message: SUBJECT_MESSAGE });
    const grants = await allGrants(await oauthFor(c), userIdFor(subject));
    return c.json({ grants: grants.map((grant) => view(grant, subject)) });
  });

  app.delete("/grants/:grant_id", async (c) => {
    const subject = c.req.query("subject");
    if (!subject) return fail({ status: 400, code: null, param: "subject", message: SUBJECT_MESSAGE });
    const oauth = await oauthFor(c);
    const grantId = c.req.param("grant_id");
    const known = (await allGrants(oauth, userIdFor(subject))).some((grant) => grant.id === grantId);
    if (!known)
      return fail({
        status: 404,
        code: null,
        message: `No grant ${grantId.slice(0, 80)} for subject ${JSON.stringify(subject.slice(0, 80))}; list them with GET /v1/admin/grants?subject=…`,
      });
    await oauth.revokeGrant(grantId, userIdFor(subject));
    return c.json({ revoked: grantId, subject });
  });
  return app;
}
