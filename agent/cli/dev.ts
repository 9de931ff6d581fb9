/**
 * `airlock dev mcp-stub [--listen-addr A] [--server-name N] [--server-version V]`:
 * tunnel-client's demo MCP server, for trying a tunnel before wiring a real one.
 * Prints the MCP URL and serves until SIGINT/SIGTERM. (`dev proxy` is not implemented:
 * `airlock hub` is Airlock's local control plane.)
 */
import process from "node:process";
import { defineCommand, UsageError } from "./options.ts";
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

export const main = defineCommand({
  name: "dev",
  synopsis: "airlock dev mcp-stub [--listen-addr ADDR] [--server-name NAME] [--server-version VERSION]",
  description:
    "Developer tools. `dev mcp-stub` serves a demo MCP server (tools server_info, echo, uppercase) at <addr>/mcp until interrupted; point --mcp.server-url at it. `dev proxy` is not implemented: use `airlock hub`.",
  flags: FLAGS,
  run: dev,
});

async function dev(flags: ParsedFlags, io: CliIo): Promise<number> {
  const [sub, ...rest] = flags.positionals;
  if (sub !== "mcp-stub") {
    throw new UsageError(
      sub === "proxy"
        ? "`dev proxy` is not implemented in Airlock; `airlock hub` runs a local control plane"
        : `unknown dev command ${sub === undefined ? "(none)" : `"${sub}"`}; use \`airlock dev mcp-stub\``,
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
  io.stdout(`MCP stub listening: ${stub.url}\n`);
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => resolve());
  });
  await stub.close();
  return 0;
}
