/**
 * `env:NAME` and `file:/path` references, tunnel-client's way to keep credentials out of
 * argv, profiles and checked-in YAML. Any other value is literal. Every value that came out
 * of a reference is recorded as a secret so logs and error messages can scrub it.
 */
import { resolve as resolvePath } from "node:path";
import { configError } from "./errors.ts";

export interface ReferenceContext {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  readFile(path: string): Promise<string>;
  /** Collects every resolved secret value. */
  secrets: Set<string>;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `env` / `file` when `value` is a reference (prefixes are case-insensitive, as in tunnel-client). */
export function referenceKind(value: string): "env" | "file" | undefined {
  const lower = value.trim().toLowerCase();
  if (lower.startsWith("env:")) return "env";
  if (lower.startsWith("file:")) return "file";
  return undefined;
}

/**
 * Resolve `value` if it is a reference; return literals unchanged. `path` names the key for
 * errors. The resolved value is trimmed and must not be empty. With `secret`, the result
 * (literal or not) joins the secret set; a reference's result always does. With
 * `fileIsPath` (certificate and CA paths), `file:/x` means the path `/x` itself, as in
 * tunnel-client's path references.
 */
export async function resolveReference(
  value: string,
  path: string,
  ctx: ReferenceContext,
  options: { secret?: boolean; fileIsPath?: boolean } = {},
): Promise<string> {
  const raw = value.trim();
  const kind = referenceKind(raw);
  let resolved = raw;
  if (kind === "env") {
    const name = raw.slice(4).trim();
    if (!ENV_NAME.test(name))
      throw configError(path, `"env:${name}" is not a valid environment variable reference; write env:NAME`);
    const found = ctx.env[name];
    if (found === undefined)
      throw configError(
        path,
        `refers to environment variable ${name}, which is not set; export ${name} or change the reference`,
      );
    resolved = found.trim();
    if (!resolved) throw configError(path, `refers to environment variable ${name}, which is empty`);
  } else if (kind === "file") {
    const file = raw.slice(5).trim();
    if (!file) throw configError(path, "file: reference needs a path, e.g. file:/run/secrets/key");
    const full = resolvePath(ctx.cwd, file);
    if (options.fileIsPath) return full;
    let text: string;
    try {
      text = await ctx.readFile(full);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw configError(
        path,
        `cannot read ${full}${typeof code === "string" ? ` (${code})` : ""}; check the path and its permissions`,
      );
    }
    resolved = text.trim();
    if (!resolved) throw configError(path, `file ${full} is empty`);
  }
  if (/[\r\n]/.test(resolved)) throw configError(path, "value contains a line break");
  if ((kind === "file" || kind === "env") && !options.fileIsPath) ctx.secrets.add(resolved);
  else if (options.secret) ctx.secrets.add(resolved);
  return resolved;
}

/** A filesystem path that may be given as `env:NAME` or `file:/path` (certificates, CA bundles). */
export function resolvePathReference(value: string, path: string, ctx: ReferenceContext): Promise<string> {
  return resolveReference(value, path, ctx, { fileIsPath: true });
}

const SENSITIVE_NAME = /auth|token|secret|key|password|passwd|cookie|credential|session/i;

/** Header or environment names whose literal values are credentials too. */
export function isSensitiveName(name: string): boolean {
  return SENSITIVE_NAME.test(name);
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Resolve every value of a header or environment map; sensitive names count as secrets
 * even when literal. For `headers`, names must be HTTP tokens, case variants must agree,
 * and `reserved` names (lower-case) are refused.
 */
export async function resolveValueMap(
  map: Readonly<Record<string, string>> | undefined,
  path: string,
  ctx: ReferenceContext,
  options: { headers?: boolean; reserved?: ReadonlySet<string> } = {},
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const seen = new Map<string, string>();
  for (const [name, value] of Object.entries(map ?? {})) {
    const where = `${path}.${name}`;
    const resolved = await resolveReference(value, where, ctx, { secret: isSensitiveName(name) });
    if (options.headers) {
      const lower = name.toLowerCase();
      if (!HEADER_NAME.test(name)) throw configError(where, "is not a valid HTTP header name");
      if (options.reserved?.has(lower)) throw configError(where, "is managed by Airlock and cannot be overridden");
      const previous = seen.get(lower);
      if (previous !== undefined && previous !== resolved)
        throw configError(where, "is set twice (header names ignore case) with different values");
      if (previous !== undefined) continue;
      seen.set(lower, resolved);
    }
    out[name] = resolved;
  }
  return out;
}

/** Credentials embedded in a URL (`https://user:pass@host`) are secrets as well. */
export function noteUrlSecrets(url: string, secrets: Set<string>): void {
  try {
    const parsed = new URL(url);
    if (parsed.password) secrets.add(decodeURIComponent(parsed.password));
    if (parsed.username && parsed.password) secrets.add(decodeURIComponent(parsed.username));
  } catch {
    // Not a URL: nothing embedded to protect.
  }
}
