/**
 * `airlock routes [--json] [--offline] [--timeout 10s] [run flags…]`: the effective routing
 * table of the configuration `airlock run` would use with the same flags — channel →
 * backends → transport → the tools a client sees. Unless `--offline`, every channel is
 * started exactly as `run` builds it (a pass-through backend, or the aggregate), asked for
 * `tools/list` as a 2026-07-28 client asks (through the era bridge, so servers of either era
 * answer and each backend's era is shown; agent/bridge/inspect.ts), and stopped again.
 *
 * Exit status: 0 every backend answered, 1 some backend could not be listed, 2 usage or
 * configuration error. Commands and URLs are shown with secrets scrubbed, URLs without
 * credentials or query.
 */
import { loadConfig } from "../config/load.ts";
import type { BackendConfig, LoadedConfig, RouteConfig } from "../config/types.ts";
import type { BackendHealth } from "../backends/types.ts";
import { childEnvironment } from "../backends/factory.ts";
import { createRouteBackend } from "../routing/route.ts";
import { splitNamespaced } from "../routing/names.ts";
import { shellWord } from "../doctor/command.ts";
import { flagUsage } from "../config/flags.ts";
import { scrubSecrets, silentLogger } from "../../shared/log.ts";
import { VERSION } from "../version.ts";
import { isRefusal, toolNames } from "../bridge/inspect.ts";
import { helpText, parseFlags, processIo, timeoutFlag, withUsageErrors } from "./options.ts";
import type { CliIo, FlagSpec } from "./options.ts";

const FLAGS: Record<string, FlagSpec> = {
  json: { kind: "bool", help: "print the table as JSON" },
  offline: { kind: "bool", help: "do not start or contact any backend: configuration only" },
  timeout: { kind: "string", value: "DURATION", help: "per channel, for initialize and tools/list (default 10s)" },
};

const DESCRIPTION = `Prints the effective routing table: each channel, its backends (transport, command or URL,
tool filter, limits) and the tools a client sees through it. Channels with several backends
are aggregated: their tools appear as <backend>__<tool>.
Exit status: 0 every backend answered, 1 some backend could not be listed, 2 usage or configuration error.

Choose the configuration exactly as for \`airlock run\` (--config, --profile, flags, environment).`;

/** One backend of a channel, as printed. */
export interface RouteBackendView {
  name: string;
  transport: BackendConfig["transport"];
  /** The command line (stdio) or URL without credentials and query (http), secrets scrubbed. */
  target: string;
  tools?: { allow?: string[]; deny?: string[] };
  timeoutMs?: number;
  maxConcurrentRequests?: number;
  /** Not set with `--offline`. */
  state?: BackendHealth["state"];
  /** The MCP generation the server speaks, as the era bridge found it; not set with `--offline`. */
  era?: BackendHealth["era"];
  reason?: string;
  /** Tool names as a client of the channel sees them; not set with `--offline` or when listing failed. */
  exposedTools?: string[];
}

export interface RouteView {
  channel: string;
  origin: RouteConfig["origin"];
  mode: "pass-through" | "aggregate";
  backends: RouteBackendView[];
  /** Why the channel could not be listed (initialize or tools/list failed), if so. */
  error?: string;
}

export function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  return withUsageErrors("routes", io, () => routes(argv, io));
}

/** Separate this command's own flags from the configuration flags, which go to the loader. */
function takeOwnFlags(argv: readonly string[]): { own: string[]; rest: string[] } {
  const own: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    const name = word.startsWith("--") ? word.slice(2).split("=")[0]! : undefined;
    const spec = name === undefined ? undefined : FLAGS[name];
    if (word === "-h" || word === "--help") own.push(word);
    else if (!spec) rest.push(word);
    else if (spec.kind === "string" && !word.includes("=") && i + 1 < argv.length) own.push(word, argv[++i]!);
    else own.push(word);
  }
  return { own, rest };
}

async function routes(argv: string[], io: CliIo): Promise<number> {
  const { own, rest } = takeOwnFlags(argv);
  const flags = parseFlags("routes", own, FLAGS);
  if (flags.help) {
    io.stdout(
      `${helpText("airlock routes [--json] [--offline] [--timeout DURATION] [run flags…]", DESCRIPTION, FLAGS)}\nrun flags:\n${flagUsage()}\n`,
    );
    return 0;
  }
  const timeoutMs = timeoutFlag(flags, 10_000);
  // Lenient: the table needs no tunnel id or API key.
  const loaded = await loadConfig({
    argv: rest,
    env: io.env,
    cwd: io.cwd,
    lenient: true,
    ...(io.homeDir !== undefined ? { homeDir: io.homeDir } : {}),
  });
  const views = await describeRoutes(loaded, { offline: flags.bools.has("offline"), timeoutMs });
  io.stdout(flags.bools.has("json") ? `${JSON.stringify({ channels: views }, null, 2)}\n` : formatRoutes(views));
  const incomplete = views.some(
    (view) => view.error !== undefined || view.backends.some((b) => b.state !== undefined && b.state !== "up"),
  );
  return incomplete ? 1 : 0;
}

