/**
 * The OAuth routes of the hub, mounted only when an OpenID issuer is configured:
 *
 *   GET  /.well-known/oauth-protected-resource/v1/mcp/{tunnel}[/{channel}]  RFC 9728 metadata
 *   GET  /.well-known/oauth-authorization-server                           RFC 8414 metadata (library)
 *   POST /oauth/token, /oauth/register                                     token, revocation, DCR (library)
 *   GET  /authorize          consent page (which client, where the code goes)
 *   POST /authorize          the person's answer; approved → the company's sign-in
 *   GET  /oauth/callback     back from the company's sign-in → code to the MCP client
 *
 * The consent page comes before the company's sign-in, as the MCP security guidance
 * requires of a proxy that sends every client through one upstream app (confused deputy):
 * the library binds its handle and the upstream `state` to the browser.
 */
import { Hono, type Context } from "hono";
import type { AuthRequest, ConsentDescription } from "@cloudflare/workers-oauth-provider";
import { TUNNEL_ID_PATTERN } from "../../shared/protocol/index.ts";
import { loadConfig } from "../config.ts";
import { fail, type WorkerContext } from "../context.ts";
import {
  authorizationServer,
  decoyResource,
  helpers,
  maskUnknownTunnel,
  MCP_SCOPE,
  oauthLibrary,
  resourceFor,
  userIdFor,
} from "./authorization-server.ts";
import { admitMetadataClient, ClientMetadataError, isMetadataClientId } from "./client-metadata.ts";
import { publicOrigin, publicRequest } from "./origin.ts";
import { parseIdentitySettings, type IdentitySettings } from "./settings.ts";
import { beginSignIn, CALLBACK_PATH, finishSignIn, type UpstreamGrant, type UpstreamPending } from "./upstream-oidc.ts";

const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

function consentPage(details: ConsentDescription, handle: string, hubName: string): string {
  const name = escapeHtml(details.clientName);
  const loopback = details.redirectIsLoopback
    ? "<p><strong>This sends access to an app on your computer.</strong> Continue only if you just started signing in from it.</p>"
    : "";
  return `<!doctype html>
<meta charset="utf-8">
<title>Allow ${name}?</title>
<h1>Allow ${name} to use ${escapeHtml(hubName)} as you?</h1>
<p>${details.clientDomain ? `Published by <strong>${escapeHtml(details.clientDomain)}</strong>.` : "This app registered itself; its name is not verified."}
Access will be sent to <strong>${escapeHtml(details.redirectHost)}</strong>. You will sign in with your company account next.</p>
${loopback}
<form method="post">
  <input type="hidden" name="handle" value="${escapeHtml(handle)}">
  <button name="decision" value="approve">Allow</button> <button name="decision" value="deny">Deny</button>
</form>`;
}

/** Settings, origin and the authorization server, for one request. */
async function setup(c: Context<WorkerContext>) {
  const settings = parseIdentitySettings(c.env) as IdentitySettings;
  const origin = publicOrigin(c);
  const tunnels = [...loadConfig(c.env).tunnels.keys()];
  const server = await authorizationServer(settings, origin, tunnels, c.env);
  return { settings, origin, tunnels, server, oauth: helpers(server, c.env) };
}

/** The request with each `resource` naming an unknown tunnel masked ({@link maskUnknownTunnel}): query or form body. */
async function masked(request: Request, origin: string, tunnels: readonly string[]): Promise<Request> {
  const mask = (params: URLSearchParams) => {
    const resources = params.getAll("resource");
    params.delete("resource");
    for (const value of resources) params.append("resource", maskUnknownTunnel(value, origin, tunnels));
    return resources.length > 0;
  };
  const url = new URL(request.url);
  if (request.method === "GET") return mask(url.searchParams) ? new Request(url, request) : request;
  if (!request.headers.get("Content-Type")?.startsWith("application/x-www-form-urlencoded")) return request;
  const form = new URLSearchParams(await request.clone().text());
  if (!mask(form)) return request;
  const headers = new Headers(request.headers);
  headers.delete("Content-Length");
  return new Request(url, { method: request.method, headers, body: form.toString() });
}

/** An authorization request the library refused: back to the client when that is safe, else a page here. */
async function refused(error: unknown): Promise<Response> {
  const { AuthorizationError } = await oauthLibrary();
  // A metadata-document client that was not admitted: its redirect URIs are unverified, so a page here.
  if (error instanceof ClientMetadataError)
    return refusalPage("invalid_client", `This app cannot sign in here: ${error.message}.`);
  if (!(error instanceof AuthorizationError)) throw error;
  if (error.redirectTo) return Response.redirect(error.redirectTo, 302);
  return refusalPage(error.code, error.description);
}

function refusalPage(code: string, description: string): Response {
  return new Response(
    `<!doctype html><meta charset="utf-8"><h1>This sign-in request cannot be completed</h1><p>${escapeHtml(code)}: ${escapeHtml(description)}</p>`,
    {
      status: 400,
      headers: { "Content-Type": "text/html; charset=utf-8" },
    },
  );
}

/**
 * The server metadata as this hub means it. The library lists every resource
 * (`protected_resources`, optional in RFC 9728 §4): that would publish every tunnel id, so it
 * goes (clients find the resource from the MCP URL's own metadata). And the library says
 * `client_id_metadata_document_supported` only of its own CIMD support, which the hub leaves
 * off (relay/identity/client-metadata.ts fetches documents instead), so the hub says it
 * whenever the admin allowed document origins: clients that only try CIMD when it is
 * advertised then use it.
 */
