/**
 * tunnel-client's `dev proxy` on Airlock's parts: a local control plane with MCP ingress (the
 * hub's Worker in workerd) and an agent in this process polling it, configured by `run`'s own
 * flags, profiles and environment. The tunnel passes `Authorization` to the MCP server and needs
 * no client token, as tunnel-client's local proxy: its MCP URL is for local integration tests.
 * The agent key is a fresh random value that only this process knows.
 */
import { randomBytes } from "node:crypto";
import process from "node:process";
import type { Logger } from "../../shared/log.ts";
import { startAgent, type AgentHandle } from "../agent.ts";
import { loadConfig } from "../config/load.ts";
import { controlPlaneBase, mcpUrl, withOwnSignals } from "../cli/hub.ts";
import { waitForAgent } from "../demo/stack.ts";
import type { LocalHub, LocalHubSettings } from "./run.ts";

/** The environment variable the in-process agent reads its key from (only in the env given to its loader). */
const AGENT_KEY_ENV = "AIRLOCK_DEV_PROXY_AGENT_KEY";

/** tunnel-client's `localproxy.DefaultTunnelID`. */
export const DEV_PROXY_TUNNEL_ID = "tunnel_22222222222222222222222222222222";

export interface DevProxyOptions {
  /** Where the MCP ingress listens (`--listen`). */
  host: string;
  port: number;
  tunnelId: string;
  /** `run` flags for the agent: `--mcp.server-url`, `--mcp.command`, `--profile`, `--health.listen-addr`, … */
  agentArgv: string[];
  /** How long to wait for the agent's first poll (`--readiness-timeout`). */
  readinessTimeoutMs: number;
  settings: LocalHubSettings;
  log: (loaded: { level: Logger["level"]; format: "json" | "text" | "default" }) => Logger;
}

/** tunnel-client's `localproxy.Info`, the `--print-json` / `--url-file` document. */
export interface DevProxyInfo {
  tunnel_id: string;
  mcp_url: string;
  mcp_transport: "http";
  control_plane_base_url: string;
  control_plane_transport: "http";
  health_url?: string;
  /** tunnel-client says `go` or `rust`; Airlock's local control plane is the hub Worker in workerd. */
  backend: "workerd";
}

export interface DevProxy {
  info: DevProxyInfo;
  hub: LocalHub;
  agent: AgentHandle;
  close(): Promise<void>;
}

/** Start the hub, then the agent against it; resolves once the agent polls. */
export async function startDevProxy(options: DevProxyOptions): Promise<DevProxy> {
  const agentKey = `dev-proxy-${randomBytes(24).toString("base64url")}`;
  // The control-plane flags come last: flags beat profiles and the environment, so the agent always polls this hub.
  const load = (hubBase: string) =>
    loadConfig({
      argv: [
        ...options.agentArgv,
        "--control-plane.base-url",
        hubBase,
        "--control-plane.tunnel-id",
        options.tunnelId,
        "--control-plane.api-key",
        `env:${AGENT_KEY_ENV}`,
      ],
      env: { ...process.env, [AGENT_KEY_ENV]: agentKey },
      cwd: process.cwd(),
    });
  // A configuration mistake is reported before workerd is started for nothing (the URL is not dialled).
  await load("http://127.0.0.1");
  const { startLocalHub } = await import("./run.ts");
  const hub = await withOwnSignals(() =>
    startLocalHub({
      host: options.host,
      port: options.port,
      settings: options.settings,
      tunnels: [
        {
          id: options.tunnelId,
          agentKeys: [agentKey],
          clientTokens: [],
          name: "airlock dev proxy",
          passClientAuthorization: true,
        },
      ],
    }),
  );
  let agent: AgentHandle | undefined;
  try {
    const loaded = await load(controlPlaneBase(hub.url));
    const log = options.log(loaded.config.log);
    for (const warning of loaded.warnings) log.warn(warning);
    agent = await startAgent(loaded, { log, shutdownGraceMs: 2000 });
    await waitForAgent(hub.url, options.tunnelId, agentKey, agent.instanceId, options.readinessTimeoutMs);
    const running = agent;
    let closing: Promise<void> | undefined;
    return {
      hub,
      agent: running,
      info: {
        tunnel_id: options.tunnelId,
        mcp_url: mcpUrl(hub.url, options.tunnelId).href,
        mcp_transport: "http",
        control_plane_base_url: controlPlaneBase(hub.url),
        control_plane_transport: "http",
        ...(running.opsUrl ? { health_url: running.opsUrl } : {}),
        backend: "workerd",
      },
      close: () => (closing ??= running.stop().finally(() => hub.close())),
    };
  } catch (error) {
    await agent?.stop().catch(() => {});
    await hub.close().catch(() => {});
    throw error;
  }
}
