/**
 * The routing table. Airlock's `routes:` and tunnel-client's one-server-per-channel
 * bindings (`mcp.server_urls`, `mcp.commands`, their flags and variables) become one list
 * of routes; a channel may be declared only once across all of them.
 */
import { parse as shellParse } from "shell-quote";
import type { BackendSpec, McpCommandEntry, McpServerUrlEntry, RouteSpec } from "../../shared/config/schema.ts";
import { normalizeChannel } from "../../shared/protocol/channels.ts";
import { configError } from "./errors.ts";
import {
  noteUrlSecrets,
  resolvePathReference,
  resolveReference,
  resolveValueMap,
  type ReferenceContext,
} from "./secrets.ts";
import type { BackendConfig, ConfigRules, HttpBackendConfig, RouteConfig, StdioBackendConfig } from "./types.ts";

/** Harpoon's channel belongs to the built-in Harpoon server. */
export const HARPOON_CHANNEL = "harpoon";

export interface RouteInputs {
  routes?: RouteSpec[];
  serverUrls?: { entries: McpServerUrlEntry[]; origin: string };
  commands?: { entries: McpCommandEntry[]; origin: string };
  /** Defaults for HTTP backends that came from `mcp.server_urls`. */
  mcpHttp: { headers: Record<string, string>; httpProxy?: string; clientCert?: string; clientKey?: string };
  /** Which rules apply where tunnel-client and Airlock differ (`strict_config`). */
  rules: ConfigRules;
}

/**
 * tunnel-client's command-line split (`pkg/runtimeconfig/config.go`): whitespace separates
 * words, single quotes are literal, double quotes and backslashes escape; nothing else is
 * special, so `;`, `|`, `>` and `#` are ordinary arguments and no shell ever runs. Empty
 * words (`""`) are dropped, as there.
 */
export function splitCommandLiteral(command: string, path: string): string[] {
  const argv: string[] = [];
  let word = "";
  let quote: "'" | '"' | undefined;
  let escaped = false;
  for (const ch of command) {
    if (escaped) {
      word += ch;
      escaped = false;
    } else if (quote === "'") {
      if (ch === "'") quote = undefined;
      else word += ch;
    } else if (ch === "\\") escaped = true;
    else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else word += ch;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (/[ \t\n\r]/.test(ch)) {
      if (word) argv.push(word);
      word = "";
    } else word += ch;
  }
  if (escaped) throw configError(path, "the command ends in an unfinished escape (a trailing backslash)");
  if (quote) throw configError(path, `the command has an unterminated ${quote} quote`);
  if (word) argv.push(word);
  if (argv.length === 0) throw configError(path, "the command is empty");
  return argv;
}

/**
 * A command string as argv under `rules`: strict refuses shell syntax ({@link splitCommand});
 * the default splits as tunnel-client does and warns when what looks like shell syntax is
 * passed on as literal arguments (no shell runs either way, so nothing is executed by it).
 */
export function commandArgv(command: string, path: string, rules: ConfigRules): string[] {
  if (rules.strict) return splitCommand(command, path);
  const argv = splitCommandLiteral(command, path);
  const what = shellParse(command, (name) => `$${name}`).flatMap((part) => {
    if (typeof part === "string" || ("op" in part && part.op === "glob")) return [];
    return "comment" in part ? ["'#'"] : [`'${part.op}'`];
  })[0];
  if (what) {
    rules.warnings.push(
      `${path}: ${what} is passed to the program as a literal argument, as tunnel-client does (commands never run through a shell); use ["sh", "-c", "…"] if you meant a shell, or set strict_config to refuse such commands`,
    );
  }
  return argv;
}

/**
 * Split a command line into argv the way a shell would (quotes, backslashes) without ever
 * invoking one: pipes, redirections and `;` are refused rather than silently passed on.
 * `$VAR` stays literal, as with tunnel-client.
 */
