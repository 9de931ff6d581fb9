/**
 * Saved admin profiles: a name → control-plane base URL, URL path and an admin key
 * *reference* (`env:NAME` / `file:/path`, never the key), plus which one is active. Stored
 * where tunnel-client stores them, in the same format, so both tools share one file:
 *
 *   $TUNNEL_CLIENT_STATE_DIR, else the first existing legacy dir ($CODEX_HOME/tunnel-mcp,
 *   ~/.codex/tunnel-mcp, ~/.tunnel-client), else $XDG_STATE_HOME/tunnel-client, else
 *   ~/.local/state/tunnel-client (macOS: ~/Library/Application Support/tunnel-client),
 *   and in it admin_profiles.yaml (JSON text, which YAML also reads), written 0600.
 */
import { existsSync, statSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { writePrivateFile } from "../runtime/private-file.ts";
import { join, normalize } from "node:path";
import process from "node:process";
import { aliasSlug } from "../runtimes/state.ts";
import { goJson } from "./go-json.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** One profile, with tunnel-client's field names. */
export interface AdminProfile {
  name: string;
  control_plane_base_url: string;
  control_plane_url_path?: string;
  admin_key: string;
  updated_at?: string;
}

export interface AdminProfilesFile {
  active_profile: string;
  profiles: Record<string, AdminProfile>;
}

/** A state file that cannot be read as tunnel-client writes it; the message says to repair it. */
export class AdminProfilesError extends Error {
  override name = "AdminProfilesError";
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** tunnel-client's state root (`pkg/codexplugin/state.ResolveRoot`). */
export function stateRoot(env: Env, home: string | undefined, platform: string = process.platform): string {
  const value = (name: string) => env[name]?.trim() || undefined;
  const explicit = value("TUNNEL_CLIENT_STATE_DIR");
  if (explicit) return normalize(explicit);
  const homeDir = value("HOME") ?? home;
  const legacy = [
    ...(value("CODEX_HOME") ? [join(value("CODEX_HOME")!, "tunnel-mcp")] : []),
    ...(value("HOME") ? [join(value("HOME")!, ".codex", "tunnel-mcp"), join(value("HOME")!, ".tunnel-client")] : []),
  ];
  const found = legacy.find(isDir);
  if (found) return found;
  if (value("XDG_STATE_HOME")) return join(value("XDG_STATE_HOME")!, "tunnel-client");
  if (homeDir)
    return platform === "darwin"
      ? join(homeDir, "Library", "Application Support", "tunnel-client")
      : join(homeDir, ".local", "state", "tunnel-client");
  return join(".", ".tunnel-client");
}

export function adminProfilesPath(root: string): string {
  return join(root, "admin_profiles.yaml");
}

/** tunnel-client's `NormalizeAlias`: lower case, `_` and other runs → `-`, trimmed of `-`. */
export function normalizeProfileName(name: string): string {
  const normalized = aliasSlug(name);
  if (normalized === "") throw new AdminProfilesError("alias must contain at least one ASCII letter or number");
  return normalized;
}

/** The values a command gives for a profile (flags), each optional. */
export interface AdminProfileInput {
  baseUrl?: string | undefined;
  urlPath?: string | undefined;
  adminKey?: string | undefined;
}

/**
 * A profile's values as tunnel-client settles them (`set`, and runtimes' implicit profile):
 * what is given, else what the profile holds, else CONTROL_PLANE_BASE_URL / _URL_PATH, else
 * `fallbackBaseUrl` and `env:OPENAI_ADMIN_KEY`. The key must stay a reference.
 */
export function mergeAdminProfile(
  name: string,
  given: AdminProfileInput,
  existing: Partial<AdminProfile>,
  env: Env,
  fallbackBaseUrl: string,
): AdminProfile {
  const first = (...values: Array<string | undefined>) => values.map((v) => v?.trim() ?? "").find((v) => v) ?? "";
  const urlPath = first(given.urlPath, existing.control_plane_url_path, env.CONTROL_PLANE_URL_PATH);
  // Go's field order (state.AdminProfile), so the file reads as tunnel-client writes it.
  const profile: AdminProfile = {
    name,
    control_plane_base_url: first(
      given.baseUrl,
      existing.control_plane_base_url,
      env.CONTROL_PLANE_BASE_URL,
      fallbackBaseUrl,
    ),
    ...(urlPath ? { control_plane_url_path: urlPath } : {}),
    admin_key: first(given.adminKey, existing.admin_key, "env:OPENAI_ADMIN_KEY"),
  };
  if (!profile.admin_key.startsWith("env:") && !profile.admin_key.startsWith("file:"))
    throw new AdminProfilesError(`admin profile ${name} admin_key must be an env:NAME or file:/path reference`);
  return profile;
}

/** The profiles file, or an empty one when there is none. */
export async function loadAdminProfiles(root: string): Promise<AdminProfilesFile> {
  const path = adminProfilesPath(root);
  if (!existsSync(path)) return { active_profile: "", profiles: {} };
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch {
    throw new AdminProfilesError(`state file ${path} is not valid JSON-compatible YAML; repair or remove it`);
  }
  const record = (raw !== null && typeof raw === "object" ? raw : {}) as Record<string, unknown>;
  const active = record.active_profile ?? "";
  if (typeof active !== "string")
    throw new AdminProfilesError(`state file ${path} must contain a string active_profile`);
  // Older files hold the profiles at the top level, beside active_profile.
  const profiles =
    "profiles" in record
      ? record.profiles
      : Object.fromEntries(Object.entries(record).filter(([key]) => key !== "active_profile"));
  if (profiles === null || typeof profiles !== "object" || Array.isArray(profiles))
    throw new AdminProfilesError(`state file ${path} must contain a profiles object`);
  return { active_profile: active, profiles: profiles as Record<string, AdminProfile> };
}

/** Write atomically (temp file, rename), 0600, profiles sorted by name as Go's encoder does. */
export async function saveAdminProfiles(root: string, file: AdminProfilesFile): Promise<void> {
  const path = adminProfilesPath(root);
  await mkdir(root, { recursive: true });
  const sorted = Object.fromEntries(Object.entries(file.profiles).sort(([a], [b]) => (a < b ? -1 : 1)));
  await writePrivateFile(path, goJson({ active_profile: file.active_profile, profiles: sorted }));
}

/** tunnel-client creates these beside the file on `set` (its runtimes use them). */
export async function ensureStateDirs(root: string): Promise<void> {
  for (const dir of [root, join(root, "configs"), join(root, "health"), join(root, "logs")])
    await mkdir(dir, { recursive: true, mode: 0o755 });
}

/** Names a tunnel-client alias or running runtime still uses (such a profile cannot be deleted). */
export async function profileUsers(root: string, name: string): Promise<string | undefined> {
  const read = async (file: string): Promise<Record<string, Record<string, unknown>>> => {
    try {
      return JSON.parse(await readFile(join(root, file), "utf8")) as Record<string, Record<string, unknown>>;
    } catch {
      return {};
    }
  };
  for (const record of Object.values(await read("aliases.yaml")))
    if (record?.admin_profile === name) return `alias ${String(record.alias)}`;
  for (const record of Object.values(await read("processes.yaml")))
    if (record?.admin_profile === name && record.alias && record.mode !== "stopped")
      return `active runtime ${String(record.alias)}`;
  return undefined;
}
