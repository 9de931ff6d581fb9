/**
 * The demo's moving parts on one machine: a local hub (the Worker in workerd), an agent in
 * this process polling it, and server-everything over stdio as the private MCP backend.
 * The tunnel id, agent key and client token are fresh random values kept in memory; the hub
 * keeps its state in memory too, so nothing is left behind. With `login`, a built-in test
 * OpenID provider (agent/demo/test-idp.ts) with one demo user runs on loopback too, and the
 * hub signs MCP clients in through it (OAuth, docs/identity.md).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { LocalHub } from "../hub-local/run.ts";
import { silentLogger, type Logger } from "../../shared/log.ts";
import { startAgent, type AgentHandle } from "../agent.ts";
import { loadConfig } from "../config/load.ts";
import { withOwnSignals, mcpUrl, controlPlaneBase } from "../cli/hub.ts";
import { packageRoot } from "../runtime/package-root.ts";
import type { TestIdp, TestUser } from "./test-idp.ts";

/** The one person the demo's test IdP knows (any password works for this login). */
export const DEMO_USER: TestUser = {
  login: "demo",
  email: "demo@example.com",
  name: "Demo User",
  groups: ["demo"],
};

/** The environment variable the in-process agent reads its key from (only in the env given to its config loader). */
const AGENT_KEY_ENV = "AIRLOCK_DEMO_AGENT_KEY";

export interface DemoStack {
  hub: LocalHub;
  agent: AgentHandle;
  tunnelId: string;
  /** What MCP clients send as `Authorization: Bearer …`. */
  clientToken: string;
  mcpUrl: URL;
  /** The tunnel's audit log export, and the auditor token it takes. */
  auditUrl: URL;
  auditorToken: string;
  /** How long each part took to come up, in ms. */
  startup: { hubMs: number; agentMs: number };
  /** With `login`: the test IdP's issuer and the user to sign in as. */
  login?: { issuer: string; user: TestUser };
  close(): Promise<void>;
}

export interface DemoStackOptions {
  /** The agent's logger (quiet by default). */
  log?: Logger;
  hubLogLevel?: "error" | "warn" | "info" | "debug";
  /** Hub listen port; 0 (default) picks a free one. */
  port?: number;
  /** Turn OAuth on through a built-in test OpenID provider with {@link DEMO_USER}. */
  login?: boolean;
}

/** The test IdP, loaded only on this path: `oidc-provider` is a devDependency. */
async function startDemoIdp(): Promise<TestIdp> {
  const { startTestIdp } = await import("./test-idp.ts");
  return startTestIdp([DEMO_USER]);
}

function secret(prefix: string): string {
  return `${prefix}${randomBytes(24).toString("base64url")}`;
}

/**
 * The demo hub's policy: everything passes except `get-env` (which would print the
 * agent's environment), so one call is refused and every call lands in the audit log.
 */
export const DEMO_POLICY = `policy_version: 1
default: allow
rules:
  - name: no-env
    deny: { tools: ["get-env"] }
audit: { redact: ["arguments.message"] }
`;

/** argv of server-everything over stdio, run by the Node that runs this process. */
export function everythingCommand(): string[] {
  return [
    process.execPath,
    join(packageRoot(), "node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
    "stdio",
  ];
}

/**
 * Poll the hub's status until the agent `instanceId` holds a poll there, so the first MCP
 * request does not race the agent's first poll (the hub answers 503 while no agent is connected).
 */
export async function waitForAgent(
  hub: URL,
  tunnelId: string,
  agentKey: string,
  instanceId: string,
  timeoutMs = 15_000,
): Promise<void> {
  const url = new URL(`v1/tunnels/${tunnelId}/status`, hub);
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { headers: { Authorization: `Bearer ${agentKey}` } });
      const body = (await response.json()) as { agents?: Array<{ instanceId: string; live: boolean }> };
      if (body.agents?.some((agent) => agent.instanceId === instanceId && agent.live)) return;
      last = `HTTP ${response.status}, ${body.agents?.length ?? 0} agent(s) known`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`agent ${instanceId} did not connect to the hub at ${hub.origin} within ${timeoutMs} ms (${last})`);
}

/** Start hub, agent and backend; resolves once the agent is polling the hub. */
export async function startDemoStack(options: DemoStackOptions = {}): Promise<DemoStack> {
  const tunnelId = `tunnel_${randomBytes(16).toString("hex")}`;
  const agentKey = secret("demo-agent-");
  const clientToken = secret("demo-client-");
  const auditorToken = secret("demo-auditor-");
  const log = options.log ?? silentLogger;

  const hubStarted = performance.now();
  const idp = options.login ? await startDemoIdp() : undefined;
  const { startLocalHub } = await import("../hub-local/run.ts");
  const hub = await withOwnSignals(() =>
    startLocalHub({
      port: options.port ?? 0,
      logLevel: options.hubLogLevel ?? "warn",
      tunnels: [{ id: tunnelId, agentKeys: [agentKey], clientTokens: [clientToken], name: "Airlock demo" }],
      policy: DEMO_POLICY,
      auditorToken,
      ...(idp ? { oidc: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret } } : {}),
    }),
  ).catch(async (error: unknown) => {
    await idp?.close();
    throw error;
  });
  idp?.register(`${hub.url.origin}/oauth/callback`);
  const hubMs = performance.now() - hubStarted;
  const closeHub = () => hub.close().finally(() => idp?.close());

  let agent: AgentHandle | undefined;
  try {
    const agentStarted = performance.now();
    const loaded = await loadConfig({
      argv: [
        "--control-plane.base-url",
        controlPlaneBase(hub.url),
        "--control-plane.tunnel-id",
        tunnelId,
        "--control-plane.api-key",
        `env:${AGENT_KEY_ENV}`,
        "--health.listen-addr",
        "127.0.0.1:0",
        "--mcp.command",
        everythingCommand()
          .map((word) => JSON.stringify(word))
          .join(" "),
      ],
      // Only what the demo sets: the user's CONTROL_PLANE_* or MCP_* variables must not leak in.
      env: { [AGENT_KEY_ENV]: agentKey },
      cwd: process.cwd(),
    });
    agent = await startAgent(loaded, { log, shutdownGraceMs: 2000 });
    await waitForAgent(hub.url, tunnelId, agentKey, agent.instanceId);
    const agentMs = performance.now() - agentStarted;
    const running = agent;
    let closing: Promise<void> | undefined;
    return {
      hub,
      agent: running,
      tunnelId,
      clientToken,
      mcpUrl: mcpUrl(hub.url, tunnelId),
      auditUrl: new URL(`v1/audit/${tunnelId}`, hub.url),
      auditorToken,
      startup: { hubMs, agentMs },
      ...(idp ? { login: { issuer: idp.issuer, user: DEMO_USER } } : {}),
      close: () => (closing ??= running.stop().finally(closeHub)),
    };
  } catch (error) {
    await agent?.stop().catch(() => {});
    await closeHub().catch(() => {});
    throw error;
  }
}
