/**
 * Access-token expiry at the hub (`AIRLOCK_OAUTH_ACCESS_TOKEN_TTL`): a real OpenID provider
 * on loopback, the hub in workerd with the shortest lifetime the OAuth library allows
 * (60 s: Cloudflare KV cannot expire records sooner, and the library refuses less), the
 * MCP SDK signing in headlessly, a real agent in front of server-everything.
 *
 * The library compares a token's expiry with the Worker's own clock, which a test cannot
 * move, so this file waits out the lifetime: by polling the MCP URL until the token is
 * refused (bounded), never by a fixed sleep. It runs alone so the other identity tests
 * keep the default hour.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { mcpPost, tunnelId } from "../support/hub.ts";
import { connectClient } from "../support/hub-stack.ts";
import { startIdentityStack, type IdentityStack } from "../support/identity-stack.ts";
import { connectWithOAuth, HeadlessOAuthProvider } from "../../agent/demo/oauth-login.ts";

const TUNNEL = tunnelId(0x1e1);
const TTL_SECONDS = 60;
/** Past the lifetime plus generous slack for a loaded machine; the poll ends as soon as the hub refuses. */
const EXPIRY_BOUND_MS = (TTL_SECONDS + 60) * 1000;

let stack: IdentityStack;
let mcpUrl: URL;
const alice = new HeadlessOAuthProvider("alice", "http://127.0.0.1:33430/callback");

before(async () => {
  stack = await startIdentityStack(TUNNEL, { accessTokenTtl: TTL_SECONDS });
  mcpUrl = stack.mcpUrl;
});

after(() => stack?.close());

/** Ping with `token` once a second until the hub stops accepting it; the refusal, or a failure at the bound. */
async function pingUntilRefused(token: string): Promise<Response> {
  const deadline = Date.now() + EXPIRY_BOUND_MS;
  for (;;) {
    const response = await mcpPost(mcpUrl, { jsonrpc: "2.0", id: 1, method: "ping" }, { token });
    if (response.status === 401) return response;
    // Any other answer got past the token check (the ping's own answer does not matter here).
    await response.body?.cancel();
    assert.ok(
      Date.now() < deadline,
      `the token was still accepted (last status ${response.status}) ${EXPIRY_BOUND_MS / 1000} s after sign-in (lifetime ${TTL_SECONDS} s)`,
    );
    await delay(1000);
  }
}

test("an expired access token is refused with invalid_token; the refresh token gets a working one", {
  timeout: EXPIRY_BOUND_MS + 60_000,
}, async () => {
  const signedIn = await connectWithOAuth(mcpUrl, alice);
  await signedIn.close();
  const tokens = alice.savedTokens!;
  assert.equal(tokens.expires_in, TTL_SECONDS, "the token endpoint reports the configured lifetime");
  const issuedAt = Date.now();

  const refused = await pingUntilRefused(tokens.access_token);
  assert.ok(
    Date.now() - issuedAt >= (TTL_SECONDS - 2) * 1000,
    "not refused before its lifetime (allowing for whole-second clocks)",
  );
  const challenge = refused.headers.get("WWW-Authenticate") ?? "";
  assert.match(challenge, /^Bearer /);
  assert.match(challenge, /error="invalid_token"/);
  assert.ok(
    challenge.includes(
      `resource_metadata="${stack.hub.url.origin}/.well-known/oauth-protected-resource/v1/mcp/${TUNNEL}"`,
    ),
    challenge,
  );

  const response = await fetch(new URL("/oauth/token", stack.hub.url.origin), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token!,
      client_id: alice.client!.client_id,
    }),
  });
  assert.equal(response.status, 200);
  const fresh = (await response.json()) as { access_token: string; expires_in: number };
  assert.equal(fresh.expires_in, TTL_SECONDS);
  const { client } = await connectClient(mcpUrl, { token: fresh.access_token });
  try {
    const result = await client.callTool({ name: "echo", arguments: { message: "after expiry" } });
    assert.equal((result as { content: Array<{ text: string }> }).content[0]!.text, "Echo: after expiry");
  } finally {
    await client.close();
  }
});
