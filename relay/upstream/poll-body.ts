/**
 * Reading an upstream poll body so that each command is judged on exactly the text the
 * agent would receive. `JSON.parse` keeps the last of two equal keys and other decoders
 * the first, so a command with a duplicate key (`{"name":"echo","name":"print-env"}`
 * anywhere inside it) could be judged as one call and run as another: such a command is
 * refused, the others go on; so is one holding a number or string JSON cannot carry
 * exactly (`-1e999`, a lone surrogate: see shared/policy/json.ts). Commands are cut out of the body as raw text, so the ones
 * that pass reach the agent byte for byte.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import { GUARD, parseJsonStrict, strictJsonRule } from "../../shared/policy/index.ts";

/** One element of `commands`. */
export interface PolledEntry {
  /** The element's text as the upstream sent it. */
  raw: string;
  /** The parsed element (for a duplicated key, the value `JSON.parse` keeps). */
  value: unknown;
  /** Why the element cannot be judged reliably (duplicate keys, nesting too deep). */
  doubt?: { rule: string; reason: string };
}

/** A readable poll body's commands, or why it cannot be read. */
export type PollBody = { ok: true; entries: PolledEntry[] } | { ok: false; reason: string };

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * The raw text of every element of every top-level `commands` array, in order, and how
 * many `commands` keys the top-level object has. The input must be valid JSON.
 */
export function commandSlices(text: string): { slices: string[]; arrays: number } {
  const slices: string[] = [];
  let arrays = 0;
  let depth = 0;
  let key: string | undefined;
  let expectingKey = false;
  let inCommands = false;
  let start = -1;
  let stringStart = -1;
  let escaped = false;
  const open = (at: number) => {
    if (inCommands && depth === 2 && start < 0) start = at;
  };
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (stringStart >= 0) {
      if (escaped) escaped = false;
      else if (code === 0x5c) escaped = true;
      else if (code === 0x22) {
        if (depth === 1 && expectingKey) {
          key = JSON.parse(text.slice(stringStart, i + 1)) as string;
          expectingKey = false;
        }
        stringStart = -1;
      }
      continue;
    }
    if (code === 0x22) {
      open(i);
      stringStart = i;
    } else if (code === 0x7b || code === 0x5b) {
      open(i);
      if (depth === 1 && code === 0x5b && key === "commands") {
        inCommands = true;
        arrays++;
        start = -1;
      }
      depth++;
      if (depth === 1) expectingKey = code === 0x7b;
    } else if (code === 0x7d || code === 0x5d) {
      if (inCommands && depth === 2 && code === 0x5d) {
        if (start >= 0) slices.push(text.slice(start, i).trim());
        inCommands = false;
        start = -1;
      }
      depth--;
    } else if (code === 0x2c) {
      if (inCommands && depth === 2) {
        slices.push(text.slice(start, i).trim());
        start = -1;
      }
      if (depth === 1) expectingKey = true;
    } else if (!WHITESPACE.has(code) && code !== 0x3a) {
      open(i);
    }
  }
  return { slices, arrays };
}

/**
 * Parse a 200 poll body: `{"commands":[…]}`. Every element comes back with its raw text;
 * an element with a duplicate key (or the whole list, when the body names `commands`
 * twice) carries a doubt, so the caller refuses it instead of guessing which value counts.
 */
export function readPollBody(text: string): PollBody {
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `the body is not JSON (${error instanceof Error ? error.message : String(error)})` };
  }
  if (!isObject(whole) || !Array.isArray(whole.commands))
    return { ok: false, reason: "the body is not an object with a commands list" };
  const { slices, arrays } = commandSlices(text);
  if (parseJsonStrict(text).ok && slices.length === whole.commands.length) {
    return {
      ok: true,
      entries: slices.map((raw, index) => ({ raw, value: (whole as { commands: unknown[] }).commands[index] })),
    };
  }
  const repeated =
    arrays > 1
      ? {
          rule: GUARD.duplicateKeys,
          reason: "the poll body has more than one commands list; every command in it is refused",
        }
      : undefined;
  return {
    ok: true,
    entries: slices.map((raw) => {
      const strict = parseJsonStrict(raw);
      if (strict.ok) return { raw, value: strict.value, ...(repeated ? { doubt: repeated } : {}) };
      return {
        raw,
        value: JSON.parse(raw) as unknown,
        doubt: repeated ?? {
          rule: strictJsonRule(strict.problem),
          reason: `the command cannot be judged reliably: ${strict.reason}`,
        },
      };
    }),
  };
}

/** The poll body the agent receives: the upstream's text when nothing was taken out, else the kept commands' raw text. */
export function pollBodyOf(text: string, entries: readonly PolledEntry[], kept: readonly PolledEntry[]): string {
  return kept.length === entries.length ? text : `{"commands":[${kept.map((entry) => entry.raw).join(",")}]}`;
}
