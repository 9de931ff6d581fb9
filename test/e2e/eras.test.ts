/**
 * Both MCP eras through the hub (workerd) and a real agent process to server-everything,
 * a legacy (2025) server, over stdio and over Streamable HTTP: an SDK v2 client pinned to
 * 2026-07-28 discovers, lists, calls, reads and gets through the agent's era bridge, and
 * its payloads equal what a legacy SDK v1 client gets for the same calls; SDK v2 in
 * `legacy` and `auto` modes works too. The hub checks the modern headers against the body.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Client as ModernClient } from "@modelcontextprotocol/client";
import type { Client as LegacyClient } from "@modelcontextprotocol/sdk/client/index.js";
import { everythingStdioCommand, startEverythingHttp, type RunningServer } from "../support/everything.ts";
import { agentsOverBothTransports, connectModernClient, type NegotiationMode } from "../support/era-clients.ts";
import { CLIENT_TOKEN, startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, type HubAgent } from "../support/hub-stack.ts";

let hub: TestHub;
let server: RunningServer;
/** A tunnel no agent serves. */
let idleTunnel: URL;
const agents: HubAgent[] = [];
const urls: Record<"stdio" | "http", URL> = {} as Record<"stdio" | "http", URL>;
const opened: Array<{ close(): Promise<void> }> = [];

async function modernClient(url: URL, mode: NegotiationMode): Promise<ModernClient> {
  const client = await connectModernClient(url, mode);
  opened.push(client);
  return client;
}

async function legacyClient(url: URL): Promise<LegacyClient> {
  const { client } = await connectClient(url);
  opened.push(client);
  return client;
}

/** The calls both eras make, as comparable payloads (the era's own fields left out). */
async function script(client: ModernClient | LegacyClient) {
  const tools = (await client.listTools()).tools.map(({ name, description, inputSchema }) => ({
    name,
    description,
    inputSchema,
  }));
  const echo = await client.callTool({ name: "echo", arguments: { message: "eras ✓ ünïcode" } });
  const sum = await client.callTool({ name: "get-sum", arguments: { a: 2, b: 40 } });
  const resource = await client.readResource({ uri: "demo://resource/dynamic/text/7" });
  const prompt = await client.getPrompt({ name: "args-prompt", arguments: { city: "Lisbon", state: "Lisboa" } });
  // The dynamic resource says when it was made ("created at 9:58:18 PM"): two clients reading it in
  // the same test may straddle a second, so the clock time is left out of the comparison.
  const contents = JSON.parse(JSON.stringify(resource.contents).replace(/\d{1,2}:\d{2}:\d{2}(\s?[AP]M)?/g, "<time>"));
  return { tools, echo: echo.content, sum: sum.content, resource: contents, prompt: prompt.messages };
}

before(async () => {
  [hub, server] = await Promise.all([
    startTestHub({ tunnels: 3, settings: { livenessMs: 5000 } }),
    startEverythingHttp(),
  ]);
  const started = await agentsOverBothTransports(hub, everythingStdioCommand(), server.url);
  agents.push(...started.agents);
  Object.assign(urls, started.urls);
  idleTunnel = hub.mcpUrl(hub.tunnel());
});

after(async () => {
  await Promise.all(opened.map((client) => client.close().catch(() => {})));
  await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
  await Promise.all([hub?.close(), server?.close()]);
});

