/**
 * Multi round-trip requests through the hub (workerd) and a real agent process, over stdio
 * and Streamable HTTP, both ways across the eras:
 * - an SDK v2 client pinned to 2026-07-28 calls server-everything's (legacy) elicitation and
 *   sampling tools; the legacy server's requests reach the client as `input_required`
 *   results, which the SDK answers with its own handlers and retries;
 * - an SDK v1 client calls a 2026-only SDK v2 server's tool that asks twice through
 *   `input_required`; the questions reach the v1 client as elicitation requests on its stream;
 * - cancellation, each in its own era: the modern client aborting its call (closing the
 *   stream) reaches a legacy stdio server as `notifications/cancelled`, and the v1 client's
 *   `notifications/cancelled` reaches a 2026-only stdio server (which logs both).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Client as ModernClient } from "@modelcontextprotocol/client";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  everythingStdioCommand,
  fixtureServerCommand,
  modernStdioCommand,
  startEverythingHttp,
  startModernHttp,
  type RunningServer,
} from "../support/everything.ts";
import { agentsOverBothTransports, connectModernClient, greetingV1Client } from "../support/era-clients.ts";
import { CLIENT_TOKEN, startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "../support/hub-stack.ts";

type Leg = "stdio" | "http";
let hub: TestHub;
const servers: RunningServer[] = [];
const agents: HubAgent[] = [];
const legacyUrls = {} as Record<Leg, URL>;
const modernUrls = {} as Record<Leg, URL>;
/** Agents running the legacy SDK fixture and the 2026-only fixture over stdio, for cancellation. */
let hangAgent: HubAgent;
let stallAgent: HubAgent;
const cancelUrls = {} as Record<"legacy" | "modern", URL>;
const opened: Array<{ close(): Promise<void> }> = [];

