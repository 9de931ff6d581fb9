/** Build the backend a configured entry describes. */
import type { BackendConfig } from "../config/types.ts";
import type { Logger } from "../../shared/log.ts";
import type { Backend } from "./types.ts";
import { createHttpBackend } from "./http.ts";
import { createStdioBackend } from "./stdio.ts";
import { bridgeEras } from "../bridge/backend.ts";

export interface BackendFactoryDeps {
  log: Logger;
  /** The global CA bundle (`ca_bundle`), used when a backend names none of its own. */
  caBundle?: string;
  /** What stdio children inherit before their `env:` map (see `childEnvironment`); default the allowlisted part of the agent's environment. */
  childEnv?: Readonly<Record<string, string | undefined>>;
}

/** Children get an allowlisted environment; see child-env.ts for why. */
export { childEnvironment } from "./child-env.ts";

/** The configured server, with modern (2026-07-28) clients bridged to it when it is a legacy one (agent/bridge/). */
export function createBackend(config: BackendConfig, deps: BackendFactoryDeps): Backend {
  return bridgeEras(createLeafBackend(config, deps), { log: deps.log });
}

function createLeafBackend(config: BackendConfig, deps: BackendFactoryDeps): Backend {
  if (config.transport === "stdio") {
    return createStdioBackend({
      name: config.name, command: config.command, env: config.env, inheritEnv: deps.childEnv, cwd: config.cwd, log: deps.log,
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
  });
}
