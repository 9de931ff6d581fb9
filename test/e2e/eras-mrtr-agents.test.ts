/**
 * Multi round-trip requests through the hub (workerd) when a tunnel has two real agent
 * processes. A paused call, or a question put on a legacy client's stream, lives in the one
 * agent that began it, and the hub hands a request to whichever agent polls first; so the
 * hub must send the client's retry (its `requestState`) or answer (its id) back to that agent
 * (relay/hub/round-trip-affinity.ts). Without that, every other retry lands on the other agent
 * (−32602 "holds no call") and answers are lost there.
 * - an SDK v2 client pinned to 2026-07-28 calls server-everything's (legacy, Streamable HTTP)
 *   elicitation tool ten times, each answered through `input_required` and a retry;
 * - SDK v1 clients call a 2026-only SDK v2 server's two-question tool over HTTP: the agent
 *   asks them on their streams and they post the answers back; the session the agent's
 *   bridge opened (holding the client's declared capabilities) is pinned to that agent;
 * - both again through a routing table aggregating the two servers.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { connectModernClient, greetingV1Client } from "../support/era-clients.ts";
import { startEverythingHttp, startModernHttp, type RunningServer } from "../support/everything.ts";
import { CLIENT_TOKEN, startTestHub, type TestHub } from "../support/hub.ts";
import { startHubAgent, type HubAgent } from "../support/hub-stack.ts";

const CALLS = 10;
let dir: string;
let hub: TestHub;
const servers: RunningServer[] = [];
const opened: Array<{ close(): Promise<void> }> = [];
const pairs = {} as Record<"legacy" | "modern" | "routes", { agents: HubAgent[]; url: URL }>;

/** Two agents on a fresh tunnel of the hub, both with the backend flags `backend`. */
async function twoAgents(backend: string[]): Promise<{ agents: HubAgent[]; url: URL }> {
  const tunnel = hub.tunnel();
  const agents = await Promise.all([startHubAgent(hub.url, tunnel, backend), startHubAgent(hub.url, tunnel, backend)]);
  return { agents, url: hub.mcpUrl(tunnel) };
}

/** Sum of `airlock_commands_total` over its series on an agent: how many commands it served. */
async function commandsServed(agent: HubAgent): Promise<number> {
  const metrics = await (await fetch(`${agent.opsUrl}/metrics`)).text();
  return [...metrics.matchAll(/^airlock_commands_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** What each agent of `agents` served while `work` ran. */
async function servedDuring(agents: HubAgent[], work: () => Promise<void>): Promise<number[]> {
  const before = await Promise.all(agents.map(commandsServed));
  await work();
  const now = await Promise.all(agents.map(commandsServed));
  return now.map((count, i) => count - before[i]!);
}

function text(result: Record<string, unknown>): string {
  return (result.content as Array<{ text?: string }>).map((c) => c.text ?? "").join("\n");
}

/** A pinned 2026-07-28 client that accepts every elicitation with a name and counts the questions. */
async function modernClient(url: URL): Promise<{ call(name: string): Promise<string>; asked(): number }> {
  const client = await connectModernClient(url, { pin: "2026-07-28" }, CLIENT_TOKEN, { elicitation: {} });
  opened.push(client);
  let asked = 0;
  client.setRequestHandler("elicitation/create", () => {
    asked++;
    return { action: "accept", content: { name: "Ada Lovelace", check: true } } as never;
  });
  assert.equal(client.getProtocolEra(), "modern");
  return {
    call: async (name) => text(await client.callTool({ name, arguments: {} })),
    asked: () => asked,
  };
}

/** An SDK v1 client answering the 2026-only fixture's two questions (see {@link greetingV1Client}). */
async function legacyClient(url: URL): Promise<{ call(name: string): Promise<string>; asked: string[] }> {
  const { client, asked } = await greetingV1Client(url);
  opened.push(client);
  return { call: async (name) => text(await client.callTool({ name, arguments: {} })), asked };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-eras-mrtr-agents-"));
  const [everything, modern] = await Promise.all([startEverythingHttp(), startModernHttp(true)]);
  servers.push(everything, modern);
  hub = await startTestHub({ tunnels: 3, settings: { livenessMs: 5000 } });
  const routes = join(dir, "routes.yaml");
  writeFileSync(
    routes,
    stringify({
      routes: [
        {
          channel: "main",
          backends: [
            { name: "everything", url: everything.url },
            { name: "modern", url: modern.url },
          ],
        },
      ],
    }),
  );
  [pairs.legacy, pairs.modern, pairs.routes] = await Promise.all([
    twoAgents(["--mcp.server-url", everything.url]),
    twoAgents(["--mcp.server-url", modern.url]),
    twoAgents(["--config", routes]),
  ]);
});

after(async () => {
  await Promise.all(opened.map((client) => client.close().catch(() => {})));
  await Promise.all(Object.values(pairs).flatMap((pair) => pair.agents.map((agent) => agent.stop("SIGTERM"))));
  await Promise.all([hub?.close(), ...servers.map((server) => server.close())]);
  rmSync(dir, { recursive: true, force: true });
});

describe("two agents on one tunnel, multi round-trip requests", { concurrency: false }, () => {
  test(`a 2026-07-28 client's ${CALLS} elicitation calls to a legacy HTTP server all complete: each retry reaches the agent holding its call`, async () => {
    const client = await modernClient(pairs.legacy.url);
    const served = await servedDuring(pairs.legacy.agents, async () => {
      for (let i = 0; i < CALLS; i++) {
        const answer = await client.call("trigger-elicitation-request");
        assert.match(answer, /- Name: Ada Lovelace/, `call ${i + 1}`);
      }
    });
    assert.equal(client.asked(), CALLS);
    // Both agents took calls, so retries had another agent to land on.
    assert.ok(
      served.every((count) => count > 0),
      `each agent served some of the calls: ${served.join(", ")}`,
    );
  });

  test("SDK v1 clients of a 2026-only HTTP server: each session stays with the agent holding its declaration, and answers reach the agent that asked", async () => {
    // Without the pin, a call on the other agent reaches the server with no capabilities (−32021).
    for (let i = 0; i < 4; i++) {
      const client = await legacyClient(pairs.modern.url);
      assert.equal(await client.call("confirm-greeting"), "Hello, Ada!", `client ${i + 1}`);
      assert.equal(await client.call("confirm-greeting"), "Hello, Ada!", `client ${i + 1}, again`);
      assert.deepEqual(client.asked, ["Your name?", "Greet Ada?", "Your name?", "Greet Ada?"]);
    }
  });

  test("through a routing table aggregating both: the modern client's retries and the v1 client's answers reach the right agent", async () => {
    const modern = await modernClient(pairs.routes.url);
    const legacy = await legacyClient(pairs.routes.url);
    const served = await servedDuring(pairs.routes.agents, async () => {
      for (let i = 0; i < 4; i++)
        assert.match(await modern.call("everything__trigger-elicitation-request"), /- Name: Ada Lovelace/);
      assert.equal(await legacy.call("modern__confirm-greeting"), "Hello, Ada!");
    });
    assert.equal(modern.asked(), 4);
    assert.deepEqual(legacy.asked, ["Your name?", "Greet Ada?"]);
    assert.ok(
      served.every((count) => count > 0),
      `each agent served some of the requests: ${served.join(", ")}`,
    );
  });
});
