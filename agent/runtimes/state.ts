/**
 * Where `airlock runtimes` keeps what it supervises, in tunnel-client's layout: a state root
 * with `aliases.yaml` (alias → tunnel) and `processes.yaml` (alias → the running agent), both
 * JSON maps as tunnel-client writes them, plus `health/<alias>.url`, `logs/<alias>.log` and an
 * append-only `history.md`. Files are private (0600, directories 0700): they name tunnels,
 * profiles and process ids, never a secret (keys stay `env:`/`file:` references).
 */
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { writePrivateFile } from "../runtime/private-file.ts";
import { join } from "node:path";
import process from "node:process";

/** One alias: the tunnel it names and the profile that runs it. */
export interface AliasRecord {
  alias: string;
  tunnel_id: string;
  name: string;
  description?: string;
  profile_name?: string;
  profile_dir?: string;
  profile_path?: string;
  health_url_file?: string;
  /** The admin profile the alias's tunnel was found or made with (runtimes' remote calls). */
  admin_profile?: string;
  updated_at?: string;
}

/** The agent a `connect` started for an alias; `mode` is `stopped` once `stop` ended it. */
export interface ProcessRecord {
  alias: string;
  tunnel_id: string;
  config_path: string;
  health_url_file: string;
  target_kind: "server_url" | "command";
  target_value: string;
  command: string;
  started_at: string;
  mode: "process" | "stopped";
  pid?: number;
  log_path?: string;
  profile_name?: string;
  profile_dir?: string;
  profile_path?: string;
}

export class RuntimesError extends Error {
  override name = "RuntimesError";
}

/**
 * The state root: `AIRLOCK_STATE_DIR`, then tunnel-client's `TUNNEL_CLIENT_STATE_DIR`, then
 * `$XDG_STATE_HOME/airlock`, then `~/.local/state/airlock` (`~/Library/Application Support/airlock`
 * on macOS). tunnel-client's own default root is not read: its process ids are tunnel-client's.
 */
export function stateRoot(env: Readonly<Record<string, string | undefined>>, homeDir: string): string {
  for (const name of ["AIRLOCK_STATE_DIR", "TUNNEL_CLIENT_STATE_DIR"]) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  const xdg = env.XDG_STATE_HOME?.trim();
  if (xdg) return join(xdg, "airlock");
  return process.platform === "darwin"
    ? join(homeDir, "Library", "Application Support", "airlock")
    : join(homeDir, ".local", "state", "airlock");
}

/**
 * tunnel-client's `NormalizeAlias`, the one rule for runtime aliases and admin profile names:
 * lower case, `_` and other runs become `-`, no leading/trailing `-`. An empty result is the
 * caller's error to raise (each command names it in its own error type).
 */
export function aliasSlug(alias: string): string {
  return alias
    .trim()
    .toLowerCase()
    .replaceAll("_", "-")
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^-+|-+$/g, "");
}

/** {@link aliasSlug}, refusing an alias with no letter or digit. */
export function normalizeAlias(alias: string): string {
  const normalized = aliasSlug(alias);
  if (!normalized) throw new RuntimesError("alias must contain at least one ASCII letter or number");
  return normalized;
}

/** Seconds-precision UTC, as tunnel-client stamps its records. */
export function utcNow(now = new Date()): string {
  return `${now.toISOString().slice(0, 19)}Z`;
}

export const paths = {
  aliases: (root: string) => join(root, "aliases.yaml"),
  processes: (root: string) => join(root, "processes.yaml"),
  history: (root: string) => join(root, "history.md"),
  healthUrlFile: (root: string, alias: string) => join(root, "health", `${alias}.url`),
  logFile: (root: string, alias: string) => join(root, "logs", `${alias}.log`),
};

export async function ensureDirs(root: string): Promise<void> {
  for (const dir of [root, join(root, "configs"), join(root, "health"), join(root, "logs")])
    await mkdir(dir, { recursive: true, mode: 0o700 });
}

async function loadMap<T>(path: string): Promise<Record<string, T>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return {};
    throw error;
  }
  if (text.trim() === "") return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, T>;
  } catch {
    // Reported below.
  }
  throw new RuntimesError(`${path} is not a JSON map of records; fix or remove it (it is runtimes' own state)`);
}

/** Written whole (a sibling renamed over it), so a concurrent reader never sees half a file. */
async function saveMap(path: string, records: Record<string, unknown>): Promise<void> {
  const sorted = Object.fromEntries(Object.entries(records).sort(([a], [b]) => a.localeCompare(b)));
  await writePrivateFile(path, `${JSON.stringify(sorted, null, 2)}\n`);
}

export const loadAliases = (root: string) => loadMap<AliasRecord>(paths.aliases(root));
export const saveAliases = (root: string, records: Record<string, AliasRecord>) =>
  saveMap(paths.aliases(root), records);
export const loadProcesses = (root: string) => loadMap<ProcessRecord>(paths.processes(root));
export const saveProcesses = (root: string, records: Record<string, ProcessRecord>) =>
  saveMap(paths.processes(root), records);

/** One line per action, for an operator reading what happened to an alias. */
export async function appendHistory(root: string, action: string, alias: string, tunnelId: string, detail = "") {
  const line = `- ${utcNow()} ${action} alias=${alias} tunnel_id=${tunnelId || "-"}${detail ? ` ${detail}` : ""}\n`;
  await appendFile(paths.history(root), line, { mode: 0o600 }).catch(() => {});
}
