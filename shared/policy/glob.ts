/**
 * Globs for names in a policy: `*` matches any run of characters (slashes included,
 * so `notifications/*` covers `notifications/resources/updated`), `?` exactly one
 * character, `\` makes the next character literal. Everything else is literal and
 * the whole subject must match. No character classes or braces: a reviewer should
 * be able to read a pattern at a glance.
 *
 * Matching is the two-pointer wildcard algorithm, O(pattern × subject) at worst,
 * never exponential: a regular expression built from `*a*a*a*b` backtracks
 * catastrophically on a long hostile tool name.
 */

/** Longest glob a policy may hold; names and URIs are short and long patterns only hide mistakes. */
export const MAX_GLOB_LENGTH = 512;

/** A compiled glob. */
export interface Glob {
  readonly source: string;
  test(subject: string): boolean;
}

type Token = { kind: "star" } | { kind: "one" } | { kind: "char"; char: string };

/** Why `pattern` is not a usable glob, or `undefined` when it is. */
export function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return "a glob cannot be empty";
  if (pattern.length > MAX_GLOB_LENGTH) return `a glob is limited to ${MAX_GLOB_LENGTH} characters`;
  if (/(?:^|[^\\])(?:\\\\)*\\$/.test(pattern)) return "a glob cannot end with a lone '\\'";
  return undefined;
}

function tokenize(pattern: string): Token[] {
  const chars = Array.from(pattern);
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string;
    if (char === "\\" && i + 1 < chars.length) tokens.push({ kind: "char", char: chars[++i] as string });
    else if (char === "*") {
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
    } else if (char === "?") tokens.push({ kind: "one" });
    else tokens.push({ kind: "char", char });
  }
  return tokens;
}

function matches(tokens: Token[], subject: string[]): boolean {
  let t = 0,
    s = 0,
    starT = -1,
    starS = 0;
  while (s < subject.length) {
    const token = tokens[t];
    if (token && (token.kind === "one" || (token.kind === "char" && token.char === subject[s]))) {
      t++;
      s++;
    } else if (token?.kind === "star") {
      starT = t++;
      starS = s;
    } else if (starT >= 0) {
      t = starT + 1;
      s = ++starS;
    } else {
      return false;
    }
  }
  while (tokens[t]?.kind === "star") t++;
  return t === tokens.length;
}

/** Compile a glob (call {@link globProblem} first). Characters compare as code points. */
export function compileGlob(pattern: string): Glob {
  const tokens = tokenize(pattern);
  return { source: pattern, test: (subject) => matches(tokens, Array.from(subject)) };
}

/** True when `subject` matches `pattern` (a one-off; policies compile their globs once). */
export function matchGlob(pattern: string, subject: string): boolean {
  return compileGlob(pattern).test(subject);
}
