/**
 * Regular expressions written in a policy (argument `pattern`, `responses.deny_patterns`).
 * JavaScript regexes backtrack, so a pattern like `(a+)+$` can stall a Worker on a
 * hostile string. Patterns are therefore short, compiled once at parse time with the
 * `u` flag (strict syntax), and refused when they nest unbounded quantifiers or use
 * backreferences, the shapes behind catastrophic backtracking. Callers also bound
 * the text they scan. This is a guard, not a proof: keep patterns simple.
 */

/** Longest pattern a policy may hold. */
export const MAX_PATTERN_LENGTH = 512;

/** A compiled policy pattern. `(?i)` at the start makes it case-insensitive. */
export interface PolicyPattern {
  readonly source: string;
  readonly regex: RegExp;
}

/** Positions and characters of a regex source outside escapes and character classes. */
function* syntax(body: string): Generator<[number, string]> {
  let inClass = false;
  for (let i = 0; i < body.length; i++) {
    const char = body[i] as string;
    if (char === "\\") i++;
    else if (inClass) inClass = char !== "]";
    else if (char === "[") inClass = true;
    else yield [i, char];
  }
}

const OPEN_QUANTIFIER = /^\{\d*,\d*\}/;
const BOUNDED_QUANTIFIER = /^\{\d+,\d+\}/;

/** Does the group body hold a `*`, `+` or open-ended `{n,}`? */
function hasUnboundedQuantifier(body: string): boolean {
  for (const [i, char] of syntax(body)) {
    if (char === "*" || char === "+") return true;
    if (char === "{" && OPEN_QUANTIFIER.test(body.slice(i)) && !BOUNDED_QUANTIFIER.test(body.slice(i))) return true;
  }
  return false;
}

/** Why `source` is refused as a policy pattern, or `undefined` when it compiles and looks safe. */
export function patternProblem(source: string): string | undefined {
  if (source.length === 0) return "a pattern cannot be empty";
  if (source.length > MAX_PATTERN_LENGTH) return `a pattern is limited to ${MAX_PATTERN_LENGTH} characters`;
  const body = source.startsWith("(?i)") ? source.slice(4) : source;
  try {
    new RegExp(body, "u");
  } catch (error) {
    return `not a valid regular expression: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (/\\[1-9]|\\k</.test(body)) return "backreferences are not allowed (they make matching slow on hostile text)";
  const opens: number[] = [];
  for (const [i, char] of syntax(body)) {
    if (char === "(") opens.push(i);
    if (char !== ")") continue;
    const open = opens.pop() ?? 0;
    if (/^(\*|\+|\{\d*,\d*\})/.test(body.slice(i + 1)) && hasUnboundedQuantifier(body.slice(open + 1, i))) {
      return `the group "${body.slice(open, i + 1)}" repeats a repetition (nested quantifiers backtrack catastrophically); rewrite it without the outer quantifier`;
    }
  }
  return undefined;
}

/** Compile a pattern that passed {@link patternProblem}. */
export function compilePattern(source: string): PolicyPattern {
  const insensitive = source.startsWith("(?i)");
  return { source, regex: new RegExp(insensitive ? source.slice(4) : source, insensitive ? "iu" : "u") };
}
