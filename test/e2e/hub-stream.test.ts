/**
 * The standalone GET stream end to end (the hub's `get-stream` extension): an MCP SDK
 * client through the hub (workerd) and a real agent process to a stdio MCP server that
 * speaks outside any request — a `tools/list_changed` and a `roots/list` request sent after
 * its call has been answered, so nothing but the client's GET stream can carry them. The
 * client's answer to the roots request must reach the server; a client that hangs up
 * closes its stream on the agent.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ListRootsRequestSchema, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { AGENT_KEY, startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "../support/hub-stack.ts";

const FIXTURE = fileURLToPath(new URL("../fixtures/mcp-fixture-server.ts", import.meta.url));

let hub: TestHub;
let agent: HubAgent;
let tunnel: string;

before(async () => {
  hub = await startTestHub({ tunnels: 1 });
  tunnel = hub.tunnel();
  agent = await startHubAgent(hub.url, tunnel, ["--mcp.command", `${process.execPath} --import tsx ${FIXTURE}`]);
});

after(async () => {
  await agent?.stop("SIGTERM");
  await hub?.close();
});

/** Until `check` holds (real time: the messages cross three processes). */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${agent.stderr().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Requests the hub holds for the tunnel (a standalone stream is one). */
async function pending(): Promise<number> {
  const response = await fetch(new URL(`v1/tunnels/${tunnel}/status`, hub.url), {
    headers: { Authorization: `Bearer ${AGENT_KEY}` },
  });
  return ((await response.json()) as { pending: number }).pending;
}

test("server messages outside any request reach the SDK client over its GET stream; its roots answer reaches the server; hanging up closes the stream", async () => {
  let client: Client | undefined;
  try {
    ({ client } = await connectClient(hub.mcpUrl(tunnel), { capabilities: { roots: {} } }));
    let listChanged = 0;
    const rootsAsked: unknown[] = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      listChanged++;
    });
    client.setRequestHandler(ListRootsRequestSchema, (request) => {
      rootsAsked.push(request.params ?? {});
      return { roots: [{ uri: "file:///srv/stream", name: "stream root" }] };
    });
    // The SDK opens its GET stream after the handshake; nothing else is in flight now.
    await until("the client's stream to open at the hub", async () => (await pending()) === 1);

    const scheduled = await client.callTool({ name: "later", arguments: { ms: 150, send: "list_changed" } });
    assert.deepEqual(scheduled.content, [{ type: "text", text: "list_changed in 150 ms" }]);
    await until("tools/list_changed on the stream", () => listChanged === 1);

    await client.callTool({ name: "later", arguments: { ms: 150, send: "roots" } });
    await until("the roots request", () => rootsAsked.length === 1);
    await until("the server to log the client's roots", () =>
      agent
        .logs()
        .some(
          (r) =>
            r.msg === "MCP server stderr" &&
            r.line === 'fixture: roots [{"uri":"file:///srv/stream","name":"stream root"}]',
        ),
    );

    await client.close();
    client = undefined;
    await until("the agent to close the stream", () =>
      agent.logs().some((r) => r.msg === "the hub cancelled a command: its client went away" && r.found === true),
    );
    assert.equal(await pending(), 0);
  } finally {
    await client?.close();
  }
});
