/**
 * The stdio process model end to end: MCP SDK v1 clients through the hub (workerd) and a
 * real agent process to the SDK fixture server over stdio. Its `whoami` tool answers the
 * client name its process was initialised with: per-client server state. With one child
 * per session (the default) each client sees its own; with `share: true` the last client's
 * handshake shows for everyone. The child count in `/metrics` follows sessions, the
 * client's DELETE stops its child, and a short `idle_timeout` reaps an unused one (even with
 * its GET stream open). At `max_sessions` with every session live, a new client is refused
 * (503) instead of a live session cut off.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { fixtureServerCommand } from "../support/everything.ts";
import { mcpPost, startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "../support/hub-stack.ts";

let hub: TestHub;
let agent: HubAgent;
let tunnel: string;
let dir: string;
const open: Array<{ client: Client; transport: StreamableHTTPClientTransport }> = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-e2e-stdio-sessions-"));
  hub = await startTestHub({ tunnels: 1 });
  tunnel = hub.tunnel();
  const config = join(dir, "agent.yaml");
  writeFileSync(
    config,
    stringify({
      config_version: 1,
      mcp: { commands: [{ channel: "shared", command: fixtureServerCommand().join(" "), share: true }] },
      routes: [
        { channel: "main", backends: [{ name: "fixture", command: fixtureServerCommand() }] },
        { channel: "reaped", backends: [{ name: "reaped", command: fixtureServerCommand(), idle_timeout: "2s" }] },
        { channel: "bounded", backends: [{ name: "bounded", command: fixtureServerCommand(), max_sessions: 2 }] },
      ],
    }),
  );
  agent = await startHubAgent(hub.url, tunnel, ["--config", config]);
});

after(async () => {
  await Promise.all(open.map(({ client }) => client.close().catch(() => {})));
  await agent?.stop("SIGTERM");
  await hub?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function connect(channel: string, name: string) {
  const connected = await connectClient(hub.mcpUrl(tunnel, channel), { name });
  open.push(connected);
  return connected;
}

async function whoami(client: Client): Promise<string | undefined> {
  const result = await client.callTool({ name: "whoami", arguments: {} });
  return (result.content as Array<{ text?: string }>)[0]?.text;
}

/** One stdio metric of one backend, as `/metrics` shows it now. */
async function metric(name: string, backend: string): Promise<number | undefined> {
  const text = await (await fetch(`${agent.opsUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{backend="${backend}"}`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

/** Until the metric reads `value` (real time: the agent is another process). */
async function metricReaches(name: string, backend: string, value: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await metric(name, backend);
    if (seen === value) return;
    if (Date.now() > deadline)
      throw new Error(`${name}{backend="${backend}"} is ${seen}, expected ${value}\n${agent.stderr().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test("two clients get a child each: neither sees the other's state; the count follows sessions; DELETE stops the child", async () => {
  const alice = await connect("main", "alice");
  const bob = await connect("main", "bob");
  assert.equal(await whoami(alice.client), "alice");
  assert.equal(await whoami(bob.client), "bob");
  assert.equal(await metric("airlock_stdio_sessions", "fixture"), 2);
  assert.equal(await metric("airlock_stdio_children", "fixture"), 3, "two sessions and the pool's child");
  assert.ok(
    alice.transport.sessionId?.startsWith("stdio-"),
    `the agent's session id reached the client: ${alice.transport.sessionId}`,
  );

  await alice.transport.terminateSession();
  await metricReaches("airlock_stdio_children", "fixture", 2);
  assert.equal(await whoami(bob.client), "bob", "the other session is untouched");
  assert.equal(await metric("airlock_stdio_spawns_total", "fixture"), 3);
});

test("share: true keeps one child for everyone, so the last client's handshake shows for both", async () => {
  const carol = await connect("shared", "carol");
  const dave = await connect("shared", "dave");
  assert.equal(await whoami(carol.client), "dave");
  assert.equal(await whoami(dave.client), "dave");
  assert.equal(await metric("airlock_stdio_children", "shared"), 1);
  assert.equal(await metric("airlock_stdio_sessions", "shared"), 0);
});

test("a session unused for idle_timeout loses its child once its client stops listening; its id then gets 404", async () => {
  const erin = await connect("reaped", "erin");
  assert.equal(await whoami(erin.client), "erin");
  const session = erin.transport.sessionId!;
  // A client with its GET stream open is still there; closing it (without DELETE) leaves the session unused.
  await erin.client.close();
  await metricReaches("airlock_stdio_sessions", "reaped", 0);
  const late = await mcpPost(
    hub.mcpUrl(tunnel, "reaped"),
    { jsonrpc: "2.0", id: 7, method: "tools/list" },
    { headers: { "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18" } },
  );
  assert.equal(late.status, 404, await late.clone().text());
  assert.match(await late.text(), /not held by this agent/);
  const again = await connect("reaped", "erin-again");
  assert.equal(await whoami(again.client), "erin-again");
});

test("a session whose client keeps its GET stream open is still reaped after idle_timeout; the client then gets 404", async () => {
  const frank = await connect("reaped", "frank");
  assert.equal(await whoami(frank.client), "frank");
  // The SDK client holds its standalone GET stream open the whole time; no request follows.
  await metricReaches("airlock_stdio_sessions", "reaped", 0);
  await assert.rejects(whoami(frank.client), /404|not held by this agent/);
});

test("at max_sessions with every session live, a third client is refused with 503 naming max_sessions; the two keep working", async () => {
  const first = await connect("bounded", "first");
  const second = await connect("bounded", "second");
  await assert.rejects(connect("bounded", "third"), /max_sessions/);
  const refused = await mcpPost(
    hub.mcpUrl(tunnel, "bounded"),
    {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
    },
    { headers: { "MCP-Protocol-Version": "2025-06-18" } },
  );
  assert.equal(refused.status, 503, await refused.clone().text());
  assert.match(refused.headers.get("Retry-After") ?? "", /^[1-9]\d*$/);
  assert.match(await refused.text(), /raise max_sessions/);
  assert.equal(await whoami(first.client), "first", "the live sessions were not evicted");
  assert.equal(await whoami(second.client), "second");
  assert.equal(await metric("airlock_stdio_sessions_refused_total", "bounded"), 2);
  assert.equal(await metric("airlock_stdio_sessions", "bounded"), 2);

  // A session that ends makes room at once.
  await first.transport.terminateSession();
  await metricReaches("airlock_stdio_sessions", "bounded", 1);
  const third = await connect("bounded", "third");
  assert.equal(await whoami(third.client), "third");
});