/** Wait until `agent` logged its MCP server's stderr `line` (the fixtures say what they saw). */
async function serverSaid(agent: HubAgent, line: string | RegExp): Promise<void> {
  const said = () =>
    agent
      .logs()
      .some(
        (record) =>
          record.msg === "MCP server stderr" &&
          typeof record.line === "string" &&
          (typeof line === "string" ? record.line === line : line.test(record.line)),
      );
  for (let waited = 0; !said(); waited += 50) {
    if (waited > 20_000)
      assert.fail(`the MCP server never said ${String(line)}; the agent logged:\n${agent.stderr().slice(-6000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function text(result: Record<string, unknown>): string {
  return (result.content as Array<{ text?: string }>).map((c) => c.text ?? "").join("\n");
}

/** A pinned 2026-07-28 client that answers elicitation with `elicit` and sampling with "Paris.", recording what it was asked. */
async function modernAsked(
  url: URL,
  elicit: Record<string, unknown>,
): Promise<{ client: ModernClient; asked: string[] }> {
  const client = await connectModernClient(url, { pin: "2026-07-28" }, CLIENT_TOKEN, { elicitation: {}, sampling: {} });
  opened.push(client);
  const asked: string[] = [];
  client.setRequestHandler("elicitation/create", (request) => {
    asked.push(`elicitation: ${(request.params as { message: string }).message}`);
    return elicit as never;
  });
  client.setRequestHandler("sampling/createMessage", (request) => {
    asked.push(`sampling: ${JSON.stringify(request.params.messages)}`);
    return { role: "assistant", content: { type: "text", text: "Paris." }, model: "test-model", stopReason: "endTurn" };
  });
  return { client, asked };
}

before(async () => {
  hub = await startTestHub({ tunnels: 6, settings: { livenessMs: 5000 } });
  const [everything, modern] = await Promise.all([startEverythingHttp(), startModernHttp(true)]);
  servers.push(everything, modern);
  const [legacyBackends, modernBackends] = await Promise.all([
    agentsOverBothTransports(hub, everythingStdioCommand(), everything.url),
    agentsOverBothTransports(hub, modernStdioCommand(true), modern.url),
  ]);
  const [legacyTunnel, modernTunnel] = [hub.tunnel(), hub.tunnel()];
  [hangAgent, stallAgent] = await Promise.all([
    startHubAgent(hub.url, legacyTunnel, ["--mcp.command", fixtureServerCommand().join(" ")]),
    startHubAgent(hub.url, modernTunnel, ["--mcp.command", modernStdioCommand(true).join(" ")]),
  ]);
  cancelUrls.legacy = hub.mcpUrl(legacyTunnel);
  cancelUrls.modern = hub.mcpUrl(modernTunnel);
  agents.push(...legacyBackends.agents, ...modernBackends.agents, hangAgent, stallAgent);
  Object.assign(legacyUrls, legacyBackends.urls);
  Object.assign(modernUrls, modernBackends.urls);
});

after(async () => {
  await Promise.all(opened.map((client) => client.close().catch(() => {})));
  await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
  await Promise.all([hub?.close(), ...servers.map((server) => server.close())]);
});

for (const leg of ["stdio", "http"] as const) {
  describe(`a 2026-07-28 client → hub → agent → server-everything (legacy) over ${leg}`, () => {
    test("its elicitation tool is answered through input_required by the client's handler", async () => {
      const accept = { action: "accept", content: { name: "Ada Lovelace", check: true } };
      const { client, asked } = await modernAsked(legacyUrls[leg], accept);
      assert.equal(client.getProtocolEra(), "modern");
      const result = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
      assert.deepEqual(asked, ["elicitation: Please provide inputs for the following fields:"]);
      assert.match(text(result), /User provided the requested information/);
      assert.match(text(result), /- Name: Ada Lovelace/);
      assert.match(text(result), /- Agreed to terms: true/);
    });

    test("its sampling tool is answered through input_required by the client's handler", async () => {
      const { client, asked } = await modernAsked(legacyUrls[leg], { action: "decline" });
      const result = await client.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: "capital of France?", maxTokens: 20 },
      });
      assert.equal(asked.length, 1);
      assert.match(asked[0]!, /^sampling: .*capital of France\?/);
      assert.match(text(result), /LLM sampling result/);
      assert.match(text(result), /Paris\./);
    });

    test("a declined elicitation reaches the server as declined; a client without the capability is not offered the tool", async () => {
      const { client, asked } = await modernAsked(legacyUrls[leg], { action: "decline" });
      const declined = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
      assert.equal(asked.length, 1);
      assert.match(text(declined), /User declined to provide the requested information/);

      // The legacy session is opened with what the client declares: no elicitation, no such tool.
      const plain = await connectModernClient(legacyUrls[leg], { pin: "2026-07-28" });
      opened.push(plain);
      const names = (await plain.listTools()).tools.map((tool) => tool.name);
      assert.ok(names.includes("echo"), names.join(","));
      assert.ok(!names.includes("trigger-elicitation-request"), names.join(","));
    });
  });

  describe(`an SDK v1 client → hub → agent → a 2026-only server over ${leg}`, () => {
    test("the server's input_required rounds reach the v1 client's elicitation handler, twice, and the call completes", async () => {
      const { client, asked } = await greetingV1Client(modernUrls[leg]);
      opened.push(client);
      const result = await client.callTool({ name: "confirm-greeting", arguments: {} });
      assert.deepEqual(asked, ["Your name?", "Greet Ada?"]);
      assert.equal(text(result), "Hello, Ada!");
    });

    test("a v1 client declining the question gets the server's answer to a decline", async () => {
      const { client } = await connectClient(modernUrls[leg], { capabilities: { elicitation: {} } });
      opened.push(client);
      const asked: string[] = [];
      client.setRequestHandler(ElicitRequestSchema, (request) => {
        asked.push((request.params as { message: string }).message);
        return { action: "decline" };
      });
      const result = await client.callTool({ name: "confirm-greeting", arguments: {} });
      assert.deepEqual(asked, ["Your name?"]);
      assert.equal(text(result), "No name given.");
    });
  });
}

describe("cancellation of bridged calls, in each era's own form", () => {
  test("a 2026-07-28 client aborting its call reaches a legacy stdio server as notifications/cancelled", async () => {
    const client = await connectModernClient(cancelUrls.legacy, { pin: "2026-07-28" });
    opened.push(client);
    assert.equal(client.getProtocolEra(), "modern");
    const abort = new AbortController();
    const call = client.callTool({ name: "hang", arguments: {} }, { signal: abort.signal });
    await serverSaid(hangAgent, "fixture: hang started");
    abort.abort();
    await assert.rejects(call);
    await serverSaid(hangAgent, /^fixture: hang cancelled/);
  });

  test("an SDK v1 client's notifications/cancelled reaches a 2026-only stdio server as a cancelled request", async () => {
    const { client } = await connectClient(cancelUrls.modern);
    opened.push(client);
    const abort = new AbortController();
    const call = client.callTool({ name: "stall", arguments: {} }, undefined, { signal: abort.signal });
    await serverSaid(stallAgent, "fixture: stall started");
    abort.abort();
    await assert.rejects(call);
    await serverSaid(stallAgent, "fixture: stall cancelled");
  });
});
