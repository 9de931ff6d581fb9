/**
 * `airlock dev proxy`: tunnel-client's local control plane plus an in-process client, with
 * its flags. The control plane is Airlock's hub (agent/hub-local/dev-proxy.ts); the agent takes
 * `--mcp-server-url`, `--mcp-command` and the profile flags as `airlock run` would. Prints
 * `MCP URL: …` (or the connection JSON) once the agent polls, and serves until SIGINT/SIGTERM
 * or `--duration`. Loaded only for `dev proxy`, so `dev mcp-stub` never loads Miniflare (and the
 * single-file executables, which cannot carry workerd, swap this module out).
 */
import { writePrivateFile } from "../runtime/private-file.ts";
import process from "node:process";
import { parseDuration } from "../../shared/protocol/duration.ts";
import { createLogger } from "../../shared/log.ts";
import { parseListenAddr } from "../runtime/serve.ts";
import { DEV_PROXY_TUNNEL_ID, startDevProxy, type DevProxy } from "../hub-local/dev-proxy.ts";
import { untilSignal } from "./hub.ts";
import { defineCommand, UsageError } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

const FLAGS: Record<string, FlagSpec> = {
  listen: { kind: "string", value: "ADDR", help: "address of the local MCP ingress (default 127.0.0.1:0)" },
  "listen-unix-socket": { kind: "string", value: "PATH", help: "not supported: the ingress listens on TCP" },
  "tunnel-id": {
    kind: "string",
    value: "ID",
    help: `tunnel id the local proxy serves (default ${DEV_PROXY_TUNNEL_ID})`,
  },
  "mcp-server-url": {
    kind: "string",
    value: "URL",
    repeatable: true,
    help: "MCP server URL; repeat with url=…,channel=… for more channels",
  },
  "mcp-command": {
    kind: "string",
    value: "CMD",
    repeatable: true,
    help: "stdio MCP server command; repeat with command=…,channel=… for more channels",
  },
  profile: { kind: "string", value: "NAME", help: "profile to load for the agent" },
  "profile-file": { kind: "string", value: "FILE", help: "profile YAML file for the agent" },
  "profile-dir": { kind: "string", value: "DIR", help: "directory holding profiles" },
  "health-listen-addr": {
    kind: "string",
    value: "ADDR",
    help: "the agent's health/admin listener (default 127.0.0.1:0: Airlock always serves one)",
  },
  "health-url-file": { kind: "string", value: "FILE", help: "write the agent's health base URL here" },
  "url-file": { kind: "string", value: "FILE", help: "write the connection JSON here once ready" },
  backend: { kind: "string", value: "NAME", help: "auto (the default; Airlock's is the hub in workerd)" },
  "engine-queue-backend": { kind: "string", value: "NAME", help: "inmem (the default; the only one)" },
  "engine-redis-url": { kind: "string", value: "URL", help: "not supported: no Redis queue" },
  "print-json": { kind: "bool", help: "print the connection JSON instead of `MCP URL: …`" },
  duration: { kind: "string", value: "DURATION", help: "run this long, then exit 0 (default: until interrupted)" },
  "readiness-timeout": {
    kind: "string",
    value: "DURATION",
    help: "how long to wait for the agent's first poll (default 10s)",
  },
  "response-timeout": {
    kind: "string",
    value: "DURATION",
    help: "how long the ingress waits for an answer (default 30s)",
  },
  "client-last-seen-timeout": {
    kind: "string",
    value: "DURATION",
    help: "how recently the agent must have polled to count as connected (default 20s)",
  },
};

export const main = defineCommand({
  name: "dev proxy",
  synopsis: "airlock dev proxy [--listen ADDR] [--mcp-server-url URL]... [--mcp-command CMD]... [--profile NAME] [...]",
  description:
    "tunnel-client's local proxy: a local control plane with MCP ingress (Airlock's hub, in workerd) and an agent in " +
    "this process, configured like `airlock run`. The MCP URL needs no client token; Authorization goes to the MCP " +
    "server. For local integration tests.",
  flags: FLAGS,
  // tunnel-client (cobra) exits 1 on any error.
  usageExit: 1,
  run: devProxy,
});