for (const leg of ["stdio", "http"] as const) {
  describe(`a 2026-07-28 client → hub → agent → server-everything (legacy) over ${leg}`, () => {
    test("server/discover is answered from the server's initialize, and the connection is modern", async () => {
      const client = await modernClient(urls[leg], { pin: "2026-07-28" });
      assert.equal(client.getProtocolEra(), "modern");
      const discover = client.getDiscoverResult();
      assert.deepEqual(discover?.supportedVersions, ["2026-07-28"]);
      assert.ok(discover?.capabilities.tools, "the server's tools capability is offered");
      assert.equal(client.getServerVersion()?.name, "mcp-servers/everything");
    });

    test("lists, a tool call, a resource read and a prompt carry the same payloads as for a legacy client", async () => {
      const [modern, legacy] = await Promise.all([
        modernClient(urls[leg], { pin: "2026-07-28" }),
        legacyClient(urls[leg]),
      ]);
      const [fromModern, fromLegacy] = await Promise.all([script(modern), script(legacy)]);
      assert.ok(fromModern.tools.some((tool) => tool.name === "echo"));
      assert.deepEqual(fromModern.echo, [{ type: "text", text: "Echo: eras ✓ ünïcode" }]);
      assert.deepEqual(fromModern, fromLegacy);
    });

    test("SDK v2 in auto mode is served in the modern era, and in legacy mode as before", async () => {
      const [auto, legacyMode] = await Promise.all([
        modernClient(urls[leg], "auto"),
        modernClient(urls[leg], "legacy"),
      ]);
      assert.equal(auto.getProtocolEra(), "modern");
      assert.equal(legacyMode.getProtocolEra(), "legacy");
      const [a, b] = await Promise.all([script(auto), script(legacyMode)]);
      assert.deepEqual(a, b);
    });
  });
}

describe("the hub's era checks", () => {
  const meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
  };
  const call = {
    jsonrpc: "2.0",
    id: 7,
    method: "tools/call",
    params: { name: "echo", arguments: { message: "x" }, _meta: meta },
  };
  const post = (body: unknown, headers: Record<string, string>, url = urls.stdio) =>
    fetch(url, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${CLIENT_TOKEN}`,
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        ...headers,
      },
      body: JSON.stringify(body),
    });

  test("a stateless modern request with matching headers is served without a session", async () => {
    const response = await post(call, {
      "MCP-Protocol-Version": "2026-07-28",
      "Mcp-Method": "tools/call",
      "Mcp-Name": "echo",
    });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    assert.match(text, /"resultType":"complete"/);
    assert.match(text, /Echo: x/);
    assert.equal(response.headers.get("Mcp-Session-Id"), null, "a modern client gets no session");
  });

  test("Mcp-Name disagreeing with the body is HeaderMismatch (-32020), HTTP 400, refused before any agent is asked", async () => {
    // On a tunnel no agent serves: a request that went on to the tunnel would get 503 instead.
    const response = await post(
      call,
      { "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "get-env" },
      idleTunnel,
    );
    assert.equal(response.status, 400);
    const body = (await response.json()) as { id: number; error: { code: number; message: string } };
    assert.equal(body.id, 7);
    assert.equal(body.error.code, -32020);
    assert.match(body.error.message, /Mcp-Name header names get-env/);
  });

  test("an unknown modern revision is UnsupportedProtocolVersion (-32022), HTTP 400", async () => {
    const future = {
      ...call,
      params: { ...call.params, _meta: { ...meta, "io.modelcontextprotocol/protocolVersion": "2027-01-01" } },
    };
    const response = await post(future, {
      "MCP-Protocol-Version": "2027-01-01",
      "Mcp-Method": "tools/call",
      "Mcp-Name": "echo",
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: { code: number } }).error.code, -32022);
  });

  test("a CORS preflight allows the modern headers, Mcp-Param-* included", async () => {
    const response = await fetch(urls.stdio, {
      method: "OPTIONS",
      headers: {
        Origin: "https://inspector.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "mcp-method, mcp-name, mcp-param-region",
      },
    });
    const allowed = (response.headers.get("Access-Control-Allow-Headers") ?? "")
      .toLowerCase()
      .split(",")
      .map((name) => name.trim());
    for (const name of ["mcp-method", "mcp-name", "mcp-protocol-version", "mcp-param-region"])
      assert.ok(allowed.includes(name), `${name} in ${allowed.join(",")}`);
  });

  test("the agent shows the era it found in /readyz?strict=1", async () => {
    const ready = (await (await fetch(`${agents[0]!.opsUrl}/readyz?strict=1`)).json()) as {
      backends: Array<{ era?: string; bridgedSessions?: number }>;
    };
    assert.equal(ready.backends[0]?.era, "legacy");
    assert.ok((ready.backends[0]?.bridgedSessions ?? 0) >= 1);
  });
});
