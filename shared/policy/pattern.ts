/**
 * Regular expressions written in a policy (argument `pattern`, `responses.deny_patterns`).
 * JavaScript's engine backtracks, so `(a|a)*b`, `(\w|\d)*$` or `(.*a){20}` can stall a
 * Worker for minutes on a hostile string, and no syntactic check catches every such
 * shape. Policy patterns therefore run on RE2 (the `re2js` port, pure JavaScript, so
 * it runs in Workers, Node, Deno and Bun alike): matching takes time linear in the
 * text, whatever the pattern. RE2 has no lookaround and no backreferences — the
 * features that cannot be matched in linear time — so such patterns are refused when
 * the policy is read. Syntax is RE2's (close to JavaScript's; `(?i)` anywhere sets
 * case-insensitivity). Callers still bound the text they scan.
 */
import { RE2JS } from "re2js";

/** Longest pattern a policy may hold. */
export const MAX_PATTERN_LENGTH = 512;
/**
 * Largest compiled pattern (RE2 program instructions). Matching is linear in the text
 * times the program size, so the program is bounded too: `[a-z]{1000}` is 1002.
 */
export const MAX_PATTERN_PROGRAM = 4096;

/** A compiled policy pattern: `test` finds a match anywhere in the text, in linear time. */
export interface PolicyPattern {
  readonly source: string;
  readonly regex: { test(text: string): boolean };
}

/** Why `source` is refused as a policy pattern, or `undefined` when RE2 compiles it within the bounds. */
export function patternProblem(source: string): string | undefined {
  if (source.length === 0) return "a pattern cannot be empty";
  if (source.length > MAX_PATTERN_LENGTH) return `a pattern is limited to ${MAX_PATTERN_LENGTH} characters`;
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(source);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return `not a regular expression RE2 can match in linear time (${reason}); lookaround and backreferences are not supported`;
  }
  const size = compiled.programSize();
  if (size > MAX_PATTERN_PROGRAM)
    return `the pattern compiles to ${size} instructions, over the limit of ${MAX_PATTERN_PROGRAM}; use smaller repetition counts`;
  return undefined;
}

/** Compile a pattern that passed {@link patternProblem}. */
export function compilePattern(source: string): PolicyPattern {
  return { source, regex: RE2JS.compile(source) };
}
