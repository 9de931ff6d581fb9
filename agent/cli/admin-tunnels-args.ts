/**
 * The command line of `airlock admin tunnels …`, read the way tunnel-client's cobra/pflag
 * reads it: the admin flags may stand anywhere, a flag given twice keeps its last value,
 * `--organization-id`/`--workspace-id` repeat and split on commas, and every mistake is
 * reported with cobra's wording (exit status 1, as tunnel-client).
 */
import { parseArgv, type FlagKind } from "../config/argv.ts";

export const TUNNEL_ACTIONS = ["create", "get", "list", "update", "delete"] as const;
export type TunnelAction = (typeof TUNNEL_ACTIONS)[number];

/** `admin`'s persistent flags (tunnel-client's `RegisterAdminFlags`), plus Airlock's hub target and saved profiles. */
const ADMIN_FLAGS: Record<string, FlagKind> = {
  "ca-bundle": "string",
  "control-plane.base-url": "string",
  "control-plane.url-path": "string",
  "admin-key": "string",
  json: "bool",
  hub: "string",
  token: "string",
  "admin-profile": "string",
};

const SCOPE: Record<string, FlagKind> = { "organization-id": "string", "workspace-id": "string" };

/** Each action's own flags. */
export const ACTION_FLAGS: Readonly<Record<TunnelAction, Record<string, FlagKind>>> = {
  create: { name: "string", description: "string", ...SCOPE },
  get: {},
  list: { "tenant-id": "string", ...SCOPE },
  update: { name: "string", description: "string", ...SCOPE },
  delete: { confirm: "bool", ...SCOPE },
};

/** Positional arguments each action takes (cobra `ExactArgs(1)`); undefined: any number. */
const EXACT_ARGS: Readonly<Record<TunnelAction, number | undefined>> = {
  create: undefined,
  get: 1,
  list: undefined,
  update: 1,
  delete: 1,
};

/** Flags cobra checks with `MarkFlagRequired`. */
const REQUIRED: Readonly<Partial<Record<TunnelAction, string[]>>> = { create: ["description", "name"] };

/** A command line tunnel-client would refuse before running the command; the message is cobra's. */
export class TunnelsUsageError extends Error {
  override name = "TunnelsUsageError";
}

/** `admin <word>` where the word is not a command of `admin`: tunnel-client prints help and exits 0. */
export class UnknownAdminCommand extends TunnelsUsageError {
  override name = "UnknownAdminCommand";
}

/** What the command line says: the action (undefined: show help), its arguments and flags. */
export interface TunnelsArgs {
  action: TunnelAction | undefined;
  /** Set when a word after `tunnels` is not an action (tunnel-client then prints help, exit 0). */
  unknownAction?: string;
  args: string[];
  /** Last value of each string flag given (pflag: the last one wins). */
  strings: Map<string, string>;
  /** Every value of the repeatable id flags, split on commas, trimmed, empties dropped. */
  lists: Map<string, string[]>;
  bools: Map<string, boolean>;
  help: boolean;
}

const LIST_FLAGS = new Set(["organization-id", "workspace-id"]);

/** Go's `strconv.ParseBool`, with pflag's message for anything else. */
export function goBool(flag: string, raw: string): boolean {
  if (/^(1|t|T|TRUE|true|True)$/.test(raw)) return true;
  if (/^(0|f|F|FALSE|false|False)$/.test(raw)) return false;
  throw new TunnelsUsageError(
    `invalid argument "${raw}" for "--${flag}" flag: strconv.ParseBool: parsing "${raw}": invalid syntax`,
  );
}

function unknownFlag(written: string): TunnelsUsageError {
  if (!written.startsWith("--")) {
    const letter = written.slice(1, 2);
    return new TunnelsUsageError(`unknown shorthand flag: '${letter}' in ${written}`);
  }
  return new TunnelsUsageError(`unknown flag: ${written}`);
}

/** Read `argv` (the words after `admin`); throws {@link TunnelsUsageError} as cobra would. */
export function parseTunnelsArgs(argv: readonly string[]): TunnelsArgs {
  const all = new Map<string, FlagKind>(Object.entries(ADMIN_FLAGS));
  for (const flags of Object.values(ACTION_FLAGS))
    for (const [name, kind] of Object.entries(flags)) all.set(name, kind);
  const parsed = parseArgv(argv, all);
  const [area, word, ...args] = parsed.positionals;
  if (area !== "tunnels")
    throw new UnknownAdminCommand(`unknown command "${area ?? ""}" for "airlock admin" (it has: tunnels, grants)`);
  const action = (TUNNEL_ACTIONS as readonly string[]).includes(word ?? "") ? (word as TunnelAction) : undefined;
  const allowed = new Map<string, FlagKind>(
    Object.entries({ ...ADMIN_FLAGS, ...(action ? ACTION_FLAGS[action] : {}) }),
  );
  const first = parsed.unknown[0];
  if (first) throw unknownFlag(first.flag);
  for (const name of parsed.values.keys()) if (!allowed.has(name)) throw unknownFlag(`--${name}`);
  const missingValue = parsed.problems[0]?.match(/^--(\S+) needs a value/);
  if (missingValue) throw new TunnelsUsageError(`flag needs an argument: --${missingValue[1]}`);
  const result: TunnelsArgs = {
    action,
    ...(word !== undefined && action === undefined ? { unknownAction: word } : {}),
    args,
    strings: new Map(),
    lists: new Map(),
    bools: new Map(),
    help: parsed.help,
  };
  for (const [name, values] of parsed.values) {
    if (allowed.get(name) === "bool") result.bools.set(name, goBool(name, values.at(-1)!));
    else if (LIST_FLAGS.has(name))
      result.lists.set(
        name,
        values.flatMap((value) =>
          value
            .split(",")
            .map((id) => id.trim())
            .filter((id) => id !== ""),
        ),
      );
    else result.strings.set(name, values.at(-1)!);
  }
  return result;
}

/** cobra's checks between parsing and running: argument count, then required flags. */
export function checkTunnelsArgs(parsed: TunnelsArgs): void {
  const { action } = parsed;
  if (!action) return;
  const exact = EXACT_ARGS[action];
  if (exact !== undefined && parsed.args.length !== exact)
    throw new TunnelsUsageError(`accepts ${exact} arg(s), received ${parsed.args.length}`);
  const missing = (REQUIRED[action] ?? []).filter((name) => !parsed.strings.has(name));
  if (missing.length > 0) throw new TunnelsUsageError(`required flag(s) "${missing.join('", "')}" not set`);
}

/** Ids given more than once to one flag: tunnel-client refuses them. */
export function duplicateIds(flag: string, ids: readonly string[]): string | undefined {
  const seen = new Set<string>();
  const dups: string[] = [];
  for (const id of ids) {
    if (seen.has(id)) dups.push(id);
    seen.add(id);
  }
  return dups.length > 0 ? `duplicate ${flag} values: ${dups.join(", ")}` : undefined;
}
