/**
 * `airlock dev mcp-stub [--listen-addr A] [--server-name N] [--server-version V]`:
 * tunnel-client's demo MCP server, for trying a tunnel before wiring a real one.
 * Prints the MCP URL and serves until SIGINT/SIGTERM. `airlock dev proxy` (a local control
 * plane and an agent in one process) has its own flags and module: ./dev-proxy.ts.
 */
import process from "node:process";
import { defineCommand, processIo, UsageError } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";
import { MCP_STUB_DEFAULTS, startMcpStub, type McpStub } from "../demo/mcp-stub.ts";

const FLAGS: Record<string, FlagSpec> = {
  "listen-addr": {
    kind: "string",
    value: "ADDR",
    help: `listen address for the MCP stub (default ${MCP_STUB_DEFAULTS.listenAddr})`,
  },
  "server-name": {
    kind: "string",
    value: "NAME",
    help: `server name advertised during initialize (default ${MCP_STUB_DEFAULTS.serverName})`,
  },
  "server-version": {
    kind: "string",
    value: "VERSION",
    help: `server version advertised during initialize (default ${MCP_STUB_DEFAULTS.serverVersion})`,
  },
};

const mcpStub = defineCommand({
  name: "dev",
  synopsis:
    "airlock dev mcp-stub [--listen-addr ADDR] [--server-name NAME] [--server-version VERSION] | airlock dev proxy [flags]",
  description:
    "Developer tools. `dev mcp-stub` serves a demo MCP server (tools server_info, echo, uppercase) at <addr>/mcp until interrupted; point --mcp.server-url at it. `dev proxy` runs a local control plane with an MCP URL and an agent in one process (`airlock dev proxy --help`).",
  flags: FLAGS,
  run: dev,
});

/** `dev proxy` has flags of its own, so it is dispatched before `dev`'s flags are parsed. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  if (argv[0] !== "proxy") return mcpStub(argv, io);
  return (await import("./dev-proxy.ts")).main(argv.slice(1), io);
}

async function dev(flags: ParsedFlags, io: CliIo): Promise<number> {
  const [sub, ...rest] = flags.positionals;
  if (sub !== "mcp-stub") {
    throw new UsageError(
      `unknown dev command ${sub === undefined ? "(none)" : `"${sub}"`}; use \`airlock dev mcp-stub\` or \`airlock dev proxy\``,
    );
  }
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
  let stub: McpStub;
  try {
    stub = await startMcpStub({
      listenAddr: flags.strings.get("listen-addr"),
      serverName: flags.strings.get("server-name"),
      serverVersion: flags.strings.get("server-version"),
    });
  } catch (error) {
    io.stderr(`airlock dev mcp-stub: cannot listen: ${(error as Error).message}\n`);
    return 1;
  }
  // Listen for signals before announcing: a script may send one as soon as it reads the URL.
  const stopped = new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => resolve());
  });
  io.stdout(`MCP stub listening: ${stub.url}\n`);
  await stopped;
  await stub.close();
  return 0;
}
