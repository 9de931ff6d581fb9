/**
 * `airlock doctor [--explain] [--json] [--timeout 10s] [--offline] [--poll] [--probe-mcp] [run flags…]`:
 * check the configuration `airlock run` would use with the same flags, and everything it
 * depends on, without taking work: no poll unless `--poll`, no stdio server started unless
 * `--probe-mcp`. Output and `--json` follow tunnel-client's doctor (`CHECK … / RESULT /
 * FAILED_CHECKS / EXIT_CODE`, `{result, failed_checks, next, checks[{id,status,summary,why,next}]}`).
 * Exit 0 when nothing failed (warnings allowed), 2 when a check failed.
 */
import { flagUsage } from "../config/flags.ts";
import { formatReport, reportJson } from "../doctor/report.ts";
import { runDoctor } from "../doctor/index.ts";
import { parseDuration } from "../../shared/protocol/index.ts";
import { processIo, UsageError } from "./options.ts";
import type { CliIo } from "./options.ts";

const HELP = `usage: airlock doctor [--explain] [--json] [--timeout DURATION] [--offline] [run flags…]

Checks what \`airlock run\` with the same flags depends on, each PASS, WARN, FAIL or SKIP:
configuration source and schema, tunnel id, API key (WARN when written into a file), every
MCP backend (command found / URL reachable, MCP initialize, OAuth metadata), the health
listener address, the control plane (reachable, and the key proven by reading the tunnel's
metadata), and the local clock against the control plane's. doctor never takes work:

doctor's flags:
  --explain            say what each non-passing check means and how to fix it
  --json               print the report as JSON (tunnel-client's shape)
  --timeout DURATION   per network step (default 10s)
  --offline            skip the control-plane checks
  --poll               also poll once (limit=1, timeout_ms=1) to prove tunnel use permission;
                       on a live tunnel this can take (and answer with an error) one user's command
  --probe-mcp          start stdio MCP servers for an initialize handshake (default: only check
                       that the program exists, as tunnel-client)

Exit status: 0 no check failed, 2 a check failed (or a usage error).

run flags (choose the configuration exactly as for \`airlock run\`):
`;

interface DoctorFlags {
  explain: boolean;
  json: boolean;
  offline: boolean;
  poll: boolean;
  probeMcp: boolean;
  timeoutMs: number;
  help: boolean;
  rest: string[];
}

const SWITCHES: Readonly<Record<string, "explain" | "json" | "offline" | "poll" | "probeMcp">> = {
  "--explain": "explain",
  "--json": "json",
  "--offline": "offline",
  "--poll": "poll",
  "--probe-mcp": "probeMcp",
};

/** Take doctor's own flags out; everything else belongs to the configuration loader. */
function splitFlags(argv: readonly string[]): DoctorFlags {
  const flags: DoctorFlags = {
    explain: false,
    json: false,
    offline: false,
    poll: false,
    probeMcp: false,
    timeoutMs: 10_000,
    help: false,
    rest: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    const [name, inline] =
      word.startsWith("--") && word.includes("=")
        ? [word.slice(0, word.indexOf("=")), word.slice(word.indexOf("=") + 1)]
        : [word, undefined];
    const toggle = SWITCHES[name];
    if (toggle) {
      flags[toggle] = inline === undefined || /^(true|1)$/i.test(inline);
    } else if (name === "--timeout") {
      const value = inline ?? argv[++i];
      const ms = value === undefined ? undefined : parseDuration(value);
      if (ms === undefined || ms <= 0)
        throw new UsageError("airlock doctor: --timeout takes a duration such as 10s or 2500ms");
      flags.timeoutMs = ms;
    } else if (word === "-h" || word === "--help") {
      flags.help = true;
    } else {
      flags.rest.push(word);
    }
  }
  return flags;
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  let flags: DoctorFlags;
  try {
    flags = splitFlags(argv);
  } catch (error) {
    io.stderr(`${(error as Error).message}\n`);
    return 2;
  }
  if (flags.help) {
    io.stdout(`${HELP}${flagUsage()}\n`);
    return 0;
  }
  const report = await runDoctor({
    argv: flags.rest,
    env: io.env,
    cwd: io.cwd,
    timeoutMs: flags.timeoutMs,
    offline: flags.offline,
    poll: flags.poll,
    probeMcp: flags.probeMcp,
    ...(io.homeDir !== undefined ? { homeDir: io.homeDir } : {}),
  });
  io.stdout(flags.json ? `${JSON.stringify(reportJson(report), null, 2)}\n` : formatReport(report, flags.explain));
  return report.result === "ok" ? 0 : 2;
}
