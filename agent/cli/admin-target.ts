/**
 * Where `airlock admin tunnels` sends its requests and with which key, resolved from flags
 * and environment as tunnel-client's `LoadAdminConfig` does (same precedence, same
 * messages), or, with `--hub URL`, an Airlock hub and its admin token.
 *
 * OpenAI: `--control-plane.base-url` › CONTROL_PLANE_BASE_URL › https://api.openai.com;
 * `--control-plane.url-path` › CONTROL_PLANE_URL_PATH; `--ca-bundle` › CA_BUNDLE;
 * `--admin-key env:NAME|file:/path` › OPENAI_ADMIN_KEY. The hub never falls back to
 * OPENAI_ADMIN_KEY: an OpenAI key must not travel to another host by default.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { HUB_ADMIN_TUNNELS_PATH, OPENAI_TUNNELS_PATH } from "../../shared/protocol/admin-tunnels.ts";
import { loadAdminProfiles, normalizeProfileName, stateRoot } from "./admin-profiles-store.ts";
import { duplicateIds, type TunnelsArgs } from "./admin-tunnels-args.ts";

type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_ADMIN_BASE_URL = "https://api.openai.com";

/** The resolved target, before an HTTP client is attached. */
export interface AdminConfig {
  hub: boolean;
  base: URL;
  urlPath: string;
  route: string;
  key: string;
  caBundle?: string;
  organizationIds: string[];
  workspaceIds: string[];
}

/** A problem tunnel-client reports from `RunE` (wrapped into `{"error":…}` with `--json`). */
export class AdminConfigError extends Error {
  override name = "AdminConfigError";
}

/** Go's `url.Parse` + "must include scheme and host". */
function parseBaseUrl(raw: string, flag: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AdminConfigError(`invalid ${flag}: must include scheme and host`);
  }
  if (!url.host) throw new AdminConfigError(`invalid ${flag}: must include scheme and host`);
  return url;
}

