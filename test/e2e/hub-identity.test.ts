/**
 * Identity at the hub, end to end: a real OpenID provider (oidc-provider) on loopback as
 * the company IdP with two users in two groups; the hub (workerd) as the OAuth
 * authorization server; the MCP SDK client's own OAuth support signing in headlessly
 * (401 → protected-resource metadata → authorization-server metadata → DCR → authorize
 * with PKCE and `resource` → the hub's consent → the IdP's login and consent → token);
 * calls through a real agent to server-everything; policy by group; audit by subject.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { startLocalHub, type LocalHub } from "../../agent/hub-local/run.ts";
import { parseNdjson } from "../../shared/audit/ndjson.ts";
import { recordHash } from "../../shared/audit/chain.ts";
import { sha256Hex } from "../../shared/audit/digest.ts";
import type { AuditRecord } from "../../shared/audit/record.ts";
import { everythingStdioCommand } from "../support/everything.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, tunnelId } from "../support/hub.ts";
import { waitForAgent } from "../../agent/demo/stack.ts";
import { connectClient, startHubAgent, type HubAgent } from "../support/hub-stack.ts";
import { connectWithOAuth, HeadlessOAuthProvider } from "../../agent/demo/oauth-login.ts";
import { followSignIn, startTestIdp, type TestIdp } from "../../agent/demo/test-idp.ts";
import { main as adminCli } from "../../agent/cli/admin.ts";
import { main as auditCli } from "../../agent/cli/audit.ts";

/** Run `airlock admin …` in-process with the auditor token in the environment. */
async function cli(main: typeof adminCli, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io = {
    stdout: (text: string) => {
      stdout += text;
    },
    stderr: (text: string) => {
      stderr += text;
    },
    env: { ADMIN_TOKEN: AUDITOR_TOKEN, WRONG_TOKEN: "not-the-token" },
    cwd: process.cwd(),
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}
const admin = (argv: string[]) => cli(adminCli, argv);

const TUNNEL = tunnelId(0x1d1);
const OTHER_TUNNEL = tunnelId(0x1d2);
const AUDITOR_TOKEN = "identity-test-auditor-token";
const POLICY = `
policy_version: 1
default: allow
rules:
  - name: sales-no-echo
    deny: { tools: [echo], groups: [sales] }
rate_limits:
  - { name: sums-per-person, per: subject, tools: [get-sum], calls: 2, window: 1h }
`;

let idp: TestIdp;
let hub: LocalHub;
let agent: HubAgent;
let stateDir: string;
let origin: string;
let mcpUrl: URL;
const alice = new HeadlessOAuthProvider("alice");
const bob = new HeadlessOAuthProvider("bob");
let aliceClient: Client;
let bobClient: Client;

async function auditRecords(): Promise<AuditRecord[]> {
  const response = await fetch(new URL(`/v1/audit/${TUNNEL}`, origin), {
    headers: { Authorization: `Bearer ${AUDITOR_TOKEN}` },
  });
  const parsed = parseNdjson(await response.text());
  assert.ok(parsed.ok);
  return parsed.records;
}

function text(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]!.text;
}

before(async () => {
  idp = await startTestIdp([
    { login: "alice", email: "alice@example.com", name: "Alice", groups: ["engineering"] },
    { login: "bob", email: "bob@example.com", name: "Bob", groups: ["sales"] },
  ]);
  stateDir = mkdtempSync(join(tmpdir(), "airlock-identity-"));
  hub = await startLocalHub({
    stateDir,
    policy: POLICY,
    auditorToken: AUDITOR_TOKEN,
    tunnels: [TUNNEL, OTHER_TUNNEL].map((id) => ({ id, agentKeys: [AGENT_KEY], clientTokens: [CLIENT_TOKEN] })),
    oidc: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret },
  });
  origin = hub.url.origin;
  idp.register(`${origin}/oauth/callback`);
  mcpUrl = new URL(`/v1/mcp/${TUNNEL}`, origin);
  agent = await startHubAgent(hub.url, TUNNEL, ["--mcp.command", everythingStdioCommand().join(" ")]);
});

