/**
 * A refresh at the hub goes back to the identity provider: a real OpenID provider
 * (oidc-provider) on loopback issuing refresh tokens, the hub in workerd, the MCP SDK client
 * signing in headlessly, a real agent in front of server-everything. A person disabled at the
 * provider loses the grant at the next refresh (`invalid_grant`, the grant gone from
 * `airlock admin grants list`); a group change counts from the next refresh. A provider that
 * issues no refresh tokens gets grants capped at `AIRLOCK_OAUTH_REAUTH_AFTER`. (That second hub's
 * tunnel also has no static client token: with OAuth on, people signing in is enough.)
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { main as adminCli } from "../../agent/cli/admin.ts";
import { connectWithOAuth, HeadlessOAuthProvider } from "../../agent/demo/oauth-login.ts";
import { connectClient } from "../support/hub-stack.ts";
import { mcpPost, tunnelId } from "../support/hub.ts";
import { startIdentityStack, type IdentityStack } from "../support/identity-stack.ts";

const AUDITOR_TOKEN = "refresh-test-auditor-token";
/** Engineering may call anything; anyone else only connect and list (so echo is refused by the default). */
const POLICY = `
policy_version: 1
default: deny
rules:
  - name: engineering
    allow: { groups: [engineering] }
  - name: everyone-connects
    allow: { methods: [initialize, "notifications/*", "tools/list", ping] }
`;
const USERS = [
  { login: "alice", email: "alice@example.com", name: "Alice", groups: ["engineering"] },
  { login: "bob", email: "bob@example.com", name: "Bob", groups: ["sales"] },
];

interface GrantRow {
  id: string;
  client_id: string;
  created_at: string;
  expires_at: string | null;
}

/** `airlock admin grants list <hub> --subject S --json`, in-process. */
async function listGrants(origin: string, subject: string): Promise<GrantRow[]> {
  let stdout = "";
  let stderr = "";
  const code = await adminCli(["grants", "list", origin, "--subject", subject, "--token", "env:ADMIN", "--json"], {
    stdout: (text: string) => {
      stdout += text;
    },
    stderr: (text: string) => {
      stderr += text;
    },
    env: { ADMIN: AUDITOR_TOKEN },
    cwd: process.cwd(),
  });
  assert.equal(code, 0, stderr);
  return (JSON.parse(stdout) as { grants: GrantRow[] }).grants;
}

