/**
 * A busy agent keeps its lease: with every slot taken it asks the hub for no work but holds a
 * lease-only poll, so a call far longer than the liveness window completes instead of being
 * failed as lost. (Without the lease-only poll the agent would be silent and the hub would
 * end the call after one window.)
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "../support/hub-stack.ts";

const FIXTURE = fileURLToPath(new URL("../fixtures/hub-fixture-server.ts", import.meta.url));
const LIVENESS_MS = 1000;

let hub: TestHub;
let agent: HubAgent;
let client: Client;

before(async () => {
  hub = await startTestHub({ tunnels: 1, settings: { livenessMs: LIVENESS_MS } });
  const tunnel = hub.tunnel();
  agent = await startHubAgent(hub.url, tunnel, ["--mcp.command", `${process.execPath} --import tsx ${FIXTURE}`], {
    args: ["--control-plane.max-inflight", "1", "--control-plane.poll-timeout", "2s"],
  });
  client = (await connectClient(hub.mcpUrl(tunnel), { name: "lease" })).client;
});

after(async () => {
  await client?.close().catch(() => {});
  await agent?.stop("SIGTERM");
  await hub?.close();
});

test("an agent whose only slot runs a call five liveness windows long keeps its lease, and the call completes", async () => {
  const result = await client.callTool({ name: "slow", arguments: { ms: LIVENESS_MS * 5, message: "worth the wait" } });
  assert.equal((result as { content: Array<{ text: string }> }).content[0]!.text, "Echo: worth the wait");
});
