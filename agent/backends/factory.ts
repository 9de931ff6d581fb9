/** Build the backend a configured entry describes. */
import type { BackendConfig } from "../config/types.ts";
import type { Logger } from "../../shared/log.ts";
import type { Backend } from "./types.ts";
import { createHttpBackend } from "./http.ts";
import { createStdioBackend } from "./stdio.ts";

export interface BackendFactoryDeps {
  log: Logger;
  /** The global CA bundle (`ca_bundle`), used when a backend names none of its own. */
  caBundle?: string;
  /** What stdio children inherit (see {@link childEnvironment}); default the agent's environment. */
  childEnv?: Readonly<Record<string, string | undefined>>;
}

/**
 * The environment stdio MCP servers inherit: the agent's own, minus every variable that
 * holds one of the agent's resolved secrets (the control-plane key above all) and the
 * variables tunnel-client reads keys from. A server that needs a secret gets it by name in
 * its backend's `env:` map, never by accident.
 */
export function childEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  secrets: readonly string[],
): Record<string, string | undefined> {
  const secretValues = new Set(secrets.filter((value) => value.length > 0));
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || KEY_VARIABLES.has(name) || secretValues.has(value)) continue;
    out[name] = value;
  }
  return out;
}

/** Variables that carry control-plane credentials, whatever their value. */
const KEY_VARIABLES = new Set(["CONTROL_PLANE_API_KEY", "OPENAI_API_KEY"]);

export function createBackend(config: BackendConfig, deps: BackendFactoryDeps): Backend {
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
