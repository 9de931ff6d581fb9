/** MCP SDK v2 clients (`@modelcontextprotocol/client`) in each negotiation mode, for the era tests. */
import { Client, StreamableHTTPClientTransport, type ClientCapabilities } from "@modelcontextprotocol/client";
import type { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { CLIENT_TOKEN, type TestHub } from "./hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "./hub-stack.ts";

/** `legacy` (2025 handshake), `auto` (probe, fall back) or pinned to one revision. */
export type NegotiationMode = "legacy" | "auto" | { pin: string };

/**
 * An SDK v2 client connected to `url` in `mode`, with the hub's client token unless `token` is
 * `null`, declaring `capabilities` (set the matching request handlers before calling).
 */
export async function connectModernClient(
  url: URL,
  mode: NegotiationMode,
  token: string | null = CLIENT_TOKEN,
  capabilities: ClientCapabilities = {},
): Promise<Client> {
  const client = new Client({ name: "airlock-eras", version: "0.0.0" }, { capabilities, versionNegotiation: { mode } });
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: token === null ? {} : { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return client;
}

/**
 * An SDK v1 client declaring elicitation that answers the 2026-only fixture's `confirm-greeting`
 * questions (a name, then a confirmation) and records what it was asked.
 */
export async function greetingV1Client(url: URL): Promise<{ client: V1Client; asked: string[] }> {
  const { client } = await connectClient(url, { capabilities: { elicitation: {} } });
  const asked: string[] = [];
  client.setRequestHandler(ElicitRequestSchema, (request) => {
    const message = (request.params as { message: string }).message;
    asked.push(message);
    return { action: "accept", content: message === "Your name?" ? { name: "Ada" } : { ok: true } };
  });
  return { client, asked };
}

/** Two agents on two fresh tunnels of `hub`: one runs `stdioArgv` as its stdio backend, one uses the MCP URL `httpUrl`. */
export async function agentsOverBothTransports(
  hub: TestHub,
  stdioArgv: string[],
  httpUrl: string,
): Promise<{ agents: HubAgent[]; urls: Record<"stdio" | "http", URL> }> {
  const stdioTunnel = hub.tunnel();
  const httpTunnel = hub.tunnel();
  const agents = await Promise.all([
    startHubAgent(hub.url, stdioTunnel, ["--mcp.command", stdioArgv.join(" ")]),
    startHubAgent(hub.url, httpTunnel, ["--mcp.server-url", httpUrl]),
  ]);
  return { agents, urls: { stdio: hub.mcpUrl(stdioTunnel), http: hub.mcpUrl(httpTunnel) } };
}
