/**
 * Canonical JSON and SHA-256 digests, shared by the audit chain and tool pinning.
 * Both need a byte-exact encoding that any runtime (and an auditor's own script)
 * reproduces from the parsed value alone, so hashes survive a round trip through
 * NDJSON, SQLite or another language.
 */

const encoder = new TextEncoder();

/**
 * Canonical JSON (RFC 8785 / JCS for the values JSON carries): object keys sorted by
 * UTF-16 code units, no whitespace, numbers and strings as `JSON.stringify` writes them.
 * Keys whose value is `undefined` are left out, as `JSON.stringify` does. Throws on
 * values JSON cannot carry (non-finite numbers, bigint, functions, symbols), because a
 * silent `null` would make two different inputs hash alike.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON cannot encode the number ${value}`);
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value))
        return `[${value.map((item) => (item === undefined ? "null" : canonicalJson(item))).join(",")}]`;
      const parts: string[] = [];
      for (const key of Object.keys(value).sort()) {
        const item = (value as Record<string, unknown>)[key];
        if (item !== undefined) parts.push(`${JSON.stringify(key)}:${canonicalJson(item)}`);
      }
      return `{${parts.join(",")}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a value of type ${typeof value}`);
  }
}

// A UTF-16 surrogate not paired with its other half: valid in a JS string, but no
// UTF-8 (and so no other decoder, digest or backend) sees the same text.
const LONE_SURROGATE = /\p{Cs}/u;

/** `path` extended by one member, as reasons print it: `$.params`, `$["a b"]`, `$[0]`. */
export function memberPath(path: string, member: string | number): string {
  if (typeof member === "number") return `${path}[${member}]`;
  return /^[A-Za-z_$][\w$]*$/.test(member) ? `${path}.${member}` : `${path}[${JSON.stringify(member)}]`;
}

/** Where a value leaves JSON (`$.params.arguments.duration`) and why. */
export interface JsonProblem {
  path: string;
  reason: string;
}

/**
 * Why a value is not one JSON carries exactly, or `undefined` when it is: a non-finite
 * number (`1e999` parses to Infinity and is re-sent as `null`), a string or key with a
 * lone surrogate (`"\ud800"`: UTF-8 has no encoding for it, so decoders replace or
 * reject it), a non-plain object, nesting beyond 1000 levels. Validates without copying: zod's `z.json()`
 * rebuilds objects and drops a `"__proto__"` key, which would change what gets hashed.
 */
export function jsonValueProblem(value: unknown, path = "$", depth = 0): JsonProblem | undefined {
  if (depth > 1000) return { path, reason: "nested deeper than 1000 levels" };
  switch (typeof value) {
    case "boolean":
      return undefined;
    case "string":
      return LONE_SURROGATE.test(value)
        ? { path, reason: "a string with a lone UTF-16 surrogate, which UTF-8 cannot carry" }
        : undefined;
    case "number":
      return Number.isFinite(value)
        ? undefined
        : { path, reason: `the number ${value} has no JSON form (it would travel as null)` };
    case "object": {
      if (value === null) return undefined;
      if (Array.isArray(value)) {
        for (const [index, item] of value.entries()) {
          // Inside a container, undefined is what JSON.stringify leaves out (or writes as null).
          if (item === undefined) continue;
          const problem = jsonValueProblem(item, memberPath(path, index), depth + 1);
          if (problem) return problem;
        }
        return undefined;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null)
        return { path, reason: "not a plain object" };
      for (const [key, item] of Object.entries(value)) {
        const where = memberPath(path, key);
        if (LONE_SURROGATE.test(key))
          return { path: where, reason: "a key with a lone UTF-16 surrogate, which UTF-8 cannot carry" };
        if (item === undefined) continue;
        const problem = jsonValueProblem(item, where, depth + 1);
        if (problem) return problem;
      }
      return undefined;
    }
    default:
      return { path, reason: `a ${typeof value} is not a JSON value` };
  }
}

/** True for a value JSON can carry exactly (see {@link jsonValueProblem}). */
export function isJsonValue(value: unknown): boolean {
  return jsonValueProblem(value) === undefined;
}

/** Lowercase hex SHA-256 (WebCrypto) of a string (UTF-8) or bytes. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** A self-describing digest, `sha256:<hex>`, as tool pins and audit records carry them. */
export type Digest = `sha256:${string}`;

/** `sha256:<hex>` of a value's canonical JSON. */
export async function digestJson(value: unknown): Promise<Digest> {
  return `sha256:${await sha256Hex(canonicalJson(value))}`;
}

/** `sha256:<hex>` of raw bytes or text (a response body as it went out). */
export async function digestBytes(data: string | Uint8Array): Promise<Digest> {
  return `sha256:${await sha256Hex(data)}`;
}

/** UTF-8 length of a string: what a body of that text weighs on the wire. */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}