export function splitCommand(command: string, path: string): string[] {
  const argv: string[] = [];
  for (const part of shellParse(command, (name) => `$${name}`)) {
    if (typeof part === "string") argv.push(part);
    else if ("op" in part && part.op === "glob") argv.push(part.pattern);
    else if ("comment" in part)
      throw configError(path, "a command cannot contain '#' comments; quote the '#' if it is part of an argument");
    else
      throw configError(
        path,
        `the command contains the shell operator '${part.op}', but commands run without a shell; use an argv list, or ["sh", "-c", "…"] if you need one`,
      );
  }
  if (argv.length === 0) throw configError(path, "the command is empty");
  return argv;
}

export async function buildRoutes(inputs: RouteInputs, ctx: ReferenceContext): Promise<RouteConfig[]> {
  const routes: RouteConfig[] = [];
  const declared = new Map<string, string>();
  const claim = (channel: string, where: string) => {
    if (channel === HARPOON_CHANNEL)
      throw configError(
        where,
        `channel "${HARPOON_CHANNEL}" is reserved for the built-in Harpoon server; choose another channel`,
      );
    const previous = declared.get(channel);
    if (previous)
      throw configError(
        where,
        `channel ${channel} is already served by ${previous}; a channel has one route (list several backends in routes: to aggregate)`,
      );
    declared.set(channel, where);
  };

  for (const [index, route] of (inputs.routes ?? []).entries()) {
    const where = `routes[${index}]`;
    checkChannelRules(route.channel, `${where}.channel`, inputs.rules);
    claim(route.channel, `${where}.channel`);
    const backends: BackendConfig[] = [];
    for (const [b, spec] of route.backends.entries())
      backends.push(await backendFromSpec(spec, `${where}.backends[${b}]`, ctx, inputs.rules));
    routes.push({ channel: route.channel, backends, origin: "routes" });
  }

  for (const [index, entry] of (inputs.serverUrls?.entries ?? []).entries()) {
    const where = `mcp.server_urls[${index}]`;
    const channel = entryChannel(entry.channel, `${where}.channel`, inputs.rules);
    claim(channel, `${where} (${inputs.serverUrls!.origin})`);
    const url = await resolveUrl(entry.url, `${where}.url`, ctx);
    const backend: HttpBackendConfig = {
      name: channel,
      transport: "http",
      url,
      headers: { ...inputs.mcpHttp.headers },
    };
    const proxy = entry.http_proxy
      ? await resolveReference(entry.http_proxy, `${where}.http_proxy`, ctx)
      : inputs.mcpHttp.httpProxy;
    const socket = entry.unix_socket
      ? await resolvePathReference(entry.unix_socket, `${where}.unix_socket`, ctx)
      : undefined;
    if (socket && proxy && entry.http_proxy)
      throw configError(`${where}.unix_socket`, "unix_socket cannot be combined with http_proxy");
    if (socket) backend.unixSocket = socket;
    else if (proxy) backend.httpProxy = proxy;
    const cert = entry.client_cert ?? inputs.mcpHttp.clientCert;
    const key = entry.client_key ?? inputs.mcpHttp.clientKey;
    if ((cert === undefined) !== (key === undefined))
      throw configError(`${where}.client_cert`, "client_cert and client_key go together; set both or neither");
    if (cert) backend.clientCert = await resolvePathReference(cert, `${where}.client_cert`, ctx);
    if (key) backend.clientKey = await resolvePathReference(key, `${where}.client_key`, ctx);
    routes.push({ channel, backends: [backend], origin: "mcp.server_urls" });
  }

  for (const [index, entry] of (inputs.commands?.entries ?? []).entries()) {
    const where = `mcp.commands[${index}]`;
    const channel = entryChannel(entry.channel, `${where}.channel`, inputs.rules);
    claim(channel, `${where} (${inputs.commands!.origin})`);
    const command = await resolveReference(entry.command, `${where}.command`, ctx);
    const env = await resolveValueMap(entry.env, `${where}.env`, ctx);
    routes.push({
      channel,
      backends: [
        {
          name: channel,
          transport: "stdio",
          command: commandArgv(command, `${where}.command`, inputs.rules),
          env,
          ...processModel(entry),
        },
      ],
      origin: "mcp.commands",
    });
  }
  return routes;
}

