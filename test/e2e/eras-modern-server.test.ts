/**
 * A 2026-07-28 server (the SDK v2 fixture, test/fixtures/modern-server.ts) behind the hub
 * (workerd) and a real agent process, over stdio and over Streamable HTTP, refusing 2025-era
 * clients (`--modern-only`): a pinned SDK v2 client passes through unchanged (its payloads
 * equal what it gets calling the server directly), and an SDK v1 client — which fails
 * against this server directly — works through the agent's era bridge.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Client as ModernClient } from "@modelcontextprotocol/client";
import { Client as LegacyClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { modernStdioCommand, startModernHttp, type RunningServer } from "../support/everything.ts";
import { agentsOverBothTransports, connectModernClient } from "../support/era-clients.ts";
import { startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, type HubAgent } from "../support/hub-stack.ts";

let hub: TestHub;
let behindAgent: RunningServer;
let direct: RunningServer;
const agents: HubAgent[] = [];
const urls = {} as Record<"stdio" | "http", URL>;
const opened: Array<{ close(): Promise<void> }> = [];

function track<T extends { close(): Promise<void> }>(client: T): T {
  opened.push(client);
  return client;
}

/** The same calls in either era, as comparable payloads. */
async function script(client: ModernClient | LegacyClient) {
  const tools = (await client.listTools()).tools.map(({ name, inputSchema }) => ({ name, inputSchema }));
  const echo = await client.callTool({ name: "echo", arguments: { message: "eras ✓ ünïcode" } });
  const add = await client.callTool({ name: "add", arguments: { a: 2, b: 40 } });
  const resource = await client.readResource({ uri: "note://hello" });
  const prompt = await client.getPrompt({ name: "greet", arguments: { name: "Ada" } });
  return { tools, echo: echo.content, add: add.content, resource: resource.contents, prompt: prompt.messages };
}

before(async () => {
  [hub, behindAgent, direct] = await Promise.all([
    startTestHub({ tunnels: 2, settings: { livenessMs: 5000 } }),
    startModernHttp(true),
    startModernHttp(true),
  ]);
  const started = await agentsOverBothTransports(hub, modernStdioCommand(true), behindAgent.url);
  agents.push(...started.agents);
  Object.assign(urls, started.urls);
});

after(async () => {
  await Promise.all(opened.map((client) => client.close().catch(() => {})));
  await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
  await Promise.all([hub?.close(), behindAgent?.close(), direct?.close()]);
});

test("directly, this server serves a pinned 2026-07-28 client and refuses an SDK v1 client with -32022", async () => {
  const modern = track(await connectModernClient(new URL(direct.url), { pin: "2026-07-28" }, null));
  assert.equal(modern.getProtocolEra(), "modern");
  const legacy = new LegacyClient({ name: "airlock-eras", version: "0.0.0" });
  await assert.rejects(legacy.connect(new StreamableHTTPClientTransport(new URL(direct.url))), /-32022/);
});

for (const leg of ["stdio", "http"] as const) {
  describe(`clients of both eras → hub → agent → a 2026-only server over ${leg}`, () => {
    test("a pinned 2026-07-28 client passes through: the same payloads as calling the server directly", async () => {
      const [through, straight] = await Promise.all([
        connectModernClient(urls[leg], { pin: "2026-07-28" }).then(track),
        connectModernClient(new URL(direct.url), { pin: "2026-07-28" }, null).then(track),
      ]);
      assert.equal(through.getProtocolEra(), "modern");
      assert.equal(through.getServerVersion()?.name, "airlock-modern-fixture");
      const [a, b] = await Promise.all([script(through), script(straight)]);
      assert.deepEqual(a.echo, [{ type: "text", text: "Echo: eras ✓ ünïcode" }]);
      assert.deepEqual(a, b);
    });

    test("an SDK v1 (2025) client is served through the bridge, with the same payloads as the modern client", async () => {
      const { client: legacy } = await connectClient(urls[leg]);
      track(legacy);
      assert.equal(legacy.getServerVersion()?.name, "airlock-modern-fixture");
      assert.equal(legacy.getInstructions(), "A 2026-07-28 fixture.");
      const modern = track(await connectModernClient(new URL(direct.url), { pin: "2026-07-28" }, null));
      const [fromLegacy, fromModern] = await Promise.all([script(legacy), script(modern)]);
      assert.deepEqual(fromLegacy, fromModern);
      assert.deepEqual(await legacy.ping(), {});
    });
  });
}

test("the agent shows the server's era in /readyz?strict=1", async () => {
  for (const agent of agents) {
    const ready = (await (await fetch(`${agent.opsUrl}/readyz?strict=1`)).json()) as {
      backends: Array<{ era?: string }>;
    };
    assert.equal(ready.backends[0]?.era, "modern");
  }
});
