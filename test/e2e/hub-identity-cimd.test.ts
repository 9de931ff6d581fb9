/**
 * Client ID Metadata Documents from allowlisted origins only (`AIRLOCK_OAUTH_CIMD_ORIGINS`):
 * a real OpenID provider on loopback, the hub in workerd, metadata documents served by real
 * HTTP servers on loopback (one allowlisted, one not, each counting the requests it gets),
 * a real agent in front of server-everything.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tunnelId } from "../support/hub.ts";
import { connectClient } from "../support/hub-stack.ts";
import { startIdentityStack, type IdentityStack } from "../support/identity-stack.ts";
import { followSignIn } from "../../agent/demo/test-idp.ts";

const TUNNEL = tunnelId(0x1f1);
const REDIRECT = "http://127.0.0.1:33440/callback";

/** A loopback server answering `routes[path]` (a JSON document or a redirect), counting requests. */
interface DocumentServer {
  origin: string;
  requests: string[];
  server: Server;
}

async function startDocumentServer(
  routes: (origin: string) => Record<string, unknown | { redirect: string }>,
): Promise<DocumentServer> {
  const requests: string[] = [];
  let table: Record<string, unknown> = {};
  const server = createServer((request, response) => {
    requests.push(request.url ?? "");
    const entry = table[request.url ?? ""] as { redirect?: string } | undefined;
    if (entry === undefined) return void response.writeHead(404).end();
    if (typeof entry.redirect === "string") return void response.writeHead(302, { Location: entry.redirect }).end();
    response.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(entry));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  table = routes(origin);
  return { origin, requests, server };
}

const metadata = (clientId: string, redirectUris = [REDIRECT]) => ({
  client_id: clientId,
  client_name: "Metadata Test App",
  redirect_uris: redirectUris,
  token_endpoint_auth_method: "none",
});

let stack: IdentityStack;
let allowed: DocumentServer;
let other: DocumentServer;
let mcpUrl: URL;

before(async () => {
  allowed = await startDocumentServer((origin) => ({
    "/app.json": metadata(`${origin}/app.json`),
    "/elsewhere.json": metadata(`${origin}/elsewhere.json`, ["https://attacker.example/cb"]),
    "/moved.json": { redirect: `${origin}/app.json` },
  }));
  other = await startDocumentServer((origin) => ({ "/app.json": metadata(`${origin}/app.json`) }));
  stack = await startIdentityStack(TUNNEL, { cimdOrigins: allowed.origin, cimdAllowLoopback: true });
  mcpUrl = stack.mcpUrl;
});

after(async () => {
  await stack?.close();
  await Promise.all([allowed, other].map((docs) => docs && new Promise((resolve) => docs.server.close(resolve))));
});

function authorizeUrl(clientId: string, challenge = "x".repeat(43)): URL {
  const url = new URL("/authorize", stack.hub.url.origin);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: "mcp",
    state: "s1",
    code_challenge: challenge,
    code_challenge_method: "S256",
    resource: mcpUrl.href,
  }).toString();
  return url;
}

describe("client metadata documents", { concurrency: false }, () => {
  test("the server metadata advertises client_id_metadata_document_supported (document origins are allowed)", async () => {
    const response = await fetch(new URL("/.well-known/oauth-authorization-server", stack.hub.url.origin));
    assert.equal(response.status, 200);
    const metadata = (await response.json()) as Record<string, unknown>;
    assert.equal(metadata.client_id_metadata_document_supported, true);
    assert.equal(metadata.issuer, stack.hub.url.origin);
    assert.equal(metadata.protected_resources, undefined, "still no list of the hub's tunnels");
  });

  test("an allowlisted document's client signs in with client_id = its URL, redeems the code and calls a tool", async () => {
    const clientId = `${allowed.origin}/app.json`;
    const verifier = randomBytes(32).toString("base64url");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const consent = await fetch(authorizeUrl(clientId, challenge));
    assert.equal(consent.status, 200);
    assert.match(await consent.text(), /Allow Metadata Test App to use/);
    assert.ok(allowed.requests.includes("/app.json"), "the hub fetched the document");

    const back = await followSignIn(authorizeUrl(clientId, challenge), REDIRECT, "alice");
    const code = back.searchParams.get("code");
    assert.ok(code, back.href);
    const response = await fetch(new URL("/oauth/token", stack.hub.url.origin), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: REDIRECT,
        client_id: clientId,
        code_verifier: verifier,
        resource: mcpUrl.href,
      }),
    });
    assert.equal(response.status, 200);
    const { access_token: token } = (await response.json()) as { access_token: string };
    const { client } = await connectClient(mcpUrl, { token });
    try {
      const result = await client.callTool({ name: "echo", arguments: { message: "cimd" } });
      assert.equal((result as { content: Array<{ text: string }> }).content[0]!.text, "Echo: cimd");
    } finally {
      await client.close();
    }
  });

  test("a client_id on an origin not on the allowlist is refused without any fetch", async () => {
    const response = await fetch(authorizeUrl(`${other.origin}/app.json`), { redirect: "manual" });
    assert.equal(response.status, 400);
    assert.match(await response.text(), /not allowed here.*AIRLOCK_OAUTH_CIMD_ORIGINS/);
    assert.deepEqual(other.requests, [], "the hub did not contact the origin");
  });

  test("a document naming a redirect URI outside AIRLOCK_OAUTH_REDIRECT_ORIGINS is refused", async () => {
    const response = await fetch(authorizeUrl(`${allowed.origin}/elsewhere.json`), { redirect: "manual" });
    assert.equal(response.status, 400);
    assert.match(await response.text(), /attacker\.example.*not on this hub&#39;s allowlist/);
  });

  test("a document URL that redirects is refused, and the redirect is not followed", async () => {
    const before = allowed.requests.length;
    const response = await fetch(authorizeUrl(`${allowed.origin}/moved.json`), { redirect: "manual" });
    assert.equal(response.status, 400);
    assert.match(await response.text(), /answered 302/);
    assert.deepEqual(allowed.requests.slice(before), ["/moved.json"], "only the named URL was fetched");
  });
});
