/**
 * Argument constraints: a focused, JSON-Schema-like subset checked against
 * `params.arguments`. Two choices differ from JSON Schema on purpose, because a
 * policy is a security boundary rather than a description:
 * - a constrained argument must be present unless `optional: true` (a server that
 *   defaults a missing `duration` to 10 would otherwise slip past `maximum: 3`);
 * - each keyword implies its type (`maximum` only holds for numbers, `prefix` only for
 *   strings): `"10"` is not a number below 3, even if a server would coerce it.
 */
import { canonicalJson } from "../audit/digest.ts";
import { isObject } from "../jsonrpc.ts";
import { isUnderPrefix, normalizePrefix, pathViews, foldName, type PathPrefix } from "./normalize.ts";
import { compilePattern, type PolicyPattern } from "./pattern.ts";
import { decodedViews, type Decoding } from "./decode.ts";
import type { ArgumentConstraint, ArgumentType } from "./schema.ts";

/** A constraint with its pattern and prefix prepared once. */
export interface CompiledConstraint {
  readonly spec: ArgumentConstraint;
  readonly pattern?: PolicyPattern["regex"];
  readonly prefix?: PathPrefix;
  readonly items?: CompiledConstraint;
  readonly properties?: ReadonlyMap<string, CompiledConstraint>;
}

/**
 * `holds`, `fails`, or `unknown` when the value cannot be judged (wrong type, a path
 * that does not normalise, keys differing only by case). Allow rules need `holds`;
 * deny rules match on `holds` or `unknown`, so doubt always ends in a refusal.
 */
export type ArgumentVerdict = { verdict: "holds" } | { verdict: "fails" | "unknown"; reason: string };

/** Whether the check serves an allow rule (every view must pass) or a deny rule (any view may match). */
export type CheckMode = "allow" | "deny";

const HOLDS: ArgumentVerdict = { verdict: "holds" };

/** Prepare a constraint (patterns compiled, prefixes normalised). Input passed schema validation. */
export function compileConstraint(spec: ArgumentConstraint): CompiledConstraint {
  return {
    spec,
    pattern: spec.pattern === undefined ? undefined : compilePattern(spec.pattern).regex,
    prefix: spec.prefix === undefined ? undefined : normalizePrefix(spec.prefix),
    items: spec.items && compileConstraint(spec.items),
    properties:
      spec.properties &&
      new Map(Object.entries(spec.properties).map(([key, value]) => [key, compileConstraint(value)])),
  };
}

/** The constraint a rule's `arguments` + `additional_arguments` make on the arguments object. */
export function compileArguments(
  args: Record<string, ArgumentConstraint>,
  additional: boolean | undefined,
): CompiledConstraint {
  return compileConstraint({ type: "object", properties: args, additional: additional ?? true });
}

function jsonType(value: unknown): ArgumentType | "other" {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  switch (typeof value) {
    case "string":
      return "string";
    case "boolean":
      return "boolean";
    case "number":
      return Number.isInteger(value) ? "integer" : "number";
    case "object":
      return "object";
    default:
      return "other";
  }
}

function typeFits(actual: ArgumentType | "other", wanted: ArgumentType): boolean {
  return actual === wanted || (wanted === "number" && actual === "integer");
}