function refresh(origin: string, person: HeadlessOAuthProvider, refreshToken = person.savedTokens!.refresh_token!) {
  return fetch(`${origin}/oauth/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "refresh_token",
      refresh_token: refreshToken,
      client_id: person.client!.client_id,
    }),
  });
}

/** Refresh and keep the new tokens, as a client would; fails the test unless the hub answers 200. */
async function refreshed(origin: string, person: HeadlessOAuthProvider): Promise<string> {
  const response = await refresh(origin, person);
  const body = (await response.json()) as { access_token: string; refresh_token: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  person.savedTokens = { ...person.savedTokens!, ...body };
  return body.access_token;
}

async function echo(mcpUrl: URL, token: string, message: string): Promise<string> {
  const { client } = await connectClient(mcpUrl, { token });
  try {
    const result = await client.callTool({ name: "echo", arguments: { message } });
    return (result as { content: Array<{ text: string }> }).content[0]!.text;
  } finally {
    await client.close();
  }
}

describe("a provider that issues refresh tokens", { concurrency: false }, () => {
  let stack: IdentityStack;
  let origin: string;
  const alice = new HeadlessOAuthProvider("alice", "http://127.0.0.1:33450/callback");
  const bob = new HeadlessOAuthProvider("bob", "http://127.0.0.1:33451/callback");
  const clients: Client[] = [];

  before(async () => {
    stack = await startIdentityStack(
      tunnelId(0x1e5),
      {},
      { users: USERS, policy: POLICY, auditorToken: AUDITOR_TOKEN },
    );
    origin = stack.hub.url.origin;
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stack?.close();
  });

  test("alice signs in (the hub asks the provider for offline access) and refreshes", async () => {
    clients.push(await connectWithOAuth(stack.mcpUrl, alice));
    const asked = stack.idp.authorizationRequests.at(-1)!;
    assert.deepEqual(asked.get("scope")?.split(" "), ["openid", "email", "profile", "offline_access"]);
    assert.equal(asked.get("prompt"), "consent", "OpenID Connect Core §11: offline access with prompt=consent");
    const token = await refreshed(origin, alice);
    assert.equal(await echo(stack.mcpUrl, token, "refreshed"), "Echo: refreshed");
    const [grant] = await listGrants(origin, "alice");
    // Checked at the provider at every refresh, the grant keeps the library's 30 days.
    const days = (Date.parse(grant!.expires_at!) - Date.parse(grant!.created_at)) / 86_400_000;
    assert.ok(days > 29, `grant lifetime ${days} days`);
  });

  test("bob moved into engineering at the provider may call echo after his next refresh", async () => {
    const bobClient = await connectWithOAuth(stack.mcpUrl, bob);
    clients.push(bobClient);
    await assert.rejects(bobClient.callTool({ name: "echo", arguments: { message: "as sales" } }), /no rule allows/);
    stack.idp.setGroups("bob", ["engineering"]);
    // The access token he holds still carries the groups of when it was issued.
    await assert.rejects(echo(stack.mcpUrl, bob.savedTokens!.access_token, "same token"), /no rule allows/);
    const token = await refreshed(origin, bob);
    assert.equal(await echo(stack.mcpUrl, token, "as engineer"), "Echo: as engineer");
    // The grant itself changed, not only that access token: the next refresh still says engineering.
    assert.equal(await echo(stack.mcpUrl, await refreshed(origin, bob), "again"), "Echo: again");
  });

  test("alice disabled at the provider: her next refresh is invalid_grant, the grant and its tokens are gone", async () => {
    const grantsBefore = await listGrants(origin, "alice");
    assert.equal(grantsBefore.length, 1);
    stack.idp.disable("alice");
    const response = await refresh(origin, alice);
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: string; error_description: string };
    assert.equal(body.error, "invalid_grant");
    assert.match(body.error_description, /identity provider refused/);
    assert.deepEqual(await listGrants(origin, "alice"), [], "the grant is revoked");
    // Revoking the grant took its access token with it: no wait for the token's lifetime.
    const ping = await mcpPost(
      stack.mcpUrl,
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { token: alice.savedTokens!.access_token },
    );
    assert.equal(ping.status, 401);
    assert.match(ping.headers.get("WWW-Authenticate") ?? "", /error="invalid_token"/);
  });

  test("the provider unreachable: the refresh is temporarily_unavailable and the grant is kept", async () => {
    const grants = await listGrants(origin, "bob");
    assert.equal(grants.length, 1);
    await stack.idp.close();
    const response = await refresh(origin, bob);
    assert.equal(response.status, 503);
    assert.equal(((await response.json()) as { error: string }).error, "temporarily_unavailable");
    assert.deepEqual(
      (await listGrants(origin, "bob")).map((grant) => grant.id),
      grants.map((grant) => grant.id),
    );
  });
});

describe("a provider that issues no refresh tokens", () => {
  const REAUTH_AFTER = 7200;
  let stack: IdentityStack;
  const alice = new HeadlessOAuthProvider("alice", "http://127.0.0.1:33452/callback");
  let client: Client | undefined;

  before(async () => {
    stack = await startIdentityStack(
      tunnelId(0x1e6),
      { reauthAfter: REAUTH_AFTER },
      { refreshTokens: false, auditorToken: AUDITOR_TOKEN, clientTokens: [] },
    );
  });
  after(async () => {
    await client?.close();
    await stack?.close();
  });

  test("the grant lives AIRLOCK_OAUTH_REAUTH_AFTER, then the person signs in again; refresh works until then", async () => {
    client = await connectWithOAuth(stack.mcpUrl, alice);
    const asked = stack.idp.authorizationRequests.at(-1)!;
    assert.equal(asked.get("scope"), "openid email profile", "no offline_access: discovery does not list it");
    assert.equal(asked.get("prompt"), null);
    const [grant] = await listGrants(stack.hub.url.origin, "alice");
    const seconds = (Date.parse(grant!.expires_at!) - Date.parse(grant!.created_at)) / 1000;
    assert.ok(Math.abs(seconds - REAUTH_AFTER) <= 2, `grant lifetime ${seconds} s, expected ${REAUTH_AFTER}`);
    const token = await refreshed(stack.hub.url.origin, alice);
    assert.equal(await echo(stack.mcpUrl, token, "capped"), "Echo: capped");
  });

  test("a tunnel without static client tokens: people sign in, and the usual test token is just an unknown token", async () => {
    const response = await mcpPost(stack.mcpUrl, { jsonrpc: "2.0", id: 1, method: "ping" });
    assert.equal(response.status, 401);
    assert.match(response.headers.get("WWW-Authenticate") ?? "", /error="invalid_token", resource_metadata=/);
    assert.ok(client, "alice signed in to this tunnel above");
  });
});
