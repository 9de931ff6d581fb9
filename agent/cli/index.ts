/**
 * Subcommand dispatch. Exit codes follow tunnel-client where it has the command (no
 * arguments 0, unknown command 1, `run` config error 1, `health` not ready 2, `doctor`
 * failed check 2); Airlock's own commands use 1 for a runtime failure, 2 for a usage error.
 * A subcommand module exports `main(argv): Promise<number>` and is imported only when used,
 * so `airlock health` never loads the MCP SDK and `airlock run` never loads Miniflare.
 */
import process from "node:process";
import { VERSION } from "../version.ts";
import { helpTopic, HELP_TOPICS } from "./help-topics.ts";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;

type SubcommandModule = { main(argv: string[]): Promise<number> };

/** Every subcommand: one line each, loaded lazily. Add new commands here. */
const SUBCOMMANDS: Record<string, { summary: string; load: () => Promise<SubcommandModule> }> = {
  run: {
    summary: "run the tunnel agent (tunnel-client compatible flags, env and profiles)",
    load: () => import("./run.ts"),
  },
  init: {
    summary: "write a profile from a built-in sample (airlock profiles samples list)",
    load: () => import("./init.ts"),
  },
  doctor: {
    summary: "check a configuration and everything it depends on (--explain says how to fix)",
    load: () => import("./doctor.ts"),
  },
  routes: {
    summary: "print the routing table: channel → backends → transport → exposed tools (--json, --offline)",
    load: () => import("./routes.ts"),
  },
  health: { summary: "probe a running agent's /readyz (exit 0 only when ready)", load: () => import("./health.ts") },
  profiles: {
    summary: "list profiles and built-in samples (profiles list | samples list | samples show NAME)",
    load: () => import("./profiles.ts"),
  },
  hub: {
    summary: "run the hub locally (workerd): a control plane for agents and an MCP URL for clients",
    load: () => import("./hub.ts"),
  },
  demo: {
    summary: "the whole loop on this machine: hub, agent, server-everything and an MCP client (--keep)",
    load: () => import("./demo.ts"),
  },
  audit: {
    summary: "verify an audit log export (audit verify <url|file> [--token env:NAME] [--after SEQ])",
    load: () => import("./audit.ts"),
  },
  admin: {
    summary:
      "admin tunnels create|get|list|update|delete (OpenAI's admin API, or a hub with --hub URL); admin grants list|revoke (hub OAuth grants)",
    load: () => import("./admin.ts"),
  },
  "admin-profiles": {
    summary: "saved admin profiles, shared with tunnel-client (admin-profiles list | set | activate | delete)",
    load: () => import("./admin-profiles.ts"),
  },
  dev: {
    summary:
      "developer tools: dev mcp-stub (a built-in MCP server), dev proxy (local control plane + agent: an MCP URL)",
    load: () => import("./dev.ts"),
  },
  runtimes: {
    summary: "supervised agents per alias: runtimes connect|status|stop|rm|list|cleanup|create (tunnel-client's)",
    load: () => import("./runtimes.ts"),
  },
  cloudflared: {
    summary: "tunnel-client's companion commands: version (Airlock runs none), config --token-file (standalone YAML)",
    load: () => import("./cloudflared.ts"),
  },
};

/** tunnel-client commands Airlock does not have, and what to do instead. */
const NOT_HERE: Readonly<Record<string, string>> = {
  codex: "tunnel-client's Codex integration is out of scope for Airlock (see `airlock help plugin`)",
  plugin: "tunnel-client's Codex plugin is out of scope for Airlock (see `airlock help plugin`)",
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
    "",
    "help topics (tunnel-client's):",
    ...Object.keys(HELP_TOPICS)
      .sort()
      .map((topic) => `  airlock help ${topic}`),
    "",
    "Not in Airlock: tunnel-client's Codex integration (codex, plugin) is out of scope (`airlock help plugin`).",
  ].join("\n");
}

export async function runCli(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h") {
    process.stdout.write(`${usage()}\n`);
    return EXIT_OK;
  }
  if (first === "help") return help(rest);
  if (first === "version" || first === "--version") {
    process.stdout.write(`airlock ${VERSION}\n`);
    return EXIT_OK;
  }
  // tunnel-client is invoked with flags only; treat that as `run`.
  const [name, args] = first.startsWith("-") ? ["run", argv] : [first, rest];
  const command = SUBCOMMANDS[name];
  if (!command) {
    const instead = NOT_HERE[name];
    process.stderr.write(
      instead ? `airlock: ${name}: ${instead}\n` : `airlock: unknown command "${name}"\n\n${usage()}\n`,
    );
    return EXIT_FAILURE;
  }
  const module = await command.load();
  return module.main(args);
}

/** `help`, `help <topic>` or `help <command>` (that command's --help), as tunnel-client. */
async function help(args: string[]): Promise<number> {
  const [topic] = args;
  if (topic === undefined) {
    process.stdout.write(`${usage()}\n`);
    return EXIT_OK;
  }
  // Topics first, then commands, as tunnel-client (`help doctor` is the topic).
  const found = helpTopic(topic);
  if ("text" in found) {
    process.stdout.write(found.text);
    return EXIT_OK;
  }
  const command = SUBCOMMANDS[topic];
  if (command) return (await command.load()).main(["--help"]);
  process.stderr.write(`airlock help: ${NOT_HERE[topic] ?? found.error}\n`);
  return EXIT_FAILURE;
}