function sameJson(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function prefixVerdict(prefix: PathPrefix, value: string, mode: CheckMode, path: string): ArgumentVerdict {
  const views = pathViews(value, prefix.kind);
  if (!views)
    return {
      verdict: "unknown",
      reason: `${path}: ${show(value)} cannot be normalised (control characters, bad percent-encoding, '..' above its start, or a name of only dots)`,
    };
  if (mode === "allow") {
    const outside = views.find((view) => !isUnderPrefix(view, prefix.text, prefix.kind));
    return outside === undefined
      ? HOLDS
      : {
          verdict: "fails",
          reason: `${path}: ${show(value)} resolves to ${show(outside)}, outside ${show(prefix.text)}`,
        };
  }
  const folded = foldName(prefix.text);
  return views.some((view) => isUnderPrefix(foldName(view), folded, prefix.kind))
    ? HOLDS
    : { verdict: "fails", reason: `${path} is not under ${show(prefix.text)}` };
}

/** A pattern over the value and, with `decode`, what it decodes to: all of them for an allow, any for a deny. */
function patternHolds(
  pattern: PolicyPattern["regex"],
  value: string,
  decode: readonly Decoding[],
  mode: CheckMode,
): boolean {
  const views = [value, ...decodedViews(value, decode, { textOnly: mode === "allow" })];
  return mode === "allow" ? views.every((view) => pattern.test(view)) : views.some((view) => pattern.test(view));
}

/** Check one value against a compiled constraint; `path` names it in reasons (`arguments.duration`). */
export function checkValue(
  constraint: CompiledConstraint,
  value: unknown,
  path: string,
  mode: CheckMode,
): ArgumentVerdict {
  const spec = constraint.spec;
  const actual = jsonType(value);
  const wanted = spec.type === undefined ? [] : [spec.type].flat();
  if (wanted.length && !wanted.some((type) => typeFits(actual, type))) {
    return { verdict: "unknown", reason: `${path}: expected ${wanted.join(" or ")}, got ${actual}` };
  }
  if (spec.enum && !spec.enum.some((option) => sameJson(option, value))) {
    return { verdict: "fails", reason: `${path}: ${show(value)} is not one of ${show(spec.enum)}` };
  }
  if ("const" in spec && !sameJson(spec.const, value))
    return { verdict: "fails", reason: `${path}: ${show(value)} is not ${show(spec.const)}` };

  if (spec.minimum !== undefined || spec.maximum !== undefined) {
    if (typeof value !== "number") return { verdict: "unknown", reason: `${path}: expected a number, got ${actual}` };
    // -Infinity is "below 3" to JavaScript, yet travels as null; only finite numbers are judged.
    if (!Number.isFinite(value)) return { verdict: "unknown", reason: `${path}: ${value} is not a finite number` };
    if (spec.minimum !== undefined && !(value >= spec.minimum))
      return { verdict: "fails", reason: `${path}: ${value} is below the minimum ${spec.minimum}` };
    if (spec.maximum !== undefined && !(value <= spec.maximum))
      return { verdict: "fails", reason: `${path}: ${value} is above the maximum ${spec.maximum}` };
  }

  if (
    spec.minLength !== undefined ||
    spec.maxLength !== undefined ||
    constraint.pattern ||
    constraint.prefix !== undefined
  ) {
    if (typeof value !== "string") return { verdict: "unknown", reason: `${path}: expected a string, got ${actual}` };
    if (spec.minLength !== undefined || spec.maxLength !== undefined) {
      // Code points, as JSON Schema counts them.
      const length = [...value].length;
      if (spec.minLength !== undefined && length < spec.minLength)
        return { verdict: "fails", reason: `${path}: shorter than ${spec.minLength} characters` };
      if (spec.maxLength !== undefined && length > spec.maxLength)
        return { verdict: "fails", reason: `${path}: longer than ${spec.maxLength} characters` };
    }
    if (constraint.pattern && !patternHolds(constraint.pattern, value, spec.decode ?? [], mode)) {
      return {
        verdict: "fails",
        reason: `${path}: ${show(value)} does not match ${show(spec.pattern)}${spec.decode ? ` (${mode === "allow" ? "as sent and decoded" : "as sent or decoded"})` : ""}`,
      };
    }
    if (constraint.prefix !== undefined) {
      const verdict = prefixVerdict(constraint.prefix, value, mode, path);
      if (verdict.verdict !== "holds") return verdict;
    }
  }

  if (constraint.items || spec.minItems !== undefined || spec.maxItems !== undefined) {
    if (!Array.isArray(value)) return { verdict: "unknown", reason: `${path}: expected an array, got ${actual}` };
    if (spec.minItems !== undefined && value.length < spec.minItems)
      return { verdict: "fails", reason: `${path}: fewer than ${spec.minItems} items` };
    if (spec.maxItems !== undefined && value.length > spec.maxItems)
      return { verdict: "fails", reason: `${path}: more than ${spec.maxItems} items` };
    if (constraint.items) {
      const verdicts = value.map((item, index) =>
        checkValue(constraint.items as CompiledConstraint, item, childPath(path, index), mode),
      );
      const verdict = combine(verdicts);
      if (verdict.verdict !== "holds") return verdict;
    }
  }

  if (constraint.properties || spec.additional !== undefined) {
    if (!isObject(value)) return { verdict: "unknown", reason: `${path}: expected an object, got ${actual}` };
    return checkObject(constraint, value, path, mode);
  }
  return HOLDS;
}

function checkObject(
  constraint: CompiledConstraint,
  value: Record<string, unknown>,
  path: string,
  mode: CheckMode,
): ArgumentVerdict {
  const properties = constraint.properties ?? new Map<string, CompiledConstraint>();
  const verdicts: ArgumentVerdict[] = [];
  const byFold = new Map([...properties.keys()].map((key) => [key.normalize("NFKC").toLowerCase(), key]));
  for (const key of Object.keys(value)) {
    if (properties.has(key)) continue;
    const twin = byFold.get(key.normalize("NFKC").toLowerCase());
    // Case-insensitive decoders (Go's encoding/json among them) may read `Path` as `path`.
    if (twin !== undefined)
      verdicts.push({
        verdict: "unknown",
        reason: `${childPath(path, key)}: differs from the constrained ${show(twin)} only by case or form`,
      });
    else if (constraint.spec.additional === false)
      verdicts.push({
        verdict: "fails",
        reason: `${childPath(path, key)}: not an allowed argument (additional: false)`,
      });
  }
  for (const [key, child] of properties) {
    if (Object.hasOwn(value, key)) verdicts.push(checkValue(child, value[key], childPath(path, key), mode));
    else if (!child.spec.optional)
      verdicts.push({
        verdict: "fails",
        reason: `${childPath(path, key)}: missing (constrained arguments are required unless optional: true)`,
      });
  }
  return combine(verdicts);
}

/** All must hold: the first `fails` wins, then the first `unknown`. */
export function combine(verdicts: ArgumentVerdict[]): ArgumentVerdict {
  return (
    verdicts.find((verdict) => verdict.verdict === "fails") ??
    verdicts.find((verdict) => verdict.verdict === "unknown") ??
    HOLDS
  );
}

/** Does a verdict let the rule match? Allow rules need `holds`; deny rules match unless it definitely `fails`. */
export function verdictMatches(verdict: ArgumentVerdict, mode: CheckMode): boolean {
  return mode === "allow" ? verdict.verdict === "holds" : verdict.verdict !== "fails";
}