/** The table for a loaded configuration; unless `offline`, each channel is started, listed and stopped (in parallel). */
export async function describeRoutes(
  loaded: LoadedConfig,
  options: { offline: boolean; timeoutMs: number },
): Promise<RouteView[]> {
  const scrub = (text: string) => scrubSecrets(text, loaded.secrets);
  return Promise.all(
    loaded.config.routes.map(async (route): Promise<RouteView> => {
      const view: RouteView = {
        channel: route.channel,
        origin: route.origin,
        mode: route.backends.length === 1 ? "pass-through" : "aggregate",
        backends: route.backends.map((backend) => backendView(backend, scrub)),
      };
      if (!options.offline) await inspect(route, view, loaded, options.timeoutMs);
      return view;
    }),
  );
}

function backendView(backend: BackendConfig, scrub: (text: string) => string): RouteBackendView {
  const view: RouteBackendView = { name: backend.name, transport: backend.transport, target: scrub(target(backend)) };
  if (backend.tools) view.tools = backend.tools;
  if (backend.timeoutMs !== undefined) view.timeoutMs = backend.timeoutMs;
  if (backend.maxConcurrentRequests !== undefined) view.maxConcurrentRequests = backend.maxConcurrentRequests;
  return view;
}

function target(backend: BackendConfig): string {
  if (backend.transport === "stdio") return backend.command.map(shellWord).join(" ");
  try {
    const url = new URL(backend.url);
    return `${url.origin}${url.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

/** Start the channel as `run` would, list its tools as a client, and record each backend's state. */
async function inspect(route: RouteConfig, view: RouteView, loaded: LoadedConfig, timeoutMs: number): Promise<void> {
  const backend = createRouteBackend(route, {
    log: silentLogger,
    childEnv: childEnvironment(process.env, loaded.secrets),
    ...(loaded.config.caBundle ? { caBundle: loaded.config.caBundle } : {}),
    aggregate: { fanOutTimeoutMs: timeoutMs },
  });
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    await backend.start();
    const listed = await toolNames(backend, signal, { name: "airlock-routes", version: VERSION });
    const tools = isRefusal(listed) ? listed.why : listed;
    if (typeof tools === "string") view.error = scrubSecrets(tools, loaded.secrets);
    const health = backend.health();
    const members = health.members ?? [health];
    for (const member of view.backends) {
      const state = view.mode === "aggregate" ? members.find((m) => m.name === member.name) : health;
      if (state) {
        member.state = state.state;
        if (state.era) member.era = state.era;
        if (state.reason) member.reason = scrubSecrets(state.reason, loaded.secrets);
      }
      if (typeof tools === "string" || member.state !== "up") continue;
      member.exposedTools =
        view.mode === "aggregate" ? tools.filter((name) => splitNamespaced(name)?.backend === member.name) : tools;
    }
    // A pass-through backend whose initialize failed may still report "up" (an HTTP server that answered).
    if (view.mode === "pass-through" && view.error && view.backends[0]?.state === "up") {
      view.backends[0].state = "failed";
      view.backends[0].reason = view.error;
    }
  } finally {
    await backend.close().catch(() => {});
  }
}

/** The table as text, one block per channel. */
export function formatRoutes(views: readonly RouteView[]): string {
  if (views.length === 0)
    return "No routes: configure --mcp.server-url, --mcp.command or routes: (see docs/routing.md).\n";
  const lines: string[] = [];
  for (const view of views) {
    const count = `${view.backends.length} backend${view.backends.length === 1 ? "" : "s"}`;
    lines.push(
      `channel ${view.channel}  (${count}, ${view.mode === "aggregate" ? "aggregated: tools named <backend>__<tool>" : "pass-through"}; from ${view.origin})`,
    );
    const width = Math.max(...view.backends.map((b) => b.name.length));
    for (const backend of view.backends) {
      const extras = [
        backend.tools?.allow ? `allow ${backend.tools.allow.join(" ")}` : "",
        backend.tools?.deny ? `deny ${backend.tools.deny.join(" ")}` : "",
        backend.timeoutMs !== undefined
          ? `timeout ${backend.timeoutMs % 1000 === 0 ? `${backend.timeoutMs / 1000}s` : `${backend.timeoutMs}ms`}`
          : "",
        backend.maxConcurrentRequests !== undefined ? `max ${backend.maxConcurrentRequests} at once` : "",
      ].filter(Boolean);
      lines.push(
        `  ${backend.name.padEnd(width)}  ${backend.transport.padEnd(5)}  ${backend.target}${extras.length ? `  [${extras.join("; ")}]` : ""}`,
      );
      if (backend.state === undefined) continue;
      const era = backend.era === undefined ? "" : ` · ${backend.era === "modern" ? "MCP 2026-07-28" : "MCP 2025"}`;
      const status = `${backend.state === "up" ? "up" : `${backend.state}${backend.reason ? `: ${backend.reason}` : ""}`}${era}`;
      const tools = backend.exposedTools;
      lines.push(
        `  ${" ".repeat(width)}  ${status}${tools ? ` · ${tools.length} tool${tools.length === 1 ? "" : "s"}` : ""}`,
      );
      if (tools?.length) lines.push(...wrap(tools, 96).map((line) => `  ${" ".repeat(width)}    ${line}`));
    }
    if (view.error) lines.push(`  could not list the channel's tools: ${view.error}`);
  }
  return `${lines.join("\n")}\n`;
}

function wrap(words: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of words) {
    if (line && line.length + word.length + 2 > width) {
      lines.push(`${line},`);
      line = word;
    } else {
      line = line ? `${line}, ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}
