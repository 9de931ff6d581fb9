/**
 * Reading a policy: YAML or JSON text → validated document → compiled policy (globs,
 * patterns and prefixes prepared once, so evaluation does no parsing). Errors name
 * the path (`rules[1].allow.tools: expected a list of globs`) and unknown keys are
 * errors, since a misspelt matcher would otherwise silently match everything.
 */
import { compileIdentityMatcher, type IdentityMatcher } from "./identity.ts";
import YAML from "yaml";
import type { z } from "zod";
import { parseRedactPath, type RedactPath } from "../audit/redact.ts";
import { compileArguments, type CompiledConstraint } from "./arguments.ts";
import { compileGlob, type Glob } from "./glob.ts";
import { compileRateLimits, type CompiledRateLimit } from "./rate-limit.ts";
import { foldName } from "./normalize.ts";
import { compilePattern, type PolicyPattern } from "./pattern.ts";
import type { Decoding } from "./decode.ts";
import { DEFAULT_SCAN_MAX_BYTES, POLICY_KEYS, PolicyDocument, type Matcher, type TargetKind } from "./schema.ts";

export type Effect = "allow" | "deny";
export type PinningMode = "block" | "flag" | "off";

/** Globs of one matcher, compiled for exact comparison (allow) and folded comparison (deny). */
export interface NameMatcher {
  readonly exact: readonly Glob[];
  readonly folded: readonly Glob[];
}

/** A rule ready to evaluate. `label` is how decisions name it: `rules[2] (allow-echo)` or `rules[2]`. */
export interface CompiledRule {
  readonly index: number;
  readonly label: string;
  readonly effect: Effect;
  readonly tunnels?: NameMatcher;
  readonly channels?: NameMatcher;
  readonly methods?: NameMatcher;
  readonly target?: { readonly kind: TargetKind; readonly names: NameMatcher };
  readonly arguments?: CompiledConstraint;
  readonly maxRequestBytes?: number;
  readonly identity?: IdentityMatcher;
}

/** A compiled policy: what {@link parsePolicy} returns and every evaluator takes. */
export interface Policy {
  readonly document: PolicyDocument;
  readonly default: Effect;
  readonly rules: readonly CompiledRule[];
  readonly replies: Effect;
  readonly requestMaxBytes?: number;
  readonly responses: {
    readonly maxBytes?: number;
    readonly scanMaxBytes: number;
    readonly denyPatterns: readonly PolicyPattern[];
    /** Decodings whose output the deny patterns also see (none unless the policy asks). */
    readonly decode: readonly Decoding[];
  };
  readonly redact: readonly RedactPath[];
  readonly pinning: PinningMode;
  /** `rate_limits:`, kept by whoever holds the tunnel's state (see rate-limit.ts). */
  readonly rateLimits: readonly CompiledRateLimit[];
}

export type PolicyResult = { ok: true; policy: Policy } | { ok: false; errors: string[] };

function nameMatcher(globs: string[] | undefined): NameMatcher | undefined {
  if (!globs) return undefined;
  return { exact: globs.map(compileGlob), folded: globs.map((glob) => compileGlob(foldName(glob))) };
}

function compileRule(rule: PolicyDocument["rules"][number], index: number): CompiledRule {
  const effect: Effect = rule.allow ? "allow" : "deny";
  const matcher = (rule.allow ?? rule.deny) as Matcher;
  const target = matcher.tools
    ? { kind: "tool" as const, names: matcher.tools }
    : matcher.prompts
      ? { kind: "prompt" as const, names: matcher.prompts }
      : matcher.resources
        ? { kind: "resource" as const, names: matcher.resources }
        : undefined;
  return {
    index,
    label: rule.name ? `rules[${index}] (${rule.name})` : `rules[${index}]`,
    effect,
    tunnels: nameMatcher(matcher.tunnels),
    channels: nameMatcher(matcher.channels),
    methods: nameMatcher(matcher.methods),
    target: target && { kind: target.kind, names: nameMatcher(target.names) as NameMatcher },
    arguments:
      matcher.arguments || matcher.additional_arguments !== undefined
        ? compileArguments(matcher.arguments ?? {}, matcher.additional_arguments)
        : undefined,
    maxRequestBytes: matcher.max_request_bytes,
    identity: compileIdentityMatcher(matcher),
  };
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out || "(top level)";
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

function unknownKey(key: string): string {
  const near = POLICY_KEYS.map((known) => ({
    known,
    distance: editDistance(key.toLowerCase(), known.toLowerCase()),
  })).sort((x, y) => x.distance - y.distance)[0];
  const hint =
    near && near.distance <= Math.max(1, Math.floor(key.length / 3)) ? `; did you mean "${near.known}"?` : "";
  return `unknown key "${key}"${hint}`;
}

/** One line per problem: `path: message`. */
export function formatIssues(issues: ReadonlyArray<z.core.$ZodIssue>): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const where = formatPath(issue.path);
    if (issue.code === "unrecognized_keys") for (const key of issue.keys) lines.push(`${where}: ${unknownKey(key)}`);
    else lines.push(`${where}: ${issue.message}`);
  }
  return lines;
}

/** Validate and compile a policy already parsed from YAML/JSON (or built in code). */
export function compilePolicy(value: unknown): PolicyResult {
  const parsed = PolicyDocument.safeParse(value);
  if (!parsed.success) return { ok: false, errors: formatIssues(parsed.error.issues) };
  const document = parsed.data;
  return {
    ok: true,
    policy: {
      document,
      default: document.default,
      rules: document.rules.map(compileRule),
      replies: document.replies ?? "allow",
      requestMaxBytes: document.requests?.max_bytes,
      responses: {
        maxBytes: document.responses?.max_bytes,
        scanMaxBytes: document.responses?.scan_max_bytes ?? DEFAULT_SCAN_MAX_BYTES,
        denyPatterns: (document.responses?.deny_patterns ?? []).map(compilePattern),
        decode: document.responses?.decode ?? [],
      },
      redact: (document.audit?.redact ?? []).map((path) => parseRedactPath(path) as RedactPath),
      pinning: document.tool_pinning?.mode ?? "flag",
      rateLimits: compileRateLimits(document),
    },
  };
}

/**
 * Parse a policy file's text (YAML 1.2; JSON is valid YAML). Duplicate keys, anchors
 * beyond a small alias budget and syntax errors are reported with line and column;
 * `source` (a file name) prefixes every message.
 */
export function parsePolicy(text: string, options: { source?: string } = {}): PolicyResult {
  const where = options.source ? `${options.source}: ` : "";
  const document = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (document.errors.length) {
    return { ok: false, errors: document.errors.map((error) => `${where}${error.message.split("\n")[0]}`) };
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return { ok: false, errors: [`${where}${error instanceof Error ? error.message : String(error)}`] };
  }
  const result = compilePolicy(value);
  return result.ok ? result : { ok: false, errors: result.errors.map((line) => `${where}${line}`) };
}
