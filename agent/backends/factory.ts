/** Build the backend a configured entry describes. */
import type { BackendConfig } from "../config/types.ts";
import type { Logger } from "../../shared/log.ts";
import type { Backend } from "./types.ts";
import type { OutboundRequest } from "../runtime/http-client.ts";
import { createHttpBackend } from "./http.ts";
import { createStdioBackend, createStdioSessionBackend } from "./stdio.ts";
import { bridgeEras } from "../bridge/backend.ts";
import { traceBackend } from "../telemetry/backend.ts";
import { TRACING_OFF, type Tracing } from "../telemetry/tracing.ts";

export interface BackendFactoryDeps {
  log: Logger;
  /** The global CA bundle (`ca_bundle`), used when a backend names none of its own. */
  caBundle?: string;
  /** What stdio children inherit before their `env:` map (see `childEnvironment`); default the allowlisted part of the agent's environment. */
  childEnv?: Readonly<Record<string, string | undefined>>;
  /** Spans for each exchange; trace context reaches the server in `_meta` either way. */
  tracing?: Tracing;
  /** Told about each HTTP request an MCP server gets (the `http_client_*` metrics). */
  observeHttp?: (request: OutboundRequest) => void;
}

/** Children get an allowlisted environment; see child-env.ts for why. */
export { childEnvironment } from "./child-env.ts";

/** The configured server, with modern (2026-07-28) clients bridged to it when it is a legacy one (agent/bridge/). */
export function createBackend(config: BackendConfig, deps: BackendFactoryDeps): Backend {
  // Traced inside the bridge: spans show what the server was sent (the bridge's own initialize and probe too).
  return bridgeEras(traceBackend(createServerBackend(config, deps), deps.tracing ?? TRACING_OFF), { log: deps.log });
}

function createServerBackend(config: BackendConfig, deps: BackendFactoryDeps): Backend {
  if (config.transport === "stdio") {
    const options = {
      name: config.name,
      command: config.command,
      env: config.env,
      inheritEnv: deps.childEnv,
      cwd: config.cwd,
      log: deps.log,
    };
    // One child per MCP session unless the operator declared the server stateless (agent/backends/stdio/sessions.ts).
    if (config.share) return createStdioBackend(options);
    return createStdioSessionBackend(options, {
      maxSessions: config.maxSessions,
      idleTimeoutMs: config.idleTimeoutMs,
      poolSize: config.poolSize,
    });
  }
  return createHttpBackend({
    name: config.name,
    url: config.url,
    headers: config.headers,
    caFile: config.caFile ?? deps.caBundle,
    proxy: config.httpProxy,
    unixSocket: config.unixSocket,
    clientCert: config.clientCert,
    clientKey: config.clientKey,
    timeoutMs: config.timeoutMs,
    log: deps.log,
    ...(deps.observeHttp ? { observe: deps.observeHttp } : {}),
  });
}
