/**
 * OAuth is off unless an issuer is configured: none of its routes exist, a request without a
 * token gets the hub's plain 401 (no OAuth challenge), and static tokens work as always.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mcpPost, startTestHub, type TestHub } from "../support/hub.ts";

let hub: TestHub;

before(async () => {
  hub = await startTestHub({ tunnels: 2 });
});

after(async () => {
  await hub?.close();
});

test("without AIRLOCK_OIDC_ISSUER the OAuth routes answer 404", async () => {
  const tunnel = hub.tunnel();
  for (const [method, path] of [
    ["GET", `/.well-known/oauth-protected-resource/v1/mcp/${tunnel}`],
    ["GET", "/.well-known/oauth-authorization-server"],
    ["GET", "/authorize?client_id=x"],
    ["GET", "/oauth/callback?state=x"],
    ["POST", "/oauth/token"],
    ["POST", "/oauth/register"],
  ] as const) {
    const response = await fetch(new URL(path, hub.url), { method, ...(method === "POST" ? { body: "{}" } : {}) });
    assert.equal(response.status, 404, `${method} ${path}`);
    await response.body?.cancel();
  }
});

test("without AIRLOCK_OIDC_ISSUER a missing token gets no OAuth challenge, and the static token works", async () => {
  const tunnel = hub.tunnel();
  const url = hub.mcpUrl(tunnel);
  const missing = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  assert.equal(missing.status, 401);
  assert.doesNotMatch(missing.headers.get("WWW-Authenticate") ?? "", /resource_metadata/);
  const wrong = await mcpPost(url, { jsonrpc: "2.0", id: 1, method: "ping" }, { token: "not-the-token" });
  assert.equal(wrong.status, 401);
  assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, "invalid_api_key");
  const agent = hub.agent(tunnel);
  // A finished poll makes the agent live for the hub's liveness window: the request is queued, not refused.
  await agent.poll({ timeoutMs: 1 });
  const answered = mcpPost(url, { jsonrpc: "2.0", id: 7, method: "ping" });
  const command = await agent.next();
  assert.equal((await agent.reply(command, {})).status, 200);
  const response = await answered;
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { jsonrpc: "2.0", id: 7, result: {} });
});
