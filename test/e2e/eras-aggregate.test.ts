/**
 * A routing table mixing the eras, end to end: `airlock run --config` (a real process) with
 * one channel aggregating server-everything (2025-era, Streamable HTTP) and the SDK v2
 * fixture that refuses 2025 clients (HTTP), through the hub (workerd). An SDK v2 client
 * pinned to 2026-07-28 and an SDK v1 client each see the tools of both members, call both,
 * and get change notifications: the modern client on a `subscriptions/listen` (a list
 * change from the modern member, a resource update from server-everything), the legacy
 * client on its GET stream. The agent runs one command at a time, so an open listen that
 * held a worker slot would block every call after it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client as ModernClient } from "@modelcontextprotocol/client";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { stringify } from "yaml";
import { startAgentProcess, type AgentProcess } from "../support/agent-process.ts";
import { connectModernClient } from "../support/era-clients.ts";
import { startEverythingHttp, startModernHttp, type RunningServer } from "../support/everything.ts";
import { connectClient } from "../support/hub-stack.ts";
import { AGENT_KEY, startTestHub, type TestHub } from "../support/hub.ts";

const CHANNEL = "main";
const DOCUMENT = "airlock://everything/demo://resource/static/document/architecture.md";

let dir: string;
let hub: TestHub;
let everything: RunningServer;
let modern: RunningServer;
let agent: AgentProcess;
let url: URL;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-eras-aggregate-"));
  [hub, everything, modern] = await Promise.all([
    startTestHub({ tunnels: 1 }),
    startEverythingHttp(),
    startModernHttp(true),
  ]);
  const tunnel = hub.tunnel();
  const config = join(dir, "routes.yaml");
  writeFileSync(
    config,
    stringify({
      config_version: 1,
      control_plane: { base_url: hub.url.origin, tunnel_id: tunnel, api_key: "env:HUB_AGENT_KEY", poll_timeout: "2s" },
      mcp: { max_concurrent_requests: 1 },
      routes: [
        {
          channel: CHANNEL,
          backends: [
            { name: "everything", url: everything.url },
            { name: "modern", url: modern.url },
          ],
        },
      ],
    }),
  );
  agent = await startAgentProcess("node", ["--config", config], { HUB_AGENT_KEY: AGENT_KEY });
  const deadline = Date.now() + 20_000;
  while (!(await fetch(`${agent.opsUrl}/readyz?strict=1`)).ok) {
    if (Date.now() > deadline) throw new Error(`the agent did not become ready:\n${agent.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  url = hub.mcpUrl(tunnel, CHANNEL);
});

after(async () => {
  await agent?.stop("SIGTERM");
  await Promise.all([hub?.close(), everything?.close(), modern?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function text(result: unknown): string {
  return JSON.stringify((result as { content?: unknown }).content);
}

/** Resolves with the first notification `register` hands to its callback. */
function first<T>(register: (callback: (value: T) => void) => void): Promise<T> {
  return new Promise((resolve) => register(resolve));
}

test("a 2026-07-28 client: tools of both members, calls to both, a listen with changes from each", async () => {
  const client: ModernClient = await connectModernClient(url, { pin: "2026-07-28" });
  try {
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    for (const name of ["everything__echo", "modern__echo", "modern__announce"]) assert.ok(names.includes(name), name);
    assert.match(text(await client.callTool({ name: "everything__echo", arguments: { message: "old" } })), /Echo: old/);
    assert.match(text(await client.callTool({ name: "modern__add", arguments: { a: 2, b: 3 } })), /"5"/);

    const listChanged = first<unknown>((resolve) =>
      client.setNotificationHandler("notifications/tools/list_changed", (note) => resolve(note)),
    );
    const updated = first<{ params: { uri: string } }>((resolve) =>
      client.setNotificationHandler("notifications/resources/updated", (note) => resolve(note)),
    );
    const subscription = await client.listen({ toolsListChanged: true, resourceSubscriptions: [DOCUMENT] });
    assert.deepEqual(subscription.honoredFilter, { toolsListChanged: true, resourceSubscriptions: [DOCUMENT] });

    // The listen is open and the agent runs one command at a time: these calls still pass.
    assert.match(text(await client.callTool({ name: "modern__announce", arguments: {} })), /announced/);
    await listChanged;
    await client.callTool({ name: "everything__toggle-subscriber-updates", arguments: {} });
    assert.equal((await updated).params.uri, DOCUMENT);
    await client.callTool({ name: "everything__toggle-subscriber-updates", arguments: {} });
    await subscription.close();
    assert.equal(await subscription.closed, "local");
  } finally {
    await client.close();
  }
});

test("a 2025 client: the same tools and calls, and a list change from the modern member on its GET stream", async () => {
  const { client } = await connectClient(url, { name: "eras-aggregate-v1" });
  try {
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    for (const name of ["everything__echo", "modern__echo", "modern__announce"]) assert.ok(names.includes(name), name);
    assert.match(text(await client.callTool({ name: "modern__echo", arguments: { message: "new" } })), /Echo: new/);
    assert.match(text(await client.callTool({ name: "everything__get-sum", arguments: { a: 2, b: 3 } })), /5/);

    const listChanged = first<unknown>((resolve) =>
      client.setNotificationHandler(ToolListChangedNotificationSchema, (note) => resolve(note)),
    );
    // The SDK v1 client opens its GET stream after initialize; the announce may race its opening.
    let announced = false;
    void listChanged.then(() => {
      announced = true;
    });
    for (let attempt = 0; !announced && attempt < 50; attempt++) {
      await client.callTool({ name: "modern__announce", arguments: {} });
      await Promise.race([listChanged, new Promise((resolve) => setTimeout(resolve, 200))]);
    }
    assert.ok(announced, "the tools list change reached the legacy client's GET stream");
  } finally {
    await client.close();
  }
});

test("/readyz?strict=1 shows the era each member is served in", async () => {
  // The clients above opened sessions on both members: each member's era is known from its join.
  const ready = (await (await fetch(`${agent.opsUrl}/readyz?strict=1`)).json()) as {
    backends: Array<{ name: string; members?: Array<{ name: string; era?: string; state: string }> }>;
  };
  const members = ready.backends.find((backend) => backend.name === CHANNEL)?.members ?? [];
  assert.deepEqual(
    members.map((member) => [member.name, member.state, member.era]),
    [
      ["everything", "up", "legacy"],
      ["modern", "up", "modern"],
    ],
  );
});