async function serverMetadata(response: Response, settings: IdentitySettings): Promise<Response> {
  if (response.status !== 200) return response;
  const { protected_resources: _listed, ...metadata } = (await response.json()) as Record<string, unknown>;
  metadata.client_id_metadata_document_supported = settings.cimdOrigins.length > 0;
  const headers = new Headers(response.headers);
  headers.delete("Content-Length");
  return new Response(JSON.stringify(metadata), { status: 200, headers });
}

function redirect(location: string, headers: Headers): Response {
  headers.set("Location", location);
  return new Response(null, { status: 302, headers });
}

/** The OAuth routes; mount at `/`. Without an issuer configured every path falls through. */
export function identityApi(): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  app.use("*", async (c, next) => (parseIdentitySettings(c.env) ? next() : c.notFound()));

  for (const path of [
    "/.well-known/oauth-protected-resource/v1/mcp/:tunnel_id",
    "/.well-known/oauth-protected-resource/v1/mcp/:tunnel_id/:channel",
  ]) {
    app.get(path, (c) => {
      const tunnelId = c.req.param("tunnel_id") ?? "";
      if (!TUNNEL_ID_PATTERN.test(tunnelId))
        return fail({ status: 404, code: null, message: `"${tunnelId.slice(0, 80)}" is not a tunnel id.` });
      const origin = publicOrigin(c);
      // Built from the URL alone, so it answers alike for every well-formed id and does not
      // tell who asks which tunnels exist (the MCP URL's 401 does not either). A channel URL
      // is under the tunnel's resource: the tunnel's token serves every channel.
      return Response.json(
        {
          resource: resourceFor(origin, tunnelId),
          authorization_servers: [origin],
          scopes_supported: [MCP_SCOPE],
          bearer_methods_supported: ["header"],
        },
        { headers: { "Access-Control-Allow-Origin": "*" } },
      );
    });
  }

  app.get("/authorize", async (c) => {
    const { oauth, settings, origin, tunnels } = await setup(c);
    try {
      const clientId = c.req.query("client_id") ?? "";
      if (isMetadataClientId(clientId)) await admitMetadataClient(settings, clientId, c.env);
      const request = await oauth.parseAuthRequest(await masked(publicRequest(c, origin), origin, tunnels));
      const details = await oauth.describeConsent(request);
      const consent = await oauth.beginConsent(request);
      consent.headers.set("Content-Type", "text/html; charset=utf-8");
      return new Response(consentPage(details, consent.handle, "the Airlock hub"), { headers: consent.headers });
    } catch (error) {
      return refused(error);
    }
  });

  app.post("/authorize", async (c) => {
    const { oauth, settings, origin } = await setup(c);
    const request = publicRequest(c, origin);
    const form = await request.clone().formData();
    const handle = String(form.get("handle") ?? "");
    try {
      if (form.get("decision") !== "approve") {
        const denied = await oauth.denyConsent(request, handle);
        return redirect(denied.redirectTo, denied.headers);
      }
      const approved = await oauth.approveConsent(request, handle, { scope: [MCP_SCOPE] });
      const signIn = await beginSignIn(settings, `${origin}${CALLBACK_PATH}`);
      const { state, headers } = await oauth.beginUpstream(approved.request, {
        data: signIn.pending,
        headers: approved.headers,
      });
      return redirect(signIn.url(state).href, headers);
    } catch (error) {
      return refused(error);
    }
  });

  app.get(CALLBACK_PATH, async (c) => {
    const { oauth, settings, origin } = await setup(c);
    const request = publicRequest(c, origin);
    let original: AuthRequest;
    let data: UpstreamPending;
    let headers: Headers;
    try {
      ({ request: original, data, headers } = await oauth.finishUpstream<UpstreamPending>(request));
    } catch (error) {
      return refused(error);
    }
    const { authorizationErrorRedirect } = await oauthLibrary();
    const url = new URL(request.url);
    if (url.searchParams.get("error"))
      return redirect(
        authorizationErrorRedirect(original, "access_denied", "the sign-in at the identity provider did not complete"),
        headers,
      );
    // Only now, after a sign-in at the provider, does an unknown tunnel's authorization fail.
    if (original.resource === decoyResource(origin))
      return redirect(
        authorizationErrorRedirect(
          original,
          "invalid_target",
          "The resource parameter must name exactly one configured protected resource",
        ),
        headers,
      );
    let person: UpstreamGrant;
    try {
      person = await finishSignIn(settings, url, `${origin}${CALLBACK_PATH}`, data);
    } catch (error) {
      console.error("airlock hub: OpenID sign-in failed", error);
      return redirect(
        authorizationErrorRedirect(
          original,
          "access_denied",
          "the identity provider's answer did not verify; see the hub's logs",
        ),
        headers,
      );
    }
    const { redirectTo } = await oauth.completeAuthorization({
      request: original,
      userId: userIdFor(person.subject),
      metadata: { email: person.email ?? null },
      scope: [MCP_SCOPE],
      // The grant's props; access tokens get the person without the provider's refresh token.
      props: person,
    });
    return redirect(redirectTo, headers);
  });

  // Metadata, token, revocation and registration belong to the library.
  app.on(
    ["GET", "POST", "OPTIONS"],
    [
      "/.well-known/oauth-authorization-server",
      "/.well-known/oauth-authorization-server/*",
      "/oauth/token",
      "/oauth/register",
    ],
    async (c) => {
      const { server, origin, settings, tunnels } = await setup(c);
      // Hono types its context with the runtime's ExecutionContext; the library declares the
      // newer one (with `exports`). Same object at run time.
      const ctx = c.executionCtx as Parameters<typeof server.fetch>[2];
      const response = await server.fetch(await masked(publicRequest(c, origin), origin, tunnels), c.env, ctx);
      return c.req.path.startsWith("/.well-known/") ? serverMetadata(response, settings) : response;
    },
  );
  return app;
}