/** tunnel-client's `NormalizeControlPlaneURLPath`. */
export function normalizeUrlPath(raw: string): string {
  const value = raw.trim();
  if (value === "") return "";
  if (/^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith("//") || /[?#]/.test(value))
    throw new AdminConfigError(
      "invalid control-plane.url-path: must be a URL path without scheme, host, query, or fragment",
    );
  if (!value.startsWith("/")) throw new AdminConfigError("invalid control-plane.url-path: must start with '/'");
  return value === "/" ? "" : value;
}

/** `--admin-key env:NAME|file:/path` (prefixes case-sensitive, as tunnel-client), else OPENAI_ADMIN_KEY. */
export async function resolveAdminKey(flag: string | undefined, env: Env, cwd: string): Promise<string> {
  if (flag) {
    if (flag.startsWith("env:")) {
      const name = flag.slice(4);
      if (name === "")
        throw new AdminConfigError("invalid admin-key: environment variable name is required after env:");
      const value = env[name];
      if (value === undefined)
        throw new AdminConfigError(`environment variable ${name} referenced by --admin-key is not set`);
      if (value.trim() === "")
        throw new AdminConfigError(`environment variable ${name} referenced by --admin-key is empty`);
      return value.trim();
    }
    if (flag.startsWith("file:")) {
      const path = flag.slice(5);
      if (path === "") throw new AdminConfigError("invalid admin-key: file path is required after file:");
      let text: string;
      try {
        text = await readFile(resolve(cwd, path), "utf8");
      } catch (error) {
        throw new AdminConfigError(`read admin key file ${path}: ${(error as Error).message}`);
      }
      if (text.trim() === "") throw new AdminConfigError(`file ${path} referenced by --admin-key is empty`);
      return text.trim();
    }
    throw new AdminConfigError("admin-key must use env: or file: prefixes");
  }
  const value = env.OPENAI_ADMIN_KEY;
  if (value !== undefined) {
    if (value.trim() === "") throw new AdminConfigError("OPENAI_ADMIN_KEY must be non-empty");
    return value.trim();
  }
  throw new AdminConfigError("admin key is required; set --admin-key or OPENAI_ADMIN_KEY");
}

/** `--ca-bundle` › CA_BUNDLE as a path, where `file:/p` is `/p` and `env:NAME` names the path. */
function caBundlePath(flags: TunnelsArgs, env: Env): string | undefined {
  const raw = (flags.strings.get("ca-bundle") ?? env.CA_BUNDLE ?? "").trim();
  if (raw === "") return undefined;
  const lower = raw.toLowerCase();
  if (lower.startsWith("file:")) {
    const path = raw.slice(5).trim();
    if (!path) throw new AdminConfigError(`invalid ca-bundle reference "${raw}": file path is required`);
    return path;
  }
  if (!lower.startsWith("env:")) return raw;
  const name = raw.slice(4).trim();
  if (!name) throw new AdminConfigError(`invalid ca-bundle reference "${raw}": env name is required`);
  const value = env[name];
  if (value === undefined)
    throw new AdminConfigError(`invalid ca-bundle reference "${raw}": environment variable "${name}" is not set`);
  if (value.trim() === "")
    throw new AdminConfigError(`invalid ca-bundle reference "${raw}": environment variable "${name}" is empty`);
  return value.trim();
}

function scope(flags: TunnelsArgs): Pick<AdminConfig, "organizationIds" | "workspaceIds"> {
  const organizationIds = flags.lists.get("organization-id") ?? [];
  const workspaceIds = flags.lists.get("workspace-id") ?? [];
  const dup = duplicateIds("organization-id", organizationIds) ?? duplicateIds("workspace-id", workspaceIds);
  if (dup) throw new AdminConfigError(dup);
  return { organizationIds, workspaceIds };
}

/** The hub target: `--hub URL --token env:NAME|file:/path`. */
async function hubConfig(flags: TunnelsArgs, env: Env, cwd: string): Promise<AdminConfig> {
  const hub = flags.strings.get("hub")!;
  for (const flag of ["admin-key", "control-plane.base-url", "control-plane.url-path"])
    if (flags.strings.has(flag))
      throw new AdminConfigError(
        `--${flag} is for OpenAI's admin API; with --hub, pass the hub's admin token as --token env:NAME or file:/path`,
      );
  const base = parseBaseUrl(hub, "--hub");
  const ref = flags.strings.get("token");
  if (ref === undefined)
    throw new AdminConfigError(
      "--hub needs the hub's admin token: --token env:NAME or file:/path (its SHA-256 is in AIRLOCK_ADMIN_TOKEN_SHA256)",
    );
  if (!ref.startsWith("env:") && !ref.startsWith("file:"))
    throw new AdminConfigError("--token must use env: or file: prefixes, so the token stays out of the process list");
  const key = await resolveAdminKey(ref, env, cwd).catch((error: Error) => {
    throw new AdminConfigError(error.message.replaceAll("--admin-key", "--token").replace("admin-key", "token"));
  });
  const caBundle = caBundlePath(flags, env);
  return {
    hub: true,
    base,
    urlPath: base.pathname,
    route: HUB_ADMIN_TUNNELS_PATH,
    key,
    ...(caBundle ? { caBundle } : {}),
    ...scope(flags),
  };
}

/**
 * Airlock's `--admin-profile NAME`: a saved profile (airlock admin-profiles) supplies the base
 * URL, URL path and admin key reference that flags do not give.
 */
async function withProfile(flags: TunnelsArgs, env: Env, home: string | undefined): Promise<TunnelsArgs> {
  const name = flags.strings.get("admin-profile");
  if (name === undefined) return flags;
  if (flags.strings.has("hub")) throw new AdminConfigError("--admin-profile is for OpenAI's admin API, not --hub");
  const root = stateRoot(env, home);
  const key = normalizeProfileName(name);
  const profile = (await loadAdminProfiles(root)).profiles[key];
  if (!profile)
    throw new AdminConfigError(`admin profile ${key} is not known; save it with airlock admin-profiles set ${key}`);
  const strings = new Map(flags.strings);
  const fill = (flag: string, value: string | undefined) => {
    if (value && !strings.has(flag)) strings.set(flag, value);
  };
  fill("control-plane.base-url", profile.control_plane_base_url);
  fill("control-plane.url-path", profile.control_plane_url_path);
  fill("admin-key", profile.admin_key);
  return { ...flags, strings };
}

/** Resolve the target of one command (`env` may be an overlay, see `get`'s runtime-key fallback). */
export async function loadAdminConfig(given: TunnelsArgs, env: Env, cwd: string, home?: string): Promise<AdminConfig> {
  const flags = await withProfile(given, env, home);
  if (flags.strings.has("hub")) return hubConfig(flags, env, cwd);
  if (flags.strings.has("token"))
    throw new AdminConfigError("--token is the hub's admin token and needs --hub URL; for OpenAI use --admin-key");
  const base = parseBaseUrl(
    flags.strings.get("control-plane.base-url") || env.CONTROL_PLANE_BASE_URL || DEFAULT_ADMIN_BASE_URL,
    "control-plane.base-url",
  );
  const urlPath = normalizeUrlPath(flags.strings.get("control-plane.url-path") || env.CONTROL_PLANE_URL_PATH || "");
  const caBundle = caBundlePath(flags, env);
  const key = await resolveAdminKey(flags.strings.get("admin-key"), env, cwd);
  return {
    hub: false,
    base,
    urlPath,
    route: OPENAI_TUNNELS_PATH,
    key,
    ...(caBundle ? { caBundle } : {}),
    ...scope(flags),
  };
}

/**
 * `get` is a read-only lookup tunnel-client also allows with the runtime key: without an
 * admin key (flag absent or `env:OPENAI_ADMIN_KEY`, variable unset), CONTROL_PLANE_API_KEY
 * or OPENAI_API_KEY stands in for OPENAI_ADMIN_KEY.
 */
export async function loadReadOnlyConfig(
  flags: TunnelsArgs,
  env: Env,
  cwd: string,
  home?: string,
): Promise<AdminConfig> {
  try {
    return await loadAdminConfig(flags, env, cwd, home);
  } catch (error) {
    const runtimeKey = [env.CONTROL_PLANE_API_KEY, env.OPENAI_API_KEY].find((value) => value?.trim());
    const flag = (flags.strings.get("admin-key") ?? "").trim();
    const canFallBack =
      !flags.strings.has("hub") &&
      !flags.strings.has("admin-profile") &&
      !env.OPENAI_ADMIN_KEY?.trim() &&
      (flag === "" || flag === "env:OPENAI_ADMIN_KEY") &&
      runtimeKey !== undefined;
    if (!canFallBack) throw error;
    return loadAdminConfig(flags, { ...env, OPENAI_ADMIN_KEY: runtimeKey.trim() }, cwd, home);
  }
}
