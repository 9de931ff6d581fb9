/**
 * A hub restart over the same state directory (the local runner's persistent Durable
 * Object storage): configuration and session affinity survive; requests in flight
 * fail cleanly on both sides instead of hanging.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mcpPost, startTestHub, type TestHub } from "../support/hub.ts";

const stateDir = await mkdtemp(join(tmpdir(), "airlock-hub-state-"));
const hubs: TestHub[] = [];
after(async () => {
  await Promise.all(hubs.map((h) => h.close()));
  await rm(stateDir, { recursive: true, force: true });
});

async function start(): Promise<TestHub> {
  const hub = await startTestHub({ stateDir, tunnels: 1, settings: { livenessMs: 5000 } });
  hubs.push(hub);
  return hub;
}

test("after a restart: config and session affinity remain, in-flight requests fail cleanly", async () => {
  const first = await start();
  const tunnel = first.tunnel();
  const channels = [{ name: "main", procAffinity: true }];
  const owner = first.agent(tunnel, { channels, instanceId: "agent-owner" });

  const polled = owner.poll({ timeoutMs: 3000 });
  const init = mcpPost(first.mcpUrl(tunnel), { jsonrpc: "2.0", id: 0, method: "initialize", params: {} });
  const [initCommand] = (await polled).commands;
  await owner.respond(initCommand!, {
    resp_json: { jsonrpc: "2.0", id: 0, result: {} },
    resp_code: 200,
    resp_headers: { "Mcp-Session-Id": ["durable-1"] },
  });
  assert.equal((await init).status, 200);

  // A request the agent has taken but not answered when the hub goes down.
  const inFlightPoll = owner.poll({ timeoutMs: 3000 });
  const inFlight = mcpPost(
    first.mcpUrl(tunnel),
    { jsonrpc: "2.0", id: 1, method: "tools/list" },
    { headers: { "Mcp-Session-Id": "durable-1" } },
  ).then(
    (r) => r.status,
    (error: Error) => error.name,
  );
  const [taken] = (await inFlightPoll).commands;
  await first.close();
  const outcome = await inFlight;
  assert.ok(outcome !== 200, `the in-flight client must not get a success (got ${outcome})`);

  const second = await start();
  const agentAgain = second.agent(tunnel, { channels, instanceId: "agent-owner" });
  assert.equal((await agentAgain.metadata()).status, 200);
  const late = await agentAgain.reply(taken!, { tools: [] });
  assert.equal(late.status, 404, "an answer for a request from before the restart is not pending any more");

  // Another agent polls too, but the session still belongs to its original agent.
  const other = second.agent(tunnel, { channels, instanceId: "agent-other" });
  const otherPoll = other.poll({ timeoutMs: 700 });
  const ownerPoll = agentAgain.poll({ timeoutMs: 3000 });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const resumed = mcpPost(
    second.mcpUrl(tunnel),
    { jsonrpc: "2.0", id: 2, method: "tools/list" },
    { headers: { "Mcp-Session-Id": "durable-1" } },
  );
  const [resumedCommand] = (await ownerPoll).commands;
  assert.equal(resumedCommand?.jsonrpc?.id, 2);
  assert.equal((await otherPoll).status, 204);
  await agentAgain.reply(resumedCommand!, { tools: [] });
  assert.equal((await resumed).status, 200);
});