after(async () => {
  await Promise.all([aliceClient?.close(), bobClient?.close()]);
  await agent?.stop();
  await hub?.close();
  await idp?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("discovery", () => {
  test("no token: 401 naming the tunnel's protected-resource metadata, which names the hub as issuer", async () => {
    const response = await fetch(mcpUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    assert.equal(response.status, 401);
    const challenge = response.headers.get("WWW-Authenticate") ?? "";
    const metadataUrl = `${origin}/.well-known/oauth-protected-resource/v1/mcp/${TUNNEL}`;
    assert.match(challenge, /^Bearer /);
    assert.ok(challenge.includes(`resource_metadata="${metadataUrl}"`), challenge);
    const metadata = (await (await fetch(metadataUrl)).json()) as { resource: string; authorization_servers: string[] };
    assert.equal(metadata.resource, mcpUrl.href);
    assert.deepEqual(metadata.authorization_servers, [origin]);
    // A channel URL has its own document, naming the tunnel's URL: one token serves every channel.
    const channel = (await (await fetch(`${metadataUrl}/docs`)).json()) as { resource: string };
    assert.equal(channel.resource, mcpUrl.href);
    // An unknown tunnel gets the same answers: neither the 401 nor the metadata tells which tunnels exist.
    const unknown = tunnelId(0xbad);
    const unknownMetadata = (await (
      await fetch(`${origin}/.well-known/oauth-protected-resource/v1/mcp/${unknown}`)
    ).json()) as { resource: string };
    assert.equal(unknownMetadata.resource, `${origin}/v1/mcp/${unknown}`);
    const unknownChallenge = await fetch(`${origin}/v1/mcp/${unknown}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    assert.equal(unknownChallenge.status, 401);
    assert.ok((unknownChallenge.headers.get("WWW-Authenticate") ?? "").includes(`/v1/mcp/${unknown}"`));
    const server = (await (await fetch(`${origin}/.well-known/oauth-authorization-server`)).json()) as Record<
      string,
      unknown
    >;
    assert.equal(server.issuer, origin);
    assert.deepEqual(server.code_challenge_methods_supported, ["S256"]);
    assert.equal(server.registration_endpoint, `${origin}/oauth/register`);
    assert.ok(!JSON.stringify(server).includes(OTHER_TUNNEL), "the metadata does not list the hub's tunnels");
    // No document origins allowed (AIRLOCK_OAUTH_CIMD_ORIGINS unset): clients are told to register.
    assert.equal(server.client_id_metadata_document_supported, false);
  });
});

describe("sign-in and policy by group", () => {
  test("alice (engineering) signs in through the SDK and calls echo through hub and agent", async () => {
    aliceClient = await connectWithOAuth(mcpUrl, alice);
    const authorize = alice.authorizationUrl!;
    assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
    assert.equal(authorize.searchParams.get("resource"), mcpUrl.href);
    assert.equal(
      alice.finalRedirect?.searchParams.get("iss"),
      origin,
      "RFC 9207: the code comes with the hub's issuer",
    );
    assert.ok(alice.client?.client_id, "registered dynamically");
    const result = await aliceClient.callTool({ name: "echo", arguments: { message: "hi from alice" } });
    assert.equal(text(result), "Echo: hi from alice");
  });

  test("bob (sales) signs in, but echo is refused by the rule naming his group", async () => {
    bobClient = await connectWithOAuth(mcpUrl, bob);
    await assert.rejects(bobClient.callTool({ name: "echo", arguments: { message: "hi from bob" } }), /sales-no-echo/);
    const tools = await bobClient.listTools();
    assert.ok(!tools.tools.some((tool) => tool.name === "echo"), "echo is filtered from bob's tools/list");
    assert.ok(tools.tools.length > 0);
  });

  test("the audit chain names both people, their client and how they authenticated", async () => {
    const records = await auditRecords();
    const calls = records.filter((record) => record.target === "echo" && record.phase === "request");
    const byAlice = calls.find((record) => record.subject === "alice");
    const byBob = calls.find((record) => record.subject === "bob");
    assert.equal(byAlice?.decision, "allow");
    assert.equal(byAlice?.auth_method, "oauth");
    assert.equal(byAlice?.client_id, alice.client?.client_id);
    assert.equal(byAlice?.display_name, "Alice");
    assert.deepEqual(byAlice?.groups, ["engineering"]);
    assert.equal(byBob?.decision, "deny");
    assert.match(byBob?.rule ?? "", /sales-no-echo/);
    assert.equal(byBob?.client_id, bob.client?.client_id);
    // The identity is inside the hash: changing the subject breaks the record's hash.
    assert.equal(await recordHash(byBob!), byBob!.hash);
    assert.notEqual(await recordHash({ ...byBob!, subject: "alice" }), byBob!.hash);
    const outcome = records.find((record) => record.request_id === byAlice?.request_id && record.phase === "outcome");
    assert.equal(outcome?.subject, "alice", "the outcome record names the caller too");
  });

  test("rate limits count per person and per tool: alice's third get-sum is refused with 429, bob still has his", async () => {
    const sum = (client: Client, a: number) => client.callTool({ name: "get-sum", arguments: { a, b: 1 } });
    assert.match(text(await sum(aliceClient, 1)), /2/);
    assert.match(text(await sum(aliceClient, 2)), /3/);
    await assert.rejects(sum(aliceClient, 3), /rate_limits\.sums-per-person/);
    // Another tool is counted apart, and so is another person.
    assert.equal(
      text(await aliceClient.callTool({ name: "echo", arguments: { message: "still here" } })),
      "Echo: still here",
    );
    assert.match(text(await sum(bobClient, 4)), /5/);
    assert.match(text(await sum(bobClient, 5)), /6/);
    // On the wire: HTTP 429, Retry-After within the window, and the JSON-RPC error naming the limit.
    const call = {
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { name: "get-sum", arguments: { a: 1, b: 1 } },
    };
    const response = await mcpPost(mcpUrl, call, { token: bob.savedTokens!.access_token });
    assert.equal(response.status, 429);
    const retryAfter = Number(response.headers.get("Retry-After"));
    assert.ok(retryAfter > 0 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    const body = (await response.json()) as {
      id: number;
      error: { code: number; message: string; data: { rule: string } };
    };
    assert.equal(body.id, 7);
    assert.equal(body.error.data.rule, "rate_limits.sums-per-person");
    assert.match(body.error.message, /over 2 calls per 3600s/);
    const refused = (await auditRecords()).filter(
      (record) => record.rule === "rate_limits.sums-per-person" && record.phase === "request",
    );
    assert.deepEqual(refused.map((record) => [record.subject, record.decision]).sort(), [
      ["alice", "deny"],
      ["bob", "deny"],
    ]);
  });

  test("airlock audit verify --subject verifies the whole chain, then prints only that person's records", async () => {
    const url = `${origin}/v1/audit/${TUNNEL}`;
    const bobs = await cli(auditCli, ["verify", url, "--token", "env:ADMIN_TOKEN", "--subject", "bob"]);
    assert.equal(bobs.code, 0, bobs.stderr);
    const printed = parseNdjson(bobs.stdout);
    assert.ok(printed.ok);
    assert.ok(printed.records.length > 0);
    assert.ok(printed.records.every((record) => record.subject === "bob"));
    assert.ok(printed.records.some((record) => record.target === "echo" && record.decision === "deny"));
    assert.match(bobs.stderr, /^OK /);
    assert.match(bobs.stderr, new RegExp(`${printed.records.length} records? of subject bob`));
    // Printed as exported: each record still hashes to its own hash.
    for (const record of printed.records) assert.equal(await recordHash(record), record.hash);

    // A chain broken anywhere (here: in one of alice's records) prints nothing for bob.
    const lines = (await (await fetch(url, { headers: { Authorization: `Bearer ${AUDITOR_TOKEN}` } })).text())
      .trim()
      .split("\n");
    const edited = lines.map((line) => {
      const record = JSON.parse(line) as AuditRecord;
      return record.subject === "alice" && record.target === "echo"
        ? JSON.stringify({ ...record, decision: "deny" })
        : line;
    });
    assert.notDeepEqual(edited, lines);
    const file = join(stateDir, "edited-audit.ndjson");
    writeFileSync(file, `${edited.join("\n")}\n`);
    const broken = await cli(auditCli, ["verify", file, "--subject", "bob"]);
    assert.equal(broken.code, 1);
    assert.equal(broken.stdout, "");
    assert.match(broken.stderr, /^BROKEN /);
  });
});

describe("refusals", () => {
  test("a token for this tunnel is not good for another tunnel (audience = the MCP URL)", async () => {
    const token = alice.savedTokens!.access_token;
    const response = await mcpPost(
      new URL(`/v1/mcp/${OTHER_TUNNEL}`, origin),
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { token },
    );
    assert.equal(response.status, 401);
    assert.match(response.headers.get("WWW-Authenticate") ?? "", /error="invalid_token"/);
    assert.ok((response.headers.get("WWW-Authenticate") ?? "").includes(`/v1/mcp/${OTHER_TUNNEL}"`));
  });

  test("a made-up token is refused with invalid_token", async () => {
    const response = await mcpPost(mcpUrl, { jsonrpc: "2.0", id: 1, method: "ping" }, { token: "alice:grant:forged" });
    assert.equal(response.status, 401);
    assert.match(response.headers.get("WWW-Authenticate") ?? "", /error="invalid_token"/);
  });

  test("an authorization code works once; a replay also revokes what it was exchanged for", async () => {
    // Its own sign-in (another client of alice's): the replay takes this grant down with it.
    const replayed = new HeadlessOAuthProvider("alice", "http://127.0.0.1:33419/callback");
    const client = await connectWithOAuth(mcpUrl, replayed);
    await client.close();
    const code = replayed.finalRedirect!.searchParams.get("code")!;
    const response = await fetch(`${origin}/oauth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: replayed.redirect,
        client_id: replayed.client!.client_id,
        code_verifier: replayed.verifier,
        resource: mcpUrl.href,
      }),
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, "invalid_grant");
    const after = await mcpPost(
      mcpUrl,
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { token: replayed.savedTokens!.access_token },
    );
    assert.equal(after.status, 401);
  });

  test("an authorization request for a redirect URI the client did not register gets a page, not a redirect", async () => {
    const url = new URL(alice.authorizationUrl!);
    url.searchParams.set("redirect_uri", "http://127.0.0.1:1/elsewhere");
    const response = await fetch(url, { redirect: "manual" });
    assert.equal(response.status, 400);
    assert.equal(response.headers.get("Location"), null);
  });

  test("authorizing for a tunnel the hub does not serve answers like a served one until after sign-in", async () => {
    const known = new URL(alice.authorizationUrl!);
    const unknown = new URL(known);
    unknown.searchParams.set("resource", `${origin}/v1/mcp/${tunnelId(0xbad)}`);
    // Before any sign-in nothing tells them apart: the same consent page (but for its one-time handle).
    const page = async (url: URL) => {
      const response = await fetch(url, { redirect: "manual" });
      return [response.status, (await response.text()).replace(/name="handle" value="[^"]*"/, "")];
    };
    const [knownPage, unknownPage] = [await page(known), await page(unknown)];
    assert.equal(knownPage[0], 200);
    assert.deepEqual(unknownPage, knownPage);
    // A person who signs in at the provider learns it at the end: invalid_target, and no code.
    const end = await followSignIn(unknown, alice.redirect, "alice");
    assert.equal(end.searchParams.get("error"), "invalid_target");
    assert.equal(end.searchParams.get("code"), null);
    assert.equal(end.searchParams.get("iss"), origin);
    // A channel URL is no resource, served tunnel or not: refused alike, at once.
    for (const id of [TUNNEL, tunnelId(0xbad)]) {
      const channel = new URL(known);
      channel.searchParams.set("resource", `${origin}/v1/mcp/${id}/docs`);
      const response = await fetch(channel, { redirect: "manual" });
      assert.match(response.headers.get("Location") ?? "", /error=invalid_target/);
    }
  });

  test("registration is refused for a redirect URI outside the admin's allowlist", async () => {
    const response = await fetch(`${origin}/oauth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        client_name: "evil",
        redirect_uris: ["https://evil.example/callback"],
        token_endpoint_auth_method: "none",
      }),
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: string; error_description: string };
    assert.equal(body.error, "invalid_redirect_uri");
    assert.match(body.error_description, /AIRLOCK_OAUTH_REDIRECT_ORIGINS/);
  });

  test("declining at the hub's consent page sends the client access_denied, with state and iss", async () => {
    const end = await followSignIn(alice.authorizationUrl!, alice.redirect, "alice", { decision: "deny" });
    assert.equal(end.searchParams.get("error"), "access_denied");
    assert.equal(end.searchParams.get("state"), alice.authorizationUrl!.searchParams.get("state"));
    assert.equal(end.searchParams.get("iss"), origin);
    assert.equal(end.searchParams.get("code"), null);
  });

  test("an answer from the provider with another issuer (RFC 9207 iss) is refused: the client gets access_denied", async () => {
    const end = await followSignIn(alice.authorizationUrl!, alice.redirect, "alice", {
      tamper: (next) => {
        if (next.pathname === "/oauth/callback") next.searchParams.set("iss", "http://127.0.0.1:1");
        return next;
      },
    });
    assert.equal(end.searchParams.get("error"), "access_denied");
    assert.match(end.searchParams.get("error_description") ?? "", /did not verify/);
    assert.equal(end.searchParams.get("code"), null);
  });

  test("static client tokens keep working with OAuth on, and are named in the audit log", async () => {
    const { client } = await connectClient(mcpUrl);
    try {
      assert.equal(text(await client.callTool({ name: "echo", arguments: { message: "machine" } })), "Echo: machine");
    } finally {
      await client.close();
    }
    const record = (await auditRecords()).find(
      (candidate) => candidate.target === "echo" && candidate.auth_method === "static_token",
    );
    assert.equal(record?.subject, `token:${(await sha256Hex(CLIENT_TOKEN)).slice(0, 12)}`);
    assert.equal(record?.client_id, null);
    assert.equal(record?.groups, null);
  });
});

describe("refresh, revocation and restart", { concurrency: false }, () => {
  const token = (body: Record<string, string>) =>
    fetch(`${origin}/oauth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(body),
    });

  test("a refresh token gets a new access token for the same tunnel, and the old refresh token is rotated out", async () => {
    const refresh = alice.savedTokens!.refresh_token!;
    assert.ok(refresh, "a refresh token was issued");
    const response = await token({
      grant_type: "refresh_token",
      refresh_token: refresh,
      client_id: alice.client!.client_id,
    });
    assert.equal(response.status, 200);
    const fresh = (await response.json()) as { access_token: string; refresh_token: string };
    assert.notEqual(fresh.access_token, alice.savedTokens!.access_token);
    const { client } = await connectClient(mcpUrl, { token: fresh.access_token });
    try {
      assert.equal(
        text(await client.callTool({ name: "echo", arguments: { message: "refreshed" } })),
        "Echo: refreshed",
      );
    } finally {
      await client.close();
    }
    // Using the new refresh token retires the one before it.
    assert.equal(
      (
        await token({
          grant_type: "refresh_token",
          refresh_token: fresh.refresh_token,
          client_id: alice.client!.client_id,
        })
      ).status,
      200,
    );
    assert.equal(
      (await token({ grant_type: "refresh_token", refresh_token: refresh, client_id: alice.client!.client_id })).status,
      400,
    );
  });

  test("a grant cannot be retargeted at another tunnel (wrong audience at the token endpoint)", async () => {
    const other = new HeadlessOAuthProvider("alice", "http://127.0.0.1:33420/callback");
    const client = await connectWithOAuth(mcpUrl, other);
    await client.close();
    const retarget = async (tunnel: string) => {
      const response = await token({
        grant_type: "refresh_token",
        refresh_token: other.savedTokens!.refresh_token!,
        client_id: other.client!.client_id,
        resource: `${origin}/v1/mcp/${tunnel}`,
      });
      return [response.status, await response.json()];
    };
    const [status, body] = await retarget(OTHER_TUNNEL);
    assert.equal(status, 400);
    assert.equal((body as { error: string }).error, "invalid_target");
    // A tunnel the hub does not serve is refused in the same words: no oracle here either.
    assert.deepEqual(await retarget(tunnelId(0xbad)), [status, body]);
  });

  test("a revoked access token is refused at once", async () => {
    const { revocation_endpoint: revocation } = (await (
      await fetch(`${origin}/.well-known/oauth-authorization-server`)
    ).json()) as { revocation_endpoint: string };
    const bobToken = bob.savedTokens!.access_token;
    assert.equal(
      (await mcpPost(mcpUrl, { jsonrpc: "2.0", id: 1, method: "ping" }, { token: bobToken })).status !== 401,
      true,
    );
    const response = await fetch(revocation, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: bobToken, client_id: bob.client!.client_id }),
    });
    assert.equal(response.status, 200);
    const after = await mcpPost(mcpUrl, { jsonrpc: "2.0", id: 1, method: "ping" }, { token: bobToken });
    assert.equal(after.status, 401);
    assert.match(after.headers.get("WWW-Authenticate") ?? "", /error="invalid_token"/);
  });

  test("airlock admin grants list shows alice's grant; revoke ends her access and refresh tokens at once", async () => {
    const signedIn = new HeadlessOAuthProvider("alice", "http://127.0.0.1:33421/callback");
    await (await connectWithOAuth(mcpUrl, signedIn)).close();
    const clientId = signedIn.client!.client_id;
    const listed = await admin([
      "grants",
      "list",
      origin,
      "--subject",
      "alice",
      "--token",
      "env:ADMIN_TOKEN",
      "--json",
    ]);
    assert.equal(listed.code, 0, listed.stderr);
    const grants = (
      JSON.parse(listed.stdout) as {
        grants: Array<{ id: string; client_id: string; subject: string; resource: string[] }>;
      }
    ).grants;
    const grant = grants.find((candidate) => candidate.client_id === clientId);
    assert.ok(grant, `alice's new grant is listed: ${listed.stdout}`);
    assert.deepEqual(grant.resource, [mcpUrl.href]);
    assert.ok(
      grants.every((candidate) => candidate.subject === "alice" && candidate.client_id !== bob.client!.client_id),
      "only alice's grants",
    );
    const text = await admin(["grants", "list", origin, "--subject", "alice", "--token", "env:ADMIN_TOKEN"]);
    assert.ok(text.stdout.includes(grant.id) && text.stdout.includes(clientId), text.stdout);

    // The routes need the hub-wide auditor token: another token is refused, and the CLI says so.
    const refused = await admin(["grants", "list", origin, "--subject", "alice", "--token", "env:WRONG_TOKEN"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /HTTP 401/);
    assert.equal((await admin(["grants", "list", origin, "--subject", "alice", "--token", "not-a-ref"])).code, 2);

    const ping = () =>
      mcpPost(mcpUrl, { jsonrpc: "2.0", id: 1, method: "ping" }, { token: signedIn.savedTokens!.access_token });
    assert.notEqual((await ping()).status, 401);
    const revoked = await admin([
      "grants",
      "revoke",
      origin,
      grant.id,
      "--subject",
      "alice",
      "--token",
      "env:ADMIN_TOKEN",
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`revoked grant ${grant.id}`));
    const after = await ping();
    assert.equal(after.status, 401);
    assert.match(after.headers.get("WWW-Authenticate") ?? "", /error="invalid_token"/);
    const refresh = await token({
      grant_type: "refresh_token",
      refresh_token: signedIn.savedTokens!.refresh_token!,
      client_id: clientId,
    });
    assert.equal(refresh.status, 400);
    const relisted = await admin([
      "grants",
      "list",
      origin,
      "--subject",
      "alice",
      "--token",
      "env:ADMIN_TOKEN",
      "--json",
    ]);
    assert.ok(!relisted.stdout.includes(grant.id), "the grant is gone from the list");
    // Revoking it again names what is missing.
    const again = await admin([
      "grants",
      "revoke",
      origin,
      grant.id,
      "--subject",
      "alice",
      "--token",
      "env:ADMIN_TOKEN",
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /HTTP 404: No grant/);
  });

  test("grants survive a hub restart over the same state directory (OAUTH_KV persisted there)", async () => {
    const port = Number(hub.url.port);
    await hub.close();
    hub = await startLocalHub({
      port,
      stateDir,
      policy: POLICY,
      auditorToken: AUDITOR_TOKEN,
      tunnels: [TUNNEL, OTHER_TUNNEL].map((id) => ({ id, agentKeys: [AGENT_KEY], clientTokens: [CLIENT_TOKEN] })),
      oidc: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret },
    });
    assert.equal(hub.url.origin, origin);
    await waitForAgent(hub.url, TUNNEL, AGENT_KEY, agent.instanceId);
    const result = await aliceClient.callTool({ name: "echo", arguments: { message: "after restart" } });
    assert.equal(text(result), "Echo: after restart");
  });
});
