/**
 * Redaction of what an audit record keeps. Paths are dot paths with wildcards:
 * `arguments.message`, `arguments.*.token` (`*` = any key or any array index),
 * `arguments.items[*].secret`, `arguments.items[0]`, `arguments["key.with.dots"]`.
 * The redacted copy replaces each matched value (whatever its type) with
 * {@link REDACTED}; the digest of the unredacted value still lets an auditor prove
 * what was sent when shown the original.
 */
import { digestJson, type Digest } from "./digest.ts";

/** What a redacted value becomes. */
export const REDACTED = "[REDACTED]";

export type RedactSegment = { kind: "key"; key: string } | { kind: "index"; index: number } | { kind: "any" };
export type RedactPath = RedactSegment[];

const TOKEN = /\.?([^.[\]"]+)|\[(\d+|\*|"(?:[^"\\]|\\.)*")\]/y;

/** Parse a redaction path; a string result says what is wrong with it. */
export function parseRedactPath(path: string): RedactPath | string {
  if (path.length === 0) return "a redaction path cannot be empty";
  const segments: RedactPath = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < path.length) {
    const start = TOKEN.lastIndex;
    const match = TOKEN.exec(path);
    if (!match || (start === 0 && path.startsWith(".")))
      return `cannot read the path at character ${start + 1} ("${path.slice(start)}"); use dots, [n], [*] or ["key"]`;
    const [, name, bracket] = match;
    if (name !== undefined) segments.push(name === "*" ? { kind: "any" } : { kind: "key", key: name });
    else if (bracket === "*") segments.push({ kind: "any" });
    else if (bracket?.startsWith('"')) segments.push({ kind: "key", key: JSON.parse(bracket) as string });
    else segments.push({ kind: "index", index: Number(bracket) });
  }
  return segments;
}

function segmentMatches(segment: RedactSegment, key: string | number): boolean {
  if (segment.kind === "any") return true;
  if (segment.kind === "index") return key === segment.index;
  return key === segment.key || (typeof key === "number" && segment.key === String(key));
}

function descend(paths: RedactPath[], key: string | number): RedactPath[] {
  return paths.filter((path) => path[0] && segmentMatches(path[0], key)).map((path) => path.slice(1));
}

function copy(value: unknown, paths: RedactPath[]): unknown {
  if (paths.some((path) => path.length === 0)) return REDACTED;
  if (Array.isArray(value)) return value.map((item, index) => copy(item, descend(paths, index)));
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // defineProperty, because a JSON key "__proto__" assigned with `=` would replace the prototype.
      Object.defineProperty(out, key, {
        value: copy(item, descend(paths, key)),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

/**
 * A deep copy of `value` with every value at one of `paths` replaced by
 * {@link REDACTED}. Paths are strings (parsed here; a bad one throws) or parsed paths.
 */
export function redact(value: unknown, paths: ReadonlyArray<string | RedactPath>): unknown {
  const parsed = paths.map((path) => {
    if (typeof path !== "string") return path;
    const result = parseRedactPath(path);
    if (typeof result === "string") throw new Error(`redaction path "${path}": ${result}`);
    return result;
  });
  return copy(value, parsed);
}

/** What an audit record keeps of a request's arguments. */
export interface AuditedArguments {
  /** Redacted copy; `null` when the request had no arguments. */
  arguments: unknown;
  /** Digest of the unredacted arguments (canonical JSON); `null` when there were none. */
  arguments_digest: Digest | null;
}

/**
 * Redact `params.arguments` for the audit log. Paths are rooted above the arguments
 * (`arguments.message`), as a policy's `audit.redact` writes them.
 */
export async function redactArguments(
  args: unknown,
  paths: ReadonlyArray<string | RedactPath>,
): Promise<AuditedArguments> {
  if (args === undefined) return { arguments: null, arguments_digest: null };
  const redacted = redact({ arguments: args }, paths) as { arguments: unknown };
  return { arguments: redacted.arguments, arguments_digest: await digestJson(args) };
}
