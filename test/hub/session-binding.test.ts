/**
 * Issue 14, class "sessions not bound to who opened them", in workerd: a session belongs to
 * the credential that initialized it. Another client token of the same tunnel can neither
 * call in it, read its standalone stream, nor end it, and cannot tell it exists: every
 * such request gets the same 404 as a session that never was, and no agent sees it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CLIENT_TOKEN, SECOND_CLIENT_TOKEN, mcpPost, openSession, startTestHub, type TestHub } from "../support/hub.ts";

let hub: TestHub;
before(async () => {
  hub = await startTestHub({
    tunnels: 8,
    settings: { livenessMs: 2000, maxPollHoldMs: 1000, responseTimeoutMs: 3000 },
  });
});
after(() => hub.close());

const LIST = { jsonrpc: "2.0", id: 1, method: "tools/list" };

/** Every way a client reaches a session: a call, the standalone stream, the end of it. */
function attempts(tunnel: string, token: string, sessionId: string): Array<[string, Promise<Response>]> {
  const headers = { Authorization: `Bearer ${token}`, "Mcp-Session-Id": sessionId };
  return [
    ["POST", mcpPost(hub.mcpUrl(tunnel), LIST, { token, headers: { "Mcp-Session-Id": sessionId } })],
    ["GET", fetch(hub.mcpUrl(tunnel), { headers: { ...headers, Accept: "text/event-stream" } })],
    ["DELETE", fetch(hub.mcpUrl(tunnel), { method: "DELETE", headers })],
  ];
}

async function answerOf(response: Promise<Response>): Promise<{ status: number; body: string }> {
  const answer = await response;
  return { status: answer.status, body: await answer.text() };
}

for (const procAffinity of [false, true]) {
  describe(`a session on a channel ${procAffinity ? "with" : "without"} proc_affinity`, () => {
    test("another client token gets the 404 of a session that never existed, for POST, GET and DELETE; the agent sees nothing", async () => {
      const tunnel = hub.tunnel();
      const agent = hub.agent(tunnel, {
        channels: [{ name: "main", procAffinity }],
        capabilities: ["cancel", "get-stream"],
      });
      await openSession(hub.mcpUrl(tunnel), agent, "s-owned-by-a");
      for (const [method, attempt] of attempts(tunnel, SECOND_CLIENT_TOKEN, "s-owned-by-a")) {
        const foreign = await answerOf(attempt);
        const [, never] = attempts(tunnel, SECOND_CLIENT_TOKEN, "s-never-existed").find(([m]) => m === method)!;
        const missing = await answerOf(never);
        assert.equal(foreign.status, 404, `${method}: ${foreign.body}`);
        assert.equal(JSON.parse(foreign.body).error.code, "mcp_session_not_found");
        assert.equal(
          foreign.body.replace("s-owned-by-a", "ID"),
          missing.body.replace("s-never-existed", "ID"),
          `${method}: existence must not show`,
        );
      }
      assert.equal((await agent.poll({ timeoutMs: 200 })).status, 204, "no command reached the agent");

      // The owner still works in its session, and ends it.
      const own = mcpPost(hub.mcpUrl(tunnel), LIST, {
        token: CLIENT_TOKEN,
        headers: { "Mcp-Session-Id": "s-owned-by-a" },
      });
      const command = await agent.next();
      assert.equal(command.jsonrpc?.method, "tools/list");
      await agent.reply(command, { tools: [] });
      assert.equal((await own).status, 200);
      const end = fetch(hub.mcpUrl(tunnel), {
        method: "DELETE",
        headers: { Authorization: `Bearer ${CLIENT_TOKEN}`, "Mcp-Session-Id": "s-owned-by-a" },
      });
      const termination = await agent.next();
      assert.equal(termination.command_type, "session_termination");
      await agent.respond(termination, { resp_code: 200, resp_type: "session_termination_response" });
      assert.equal((await end).status, 200);
      assert.equal(
        (
          await answerOf(
            mcpPost(hub.mcpUrl(tunnel), LIST, { token: CLIENT_TOKEN, headers: { "Mcp-Session-Id": "s-owned-by-a" } }),
          )
        ).status,
        404,
        "an ended session is gone",
      );
    });
  });
}