async function backendFromSpec(
  spec: BackendSpec,
  where: string,
  ctx: ReferenceContext,
  rules: ConfigRules,
): Promise<BackendConfig> {
  const common = {
    name: spec.name,
    ...(spec.tools ? { tools: spec.tools } : {}),
    ...(spec.timeout !== undefined ? { timeoutMs: spec.timeout } : {}),
    ...(spec.max_concurrent_requests !== undefined ? { maxConcurrentRequests: spec.max_concurrent_requests } : {}),
  };
  if (spec.command !== undefined) {
    const command =
      typeof spec.command === "string" ? commandArgv(spec.command, `${where}.command`, rules) : spec.command;
    const env = await resolveValueMap(spec.env, `${where}.env`, ctx);
    return {
      ...common,
      transport: "stdio",
      command,
      env,
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      ...processModel(spec),
    };
  }
  const backend: HttpBackendConfig = {
    ...common,
    transport: "http",
    url: await resolveUrl(spec.url!, `${where}.url`, ctx),
    headers: await resolveValueMap(spec.headers, `${where}.headers`, ctx, { headers: true }),
  };
  if (spec.ca_file) backend.caFile = await resolvePathReference(spec.ca_file, `${where}.ca_file`, ctx);
  if (spec.unix_socket) backend.unixSocket = await resolvePathReference(spec.unix_socket, `${where}.unix_socket`, ctx);
  if (spec.http_proxy) backend.httpProxy = await resolveReference(spec.http_proxy, `${where}.http_proxy`, ctx);
  if ((spec.client_cert === undefined) !== (spec.client_key === undefined))
    throw configError(`${where}.client_cert`, "client_cert and client_key go together; set both or neither");
  if (spec.client_cert) backend.clientCert = await resolvePathReference(spec.client_cert, `${where}.client_cert`, ctx);
  if (spec.client_key) backend.clientKey = await resolvePathReference(spec.client_key, `${where}.client_key`, ctx);
  return backend;
}

/** The stdio process-model settings that were set (`routes[].backends[]` and `mcp.commands[]` spell them alike). */
function processModel(
  spec: Pick<BackendSpec, "share" | "max_sessions" | "idle_timeout" | "pool_size">,
): Partial<StdioBackendConfig> {
  return {
    ...(spec.share !== undefined ? { share: spec.share } : {}),
    ...(spec.max_sessions !== undefined ? { maxSessions: spec.max_sessions } : {}),
    ...(spec.idle_timeout !== undefined ? { idleTimeoutMs: spec.idle_timeout } : {}),
    ...(spec.pool_size !== undefined ? { poolSize: spec.pool_size } : {}),
  };
}

function entryChannel(raw: string | undefined, where: string, rules: ConfigRules): string {
  const channel = normalizeChannel(raw);
  if (channel === undefined)
    throw configError(
      where,
      `"${raw}" is not a valid channel: use lowercase letters, digits, '-' and '_' (at most 64)`,
    );
  checkChannelRules(channel, where, rules);
  return channel;
}

/**
 * The service and tunnel-client accept channels starting with '_' or '-'; strict_config
 * refuses them because `-x` reads as a flag on a command line (`--control-plane.poll-channel -x`).
 */
export function checkChannelRules(channel: string, where: string, rules: ConfigRules): void {
  if (rules.strict && /^[-_]/.test(channel))
    throw configError(
      where,
      `"${channel}" starts with '${channel[0]}'; strict_config wants channels to start with a letter or digit (rename it, or turn strict_config off)`,
    );
}

/** An http(s) URL; references allowed. Embedded credentials are recorded as secrets, never echoed. */
export async function resolveUrl(value: string, where: string, ctx: ReferenceContext): Promise<string> {
  const resolved = await resolveReference(value, where, ctx);
  noteUrlSecrets(resolved, ctx.secrets);
  let parsed: URL;
  try {
    parsed = new URL(resolved);
  } catch {
    throw configError(where, "is not an absolute URL; write it as http(s)://host[:port]/path");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw configError(where, `uses ${parsed.protocol.replace(/:$/, "")}; only http and https URLs are supported`);
  return resolved;
}

/** True when the agent polls `channel`: every channel without `poll_channels`, else the listed ones. */
export function polled(channel: string, pollChannels: readonly string[] | undefined): boolean {
  return pollChannels === undefined || pollChannels.includes(channel);
}
