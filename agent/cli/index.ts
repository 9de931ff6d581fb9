/**
 * Subcommand dispatch. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
 * A subcommand module exports `main(argv): Promise<number>` and is imported only when used,
 * so `airlock health` never loads the MCP SDK and `airlock run` never loads Miniflare.
 */
import process from "node:process";
import { VERSION } from "../version.ts";
import { EXIT_USAGE } from "../config/errors.ts";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;

type SubcommandModule = { main(argv: string[]): Promise<number> };

/** Every subcommand: one line each, loaded lazily. Add new commands here. */
const SUBCOMMANDS: Record<string, { summary: string; load: () => Promise<SubcommandModule> }> = {
  run: { summary: "run the tunnel agent (tunnel-client compatible flags, env and profiles)", load: () => import("./run.ts") },
  init: { summary: "write a profile from a built-in sample (airlock profiles samples list)", load: () => import("./init.ts") },
  doctor: { summary: "check a configuration and everything it depends on (--explain says how to fix)", load: () => import("./doctor.ts") },
  routes: { summary: "print the routing table: channel → backends → transport → exposed tools (--json, --offline)", load: () => import("./routes.ts") },
  health: { summary: "probe a running agent's /readyz (exit 0 only when ready)", load: () => import("./health.ts") },
  profiles: { summary: "list profiles and built-in samples (profiles list | samples list | samples show NAME)", load: () => import("./profiles.ts") },
  hub: { summary: "run the hub locally (workerd): a control plane for agents and an MCP URL for clients", load: () => import("./hub.ts") },
  demo: { summary: "the whole loop on this machine: hub, agent, server-everything and an MCP client (--keep)", load: () => import("./demo.ts") },
  audit: { summary: "verify an audit log export (audit verify <url|file> [--token env:NAME] [--after SEQ])", load: () => import("./audit.ts") },
};

/** The top-level help text, listing every subcommand. */
export function usage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((name) => name.length));
  const lines = Object.entries(SUBCOMMANDS).map(([name, { summary }]) => `  ${name.padEnd(width)}  ${summary}`);
  return [
    `airlock ${VERSION} — outbound-only tunnels from AI products to private MCP servers`,
    "",
    "usage: airlock <command> [flags]",
    "",
    "commands:",
    ...lines,
    "",
    "Run `airlock <command> --help` for a command's flags. With no command, `run` is assumed when",
    "flags are given (so tunnel-client style invocations keep working).",
  ].join("\n");
}

export async function runCli(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") {
    process.stdout.write(usage() + "\n");
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === "version" || first === "--version") {
    process.stdout.write(`airlock ${VERSION}\n`);
    return EXIT_OK;
  }
  // tunnel-client is invoked with flags only; treat that as `run`.
  const [name, args] = first.startsWith("-") ? ["run", argv] : [first, rest];
  const command = SUBCOMMANDS[name];
  if (!command) {
    process.stderr.write(`airlock: unknown command "${name}"\n\n${usage()}\n`);
    return EXIT_USAGE;
  }
  const module = await command.load();
  return module.main(args);
}
