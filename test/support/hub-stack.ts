/**
 * Real agent processes on a local hub's tunnel, for the end-to-end suites and benches:
 * start `airlock run` against the hub and wait until the hub sees it polling, so the
 * first MCP request never races the agent's first poll.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { ClientCapabilities } from "@modelcontextprotocol/sdk/types.js";
import { waitForAgent } from "../../agent/demo/stack.ts";
import { airlockCommand, startAirlockProcess, type AgentProcess, type RuntimeName } from "./agent-process.ts";
import { AGENT_KEY, CLIENT_TOKEN } from "./hub.ts";

export interface HubAgent extends AgentProcess {
  /** `X-Tunnel-Client-Instance-Id` of this agent, as the hub knows it. */
  instanceId: string;
}

/** The instance id the agent logged at startup ("agent started"). */
export async function agentInstanceId(agent: AgentProcess, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const started = agent.logs().find((record) => record.msg === "agent started");
    if (typeof started?.instance === "string") return started.instance;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the agent logged no "agent started" line within ${timeoutMs} ms:\n${agent.stderr()}`);
}

export interface HubAgentOptions {
  runtime?: RuntimeName;
  /** Run `airlock` this way instead (a build: the bundle, an executable); `runtime` then only labels it. */
  command?: (runArgs: string[]) => string[];
  key?: string;
  /** Extra `airlock run` flags (e.g. a shorter poll timeout). Keep the log level at info: the instance id is read from the log. */
  args?: string[];
  /** Extra environment for the agent process (e.g. `OTEL_*`). */
  env?: Record<string, string>;
}

/**
 * Start `airlock run` polling `tunnel` on `hub` with the given backend flags
 * (`--mcp.command …` / `--mcp.server-url …`); resolves once the hub lists it as live.
 */
export async function startHubAgent(
  hub: URL,
  tunnel: string,
  backend: string[],
  options: HubAgentOptions = {},
): Promise<HubAgent> {
  const key = options.key ?? AGENT_KEY;
  const runtime = options.runtime ?? "node";
  const agent = await startAirlockProcess(
    runtime,
    options.command ?? ((runArgs) => airlockCommand(runtime, runArgs)),
    [
      "--control-plane.base-url",
      hub.origin,
      "--control-plane.tunnel-id",
      tunnel,
      "--control-plane.api-key",
      "env:HUB_STACK_AGENT_KEY",
      ...backend,
      ...(options.args ?? []),
    ],
    { ...options.env, HUB_STACK_AGENT_KEY: key },
  );
  try {
    const instanceId = await agentInstanceId(agent);
    await waitForAgent(hub, tunnel, key, instanceId);
    return Object.assign(agent, { instanceId });
  } catch (error) {
    await agent.stop("SIGTERM");
    throw error;
  }
}

/** An MCP SDK client connected to an MCP URL with a bearer token (the hub's client token by default). */
export async function connectClient(
  url: URL,
  options: { token?: string | null; capabilities?: ClientCapabilities; name?: string } = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const token = options.token === undefined ? CLIENT_TOKEN : options.token;
  const client = new Client(
    { name: options.name ?? "airlock-e2e", version: "0.0.0" },
    { capabilities: options.capabilities ?? {} },
  );
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: token === null ? {} : { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return { client, transport };
}
