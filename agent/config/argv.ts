/**
 * Command-line tokenising with the rules of Go's pflag, which tunnel-client uses:
 * `--name value`, `--name=value`, bare `--flag` for booleans (`--flag=false` to unset),
 * repeatable flags keep every value, `--` ends flags. Meaning comes from the settings
 * table; this file only splits words.
 */
import { closestMatch } from "../../shared/config/schema.ts";

export type FlagKind = "string" | "bool";

export interface ParsedArgv {
  /** Flag name (without dashes) → every value given, in order. */
  values: Map<string, string[]>;
  /** Unknown flags as written (`--control-plane.tunel-id`), each with a suggestion when one is close. */
  unknown: Array<{ flag: string; suggestion?: string }>;
  /** Flags given without their value, and similar mistakes, as sentences. */
  problems: string[];
  positionals: string[];
  help: boolean;
}

export function parseArgv(argv: readonly string[], flags: ReadonlyMap<string, FlagKind>): ParsedArgv {
  const parsed: ParsedArgv = { values: new Map(), unknown: [], problems: [], positionals: [], help: false };
  const add = (name: string, value: string) => parsed.values.set(name, [...(parsed.values.get(name) ?? []), value]);
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") {
      parsed.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (word === "-h" || word === "--help") {
      parsed.help = true;
      continue;
    }
    if (!word.startsWith("-") || word === "-") {
      parsed.positionals.push(word);
      continue;
    }
    const body = word.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq === -1 ? body : body.slice(0, eq);
    const kind = word.startsWith("--") ? flags.get(name) : undefined;
    if (kind === undefined) {
      const written = eq === -1 ? word : word.slice(0, word.indexOf("="));
      const suggestion = flags.has(name) ? name : closestMatch(name, flags.keys());
      parsed.unknown.push(suggestion ? { flag: written, suggestion: `--${suggestion}` } : { flag: written });
      continue;
    }
    if (eq !== -1) {
      add(name, body.slice(eq + 1));
    } else if (kind === "bool") {
      add(name, "true");
    } else {
      const next = argv[i + 1];
      // pflag would swallow the next flag as the value; a forgotten value is the likelier mistake.
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        parsed.problems.push(`--${name} needs a value: --${name} VALUE or --${name}=VALUE`);
        continue;
      }
      add(name, next);
      i++;
    }
  }
  return parsed;
}
