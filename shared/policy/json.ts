/**
 * Strict JSON for bodies a policy judges: one rule for every trust boundary (the hub's
 * MCP ingress, the relay's polls and response posts, audit exports). A body is refused
 * when two decoders could read it differently, because the policy would then judge one
 * message and the backend run another:
 * - duplicate keys: `JSON.parse` keeps the last of two equal keys while other decoders
 *   keep the first (or merge them), so `{"name":"echo","name":"delete_all"}` could be
 *   judged as one tool and run as another;
 * - numbers a double cannot hold exactly: `1e999` parses to Infinity (which satisfies
 *   `maximum: 3` as -Infinity and is re-sent as `null`), and `9007199254740993` to
 *   …992 while Python or Go's json.Number keep it exact. Integer literals must survive
 *   the round trip through a double unchanged; fractions and exponents need only be
 *   finite (every binary decoder rounds them alike);
 * - strings or keys with a lone UTF-16 surrogate (`"\ud800"`): UTF-8 cannot carry one,
 *   so decoders replace or reject it and digests would hash different text;
 * - nesting deeper than a bound (MCP messages are shallow; deep input only costs stack).
 */
import { jsonValueProblem, memberPath } from "../audit/digest.ts";

/** Deepest nesting accepted by default; MCP messages are shallow and deep input only costs stack. */
export const MAX_JSON_DEPTH = 100;

/** The `rule` values of the structural guards every evaluator applies before any rule. */
export const GUARD = {
  malformed: "guard:malformed",
  keyCase: "guard:key-case",
  duplicateKeys: "guard:duplicate-keys",
  inexactJson: "guard:inexact-json",
  unjudgeable: "guard:unjudgeable",
} as const;

/** Why strict parsing refused a text: each maps to one guard rule ({@link strictJsonRule}). */
export type StrictJsonProblem = "invalid" | "duplicate-key" | "too-deep" | "inexact";

export type StrictJsonResult =
  | { ok: true; value: unknown }
  | {
      ok: false;
      problem: StrictJsonProblem;
      reason: string /** Where, for all but `invalid`: `$.params`. */;
      path?: string;
    };

interface Frame {
  /** Keys seen so far in an object; `null` for an array. */
  keys: Set<string> | null;
  expectingKey: boolean;
  /** The member being read: a key in an object, an index in an array. */
  member: string | number;
}

function pathOf(stack: Frame[]): string {
  return stack.reduce((path, frame) => memberPath(path, frame.member), "$");
}

/** Index of the quote that closes the string opening at `start`. Input is already valid JSON. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  for (;;) {
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === 92) slashes++;
    if (slashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** Why the number literal at `start` has no exact double, or `undefined`; `end` is where it stops. */
function numberProblem(text: string, start: number): { end: number; problem?: string } {
  NUMBER.lastIndex = start;
  const match = NUMBER.exec(text);
  const literal = match?.[0] ?? text.charAt(start);
  const end = start + literal.length;
  const value = Number(literal);
  if (!Number.isFinite(value))
    return { end, problem: `the number ${literal.slice(0, 40)} is too large for a double (it would read as ${value})` };
  const integer = match !== null && match[1] === undefined && match[2] === undefined;
  if (integer && !Number.isSafeInteger(value) && BigInt(literal) !== BigInt(value)) {
    return {
      end,
      problem: `the integer ${literal.slice(0, 40)} has no exact double (it would read as ${BigInt(value)})`,
    };
  }
  return { end };
}

const fail = (problem: StrictJsonProblem, reason: string, path?: string): StrictJsonResult => ({
  ok: false,
  problem,
  reason: path === undefined ? reason : `${reason} at ${path}`,
  ...(path === undefined ? {} : { path }),
});

/**
 * Parse JSON under the rule above: duplicate object keys at any depth (keys compare
 * after unescaping, so `"a"` and `"\u0061"` are the same key), nesting deeper than
 * `maxDepth`, inexact numbers and lone surrogates are refused. The reason names the
 * JSON path, e.g. `duplicate key "name" at $.params`.
 */
export function parseJsonStrict(text: string, options: { maxDepth?: number } = {}): StrictJsonResult {
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return fail("invalid", `invalid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (code === 34 /* " */) {
      const end = stringEnd(text, i);
      if (top?.keys && top.expectingKey) {
        const raw = text.slice(i, end + 1);
        const key = raw.includes("\\") ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (top.keys.has(key))
          return fail("duplicate-key", `duplicate key ${JSON.stringify(key)}`, pathOf(stack.slice(0, -1)));
        top.keys.add(key);
        top.member = key;
        top.expectingKey = false;
      }
      i = end;
    } else if (code === 45 /* - */ || (code >= 48 && code <= 57) /* 0-9 */) {
      const number = numberProblem(text, i);
      if (number.problem) return fail("inexact", number.problem, pathOf(stack));
      i = number.end - 1;
    } else if (code === 123 /* { */ || code === 91 /* [ */) {
      if (stack.length >= maxDepth)
        return fail("too-deep", `JSON nested deeper than ${maxDepth} levels`, pathOf(stack));
      stack.push(
        code === 123
          ? { keys: new Set(), expectingKey: true, member: "" }
          : { keys: null, expectingKey: false, member: 0 },
      );
    } else if (code === 125 /* } */ || code === 93 /* ] */) {
      stack.pop();
    } else if (code === 44 /* , */ && top) {
      if (top.keys) top.expectingKey = true;
      else top.member = (top.member as number) + 1;
    }
  }
  const inexact = jsonValueProblem(value);
  if (inexact) return fail("inexact", inexact.reason, inexact.path);
  return { ok: true, value };
}

/** The guard rule that refuses a text {@link parseJsonStrict} rejected. */
export function strictJsonRule(problem: StrictJsonProblem): string {
  if (problem === "duplicate-key") return GUARD.duplicateKeys;
  if (problem === "inexact") return GUARD.inexactJson;
  return GUARD.malformed;
}
