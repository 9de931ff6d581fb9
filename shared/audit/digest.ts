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
      if (Array.isArray(value)) return `[${value.map((item) => item === undefined ? "null" : canonicalJson(item)).join(",")}]`;
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

/**
 * True for a value JSON can carry exactly (finite numbers, plain objects and arrays).
 * Validates without copying: zod's `z.json()` rebuilds objects and drops a
 * `"__proto__"` key on the way, which would change what gets hashed.
 */
export function isJsonValue(value: unknown, depth = 0): boolean {
  if (depth > 1000) return false;
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object":
      if (value === null) return true;
      if (Array.isArray(value)) return value.every((item) => isJsonValue(item, depth + 1));
      if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return false;
      return Object.values(value).every((item) => isJsonValue(item, depth + 1));
    default:
      return false;
  }
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