function duration(flags: ParsedFlags, name: string, fallbackMs: number): number {
  const value = flags.strings.get(name);
  if (value === undefined) return fallbackMs;
  const ms = parseDuration(value);
  if (ms === undefined || ms < 0) throw new UsageError(`--${name} takes a duration such as 30s`);
  return ms;
}

/** Flags that would need another control-plane engine than the hub are refused, naming why. */
function refuseOtherEngines(flags: ParsedFlags): void {
  if (flags.strings.has("listen-unix-socket"))
    throw new UsageError("--listen-unix-socket is not supported: the ingress listens on TCP; use --listen 127.0.0.1:0");
  const backend = flags.strings.get("backend") ?? "auto";
  if (backend !== "auto")
    throw new UsageError(
      `--backend ${backend} is not available: Airlock's local control plane is the hub Worker in workerd; leave --backend auto`,
    );
  const queue = flags.strings.get("engine-queue-backend") ?? "inmem";
  if (queue !== "inmem" || flags.strings.has("engine-redis-url"))
    throw new UsageError(
      "the hub keeps its queue in a Durable Object in memory; --engine-queue-backend redis and --engine-redis-url are not supported",
    );
}

/** `run` flags for the agent, from tunnel-client's dev-proxy spelling. */
function agentArgv(flags: ParsedFlags): string[] {
  const argv: string[] = [];
  for (const url of flags.lists.get("mcp-server-url") ?? []) argv.push("--mcp.server-url", url);
  for (const command of flags.lists.get("mcp-command") ?? []) argv.push("--mcp.command", command);
  for (const name of ["profile", "profile-file", "profile-dir"]) {
    const value = flags.strings.get(name);
    if (value !== undefined) argv.push(`--${name}`, value);
  }
  argv.push("--health.listen-addr", flags.strings.get("health-listen-addr") || "127.0.0.1:0");
  const urlFile = flags.strings.get("health-url-file");
  if (urlFile) argv.push("--health.url-file", urlFile);
  return argv;
}

async function devProxy(flags: ParsedFlags, io: CliIo): Promise<number> {
  if (flags.positionals.length) throw new UsageError(`unexpected arguments: ${flags.positionals.join(" ")}`);
  refuseOtherEngines(flags);
  let listen: { hostname: string; port: number };
  try {
    listen = parseListenAddr(flags.strings.get("listen") ?? "127.0.0.1:0");
  } catch (error) {
    throw new UsageError(`--listen: ${(error as Error).message}`);
  }
  const runFor = duration(flags, "duration", 0);
  let proxy: DevProxy;
  try {
    proxy = await startDevProxy({
      // An empty host ("all interfaces") is the hub's IPv4 wildcard, as `airlock hub --listen :PORT`.
      host: listen.hostname || "0.0.0.0",
      port: listen.port,
      tunnelId: flags.strings.get("tunnel-id") ?? DEV_PROXY_TUNNEL_ID,
      agentArgv: agentArgv(flags),
      readinessTimeoutMs: duration(flags, "readiness-timeout", 10_000),
      settings: {
        responseTimeoutMs: duration(flags, "response-timeout", 30_000),
        livenessMs: duration(flags, "client-last-seen-timeout", 20_000),
      },
      // The agent's lines go to stderr; stdout carries only the URL or the JSON a script reads.
      log: ({ level, format }) => createLogger({ level, format, sink: (line) => process.stderr.write(`${line}\n`) }),
    });
  } catch (error) {
    io.stderr(`airlock dev proxy: ${(error as Error).message}\n`);
    return 1;
  }
  // Listen for signals before announcing readiness: a script may send one as soon as it reads the URL.
  const stopped = untilSignal();
  const json = `${JSON.stringify(proxy.info, null, 2)}\n`;
  const urlFile = flags.strings.get("url-file");
  if (urlFile) await writePrivateFile(urlFile, json);
  io.stdout(flags.bools.has("print-json") ? json : `MCP URL: ${proxy.info.mcp_url}\n`);
  await (runFor > 0 ? Promise.race([stopped, new Promise((r) => setTimeout(r, runFor))]) : stopped);
  await proxy.close();
  return 0;
}
