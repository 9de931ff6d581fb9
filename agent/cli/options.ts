/**
 * What the operator subcommands (`init`, `doctor`, `health`, `profiles`) share: where their
 * output goes, and flag parsing with the same pflag rules and "did you mean" hints as `run`.
 * Output goes through {@link CliIo} so tests can call `main(argv, io)` in-process.
 */
import process from "node:process";
import { parseArgv } from "../config/argv.ts";
import { ConfigError } from "../config/errors.ts";
import { SampleError } from "../samples/catalog.ts";
import { parseDuration } from "../../shared/protocol/duration.ts";
import type { FlagKind } from "../config/argv.ts";

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Defaults to `$HOME`. */
  homeDir?: string;
}

/** The real terminal and environment. */
export function processIo(): CliIo {
  return {
    stdout: (text) => {
      process.stdout.write(text);
    },
    stderr: (text) => {
      process.stderr.write(text);
    },
    env: process.env,
    cwd: process.cwd(),
  };
}

export interface FlagSpec {
  kind: FlagKind;
  /** Placeholder shown in help (`NAME`, `URL`). */
  value?: string;
  help: string;
  /** A string flag that may be given several times; every value is in {@link ParsedFlags.lists}. */
  repeatable?: boolean;
}

/** A command line the command cannot accept; the message says what to write instead. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface ParsedFlags {
  strings: Map<string, string>;
  /** Every value of a repeatable flag, in order (its last one is in `strings` too). */
  lists: Map<string, string[]>;
  bools: Set<string>;
  positionals: string[];
  help: boolean;
}

/** Parse `argv` against `spec`; unknown flags, missing values and repeated flags are a {@link UsageError}. */
export function parseFlags(
  command: string,
  argv: readonly string[],
  spec: Readonly<Record<string, FlagSpec>>,
): ParsedFlags {
  const kinds = new Map(Object.entries(spec).map(([name, flag]) => [name, flag.kind] as const));
  const parsed = parseArgv(argv, kinds);
  const problems = [
    ...parsed.unknown.map(
      ({ flag, suggestion }) => `unknown flag ${flag}${suggestion ? `; did you mean ${suggestion}?` : ""}`,
    ),
    ...parsed.problems,
  ];
  const strings = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const bools = new Set<string>();
  for (const [name, values] of parsed.values) {
    if (spec[name]?.repeatable) lists.set(name, values);
    else if (values.length > 1 && spec[name]?.kind === "string")
      problems.push(`--${name} is given ${values.length} times; give it once`);
    const last = values.at(-1)!;
    if (spec[name]?.kind === "bool") {
      if (!/^(true|false|1|0)$/i.test(last)) problems.push(`--${name} is a switch: write --${name} or --${name}=false`);
      else if (/^(true|1)$/i.test(last)) bools.add(name);
    } else strings.set(name, last);
  }
  if (problems.length)
    throw new UsageError(
      `airlock ${command}: ${problems.join("; ")}\nRun \`airlock ${command} --help\` for its flags.`,
    );
  return { strings, lists, bools, positionals: parsed.positionals, help: parsed.help };
}

/** Help text: a synopsis, a description, then one line per flag. */
export function helpText(synopsis: string, description: string, spec: Readonly<Record<string, FlagSpec>>): string {
  const rows = Object.entries(spec).map(
    ([name, flag]) => [`--${name}${flag.value ? ` ${flag.value}` : ""}`, flag.help] as const,
  );
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return `${[
    `usage: ${synopsis}`,
    "",
    description,
    "",
    "flags:",
    ...rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}`),
  ].join("\n")}\n`;
}

/**
 * Run a subcommand body; an error the operator fixes by changing the command line or the
 * configuration becomes one line on stderr and exit code 2. Anything else propagates.
 */
export async function withUsageErrors(
  command: string,
  io: CliIo,
  body: () => Promise<number>,
  usageExit = 2,
): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError || error instanceof SampleError || error instanceof ConfigError) {
      const prefix = `airlock ${command}: `;
      io.stderr(`${prefix}${error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message}\n`);
      return usageExit;
    }
    throw error;
  }
}

/** A subcommand: its flags and help, and the body that runs once the flags parsed. */
export interface CommandSpec {
  name: string;
  synopsis: string;
  description: string;
  flags: Readonly<Record<string, FlagSpec>>;
  run(flags: ParsedFlags, io: CliIo): Promise<number>;
  /** Exit code of a usage error (default 2; `health` uses tunnel-client's 1, as its 2 means "not ready"). */
  usageExit?: number;
}

/** The subcommand's `main`: parse, answer `--help`, run; usage and config errors exit 2. */
export function defineCommand(spec: CommandSpec): (argv: string[], io?: CliIo) => Promise<number> {
  return (argv, io = processIo()) =>
    withUsageErrors(
      spec.name,
      io,
      async () => {
        const flags = parseFlags(spec.name, argv, spec.flags);
        if (flags.help) {
          io.stdout(helpText(spec.synopsis, spec.description, spec.flags));
          return 0;
        }
        return spec.run(flags, io);
      },
      spec.usageExit,
    );
}

/** `--timeout DURATION` (Go-style, > 0), or `fallbackMs` when the flag is absent. */
export function timeoutFlag(flags: ParsedFlags, fallbackMs: number): number {
  const value = flags.strings.get("timeout");
  if (value === undefined) return fallbackMs;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw new UsageError(`--timeout takes a duration such as ${fallbackMs / 1000}s`);
  return ms;
}
