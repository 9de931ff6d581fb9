/**
 * Per-identity rate-limit counters live in the tunnel's Durable Object storage: a hub
 * restarted over the same state directory still refuses a caller whose window is full.
 * The hub runs in workerd; a plain-fetch agent answers the calls that are let through.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalHub, type LocalHub } from "../../agent/hub-local/run.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, TestAgent, tunnelId } from "../support/hub.ts";

const TUNNEL = tunnelId(0x7a1);
const POLICY = `
policy_version: 1
default: allow
rate_limits:
  - { name: sums, per: subject, tools: [get-sum], calls: 2, window: 1h }
`;
const stateDir = await mkdtemp(join(tmpdir(), "airlock-rate-state-"));
const hubs: LocalHub[] = [];
after(async () => {
  await Promise.all(hubs.map((hub) => hub.close()));
  await rm(stateDir, { recursive: true, force: true });
});

async function start(port?: number): Promise<LocalHub> {
  const hub = await startLocalHub({
    ...(port ? { port } : {}),
    stateDir,
    policy: POLICY,
    tunnels: [{ id: TUNNEL, agentKeys: [AGENT_KEY], clientTokens: [CLIENT_TOKEN] }],
  });
  hubs.push(hub);
  return hub;
}

const sum = (id: number) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "get-sum", arguments: { a: id, b: 1 } },
});

/** Refused over the limit: 429, a Retry-After in seconds, and the JSON-RPC error naming it. */
async function assertLimited(response: Response): Promise<number> {
  assert.equal(response.status, 429);
  const body = (await response.json()) as { error: { data: { rule: string } } };
  assert.equal(body.error.data.rule, "rate_limits.sums");
  const retryAfter = Number(response.headers.get("Retry-After"));
  assert.ok(retryAfter > 0 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
  return retryAfter;
}

test("a full rate-limit window stays full across a hub restart over the same state", async () => {
  const first = await start();
  const mcpUrl = new URL(`v1/mcp/${TUNNEL}`, first.url);
  const agent = new TestAgent(first.url, TUNNEL);
  for (const id of [1, 2]) {
    const polled = agent.poll({ timeoutMs: 5000 });
    const posted = mcpPost(mcpUrl, sum(id));
    const [command] = (await polled).commands;
    assert.ok(command, `call ${id} reached the agent`);
    await agent.respond(command, {
      resp_json: { jsonrpc: "2.0", id, result: { content: [{ type: "text", text: String(id + 1) }] } },
      resp_code: 200,
    });
    assert.equal((await posted).status, 200);
  }
  const before = await assertLimited(await mcpPost(mcpUrl, sum(3)));

  const port = Number(first.url.port);
  await first.close();
  hubs.splice(hubs.indexOf(first), 1);
  const second = await start(port);
  assert.equal(second.url.origin, first.url.origin);
  // Refused before reaching any agent: the count came back from storage, not from a live object.
  const after = await assertLimited(await mcpPost(mcpUrl, sum(4)));
  assert.ok(after <= before, `the same window (Retry-After ${before} s, then ${after} s)`);
});
