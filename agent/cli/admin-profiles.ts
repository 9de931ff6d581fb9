/**
 * `airlock admin-profiles list|set|activate|delete`: tunnel-client's saved admin profiles
 * (agent/cli/admin-profiles-store.ts), same file, flags, output and exit status (0 done,
 * 1 anything else). A profile keeps an admin key *reference*; `set` refuses anything else.
 * `airlock admin tunnels --admin-profile NAME` uses one (tunnel-client's runtimes do).
 */
import { homedir } from "node:os";
import { parseArgv, type FlagKind } from "../config/argv.ts";
import {
  AdminProfilesError,
  adminProfilesPath,
  ensureStateDirs,
  loadAdminProfiles,
  mergeAdminProfile,
  normalizeProfileName,
  profileUsers,
  saveAdminProfiles,
  stateRoot,
  type AdminProfile,
  type AdminProfilesFile,
} from "./admin-profiles-store.ts";
import { DEFAULT_ADMIN_BASE_URL } from "./admin-target.ts";
import { goBool } from "./admin-tunnels-args.ts";
import { goJson } from "./go-json.ts";
import { processIo, type CliIo } from "./options.ts";

const HELP = `Manage tunnel-client admin profiles: saved control-plane URLs and admin key references.

usage:
  airlock admin-profiles list [--json]
  airlock admin-profiles set <name> [--control-plane-base-url URL] [--control-plane-url-path PATH]
                                   [--admin-key env:NAME|file:/path] [--activate=false] [--json]
  airlock admin-profiles activate <name> [--json]
  airlock admin-profiles delete <name> [--json]

Stored with tunnel-client's, in <state dir>/admin_profiles.yaml (TUNNEL_CLIENT_STATE_DIR, else
~/.local/state/tunnel-client); the key is kept as its env:/file: reference, never the key.
set defaults: base URL CONTROL_PLANE_BASE_URL or https://api.openai.com, key env:OPENAI_ADMIN_KEY.
Use one with: airlock admin tunnels … --admin-profile NAME.
Exit status: 0 done, 1 anything else (as tunnel-client).
`;

const FLAGS: Record<string, FlagKind> = {
  json: "bool",
  "control-plane-base-url": "string",
  "control-plane-url-path": "string",
  "admin-key": "string",
  activate: "bool",
};
const SET_ONLY = new Set(["control-plane-base-url", "control-plane-url-path", "admin-key", "activate"]);

/** What a profile looks like in output: tunnel-client's `AdminProfileResult`, in its field order. */
function result(profile: AdminProfile, path: string, active: boolean): Record<string, unknown> {
  return {
    name: profile.name,
    control_plane_base_url: profile.control_plane_base_url,
    ...(profile.control_plane_url_path ? { control_plane_url_path: profile.control_plane_url_path } : {}),
    admin_key: profile.admin_key,
    ...(profile.updated_at ? { updated_at: profile.updated_at } : {}),
    path,
    active,
  };
}

/** RFC 3339 UTC, whole seconds (tunnel-client's `UTCNow`). */
function utcNow(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

interface Context {
  io: CliIo;
  root: string;
  path: string;
  json: boolean;
  strings: Map<string, string>;
  bools: Map<string, boolean>;
}

async function list(ctx: Context): Promise<void> {
  const file = await loadAdminProfiles(ctx.root);
  const names = Object.keys(file.profiles).sort();
  if (ctx.json) {
    const profiles = names.map((name) => result(file.profiles[name]!, ctx.path, file.active_profile === name));
    ctx.io.stdout(goJson({ active_profile: file.active_profile, path: ctx.path, profiles, state_root: ctx.root }));
    return;
  }
  if (names.length === 0) {
    ctx.io.stdout(`No admin profiles found in ${ctx.path}\n`);
    return;
  }
  for (const name of names) {
    const active = file.active_profile === name ? "\t(active)" : "";
    ctx.io.stdout(`${file.profiles[name]!.name}\t${file.profiles[name]!.control_plane_base_url}${active}\n`);
  }
}

async function set(ctx: Context, name: string): Promise<void> {
  await ensureStateDirs(ctx.root);
  const key = normalizeProfileName(name);
  const file = await loadAdminProfiles(ctx.root);
  const existing: Partial<AdminProfile> = file.profiles[key] ?? {};
  const given = {
    baseUrl: ctx.strings.get("control-plane-base-url"),
    urlPath: ctx.strings.get("control-plane-url-path"),
    adminKey: ctx.strings.get("admin-key"),
  };
  const profile: AdminProfile = {
    ...mergeAdminProfile(key, given, existing, ctx.io.env, DEFAULT_ADMIN_BASE_URL),
    updated_at: utcNow(),
  };
  file.profiles[key] = profile;
  if ((ctx.bools.get("activate") ?? true) || file.active_profile === "") file.active_profile = key;
  await saveAdminProfiles(ctx.root, file);
  if (ctx.json) {
    const shown = result(profile, ctx.path, file.active_profile === key);
    ctx.io.stdout(goJson(envelope(file, ctx, { profile: shown })));
    return;
  }
  ctx.io.stdout(`Saved admin profile ${key} (${profile.control_plane_base_url})\n`);
}

/** The fields every answer but `list` shares, merged and sorted by key as Go's map encoder does. */
function envelope(file: AdminProfilesFile, ctx: Context, extra: Record<string, unknown>): Record<string, unknown> {
  const all: Record<string, unknown> = {
    active_profile: file.active_profile,
    path: ctx.path,
    state_root: ctx.root,
    ...extra,
  };
  return Object.fromEntries(Object.entries(all).sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function known(ctx: Context, name: string): Promise<{ file: AdminProfilesFile; key: string }> {
  const file = await loadAdminProfiles(ctx.root);
  const key = normalizeProfileName(name);
  if (!file.profiles[key]) throw new AdminProfilesError(`admin profile ${key} is not known`);
  return { file, key };
}

async function activate(ctx: Context, name: string): Promise<void> {
  const { file, key } = await known(ctx, name);
  file.active_profile = key;
  await saveAdminProfiles(ctx.root, file);
  if (ctx.json) {
    ctx.io.stdout(goJson(envelope(file, ctx, { profile: result(file.profiles[key]!, ctx.path, true) })));
    return;
  }
  ctx.io.stdout(`Activated admin profile ${key}\n`);
}

async function remove(ctx: Context, name: string): Promise<void> {
  const { file, key } = await known(ctx, name);
  const user = await profileUsers(ctx.root, key);
  if (user) throw new AdminProfilesError(`admin profile ${key} is still referenced by ${user}`);
  delete file.profiles[key];
  if (file.active_profile === key) file.active_profile = Object.keys(file.profiles).sort()[0] ?? "";
  await saveAdminProfiles(ctx.root, file);
  if (ctx.json) {
    ctx.io.stdout(goJson(envelope(file, ctx, { deleted_profile: key })));
    return;
  }
  ctx.io.stdout(`Deleted admin profile ${name}\n`);
}

const ACTIONS = { list, set, activate, delete: remove } as const;

/** Parse as cobra would; a mistake is a message (exit 1). */
function parse(
  argv: string[],
): { action?: keyof typeof ACTIONS; args: string[]; ctx: Omit<Context, "io" | "root" | "path"> } | string {
  const parsed = parseArgv(argv, new Map(Object.entries(FLAGS)));
  const [word, ...args] = parsed.positionals;
  const action = word !== undefined && word in ACTIONS ? (word as keyof typeof ACTIONS) : undefined;
  const unknown = parsed.unknown[0]?.flag ?? [...parsed.values.keys()].find((n) => SET_ONLY.has(n) && action !== "set");
  if (unknown) return `unknown flag: ${unknown.startsWith("-") ? unknown : `--${unknown}`}`;
  const missing = parsed.problems[0]?.match(/^--(\S+) needs a value/);
  if (missing) return `flag needs an argument: --${missing[1]}`;
  const strings = new Map<string, string>();
  const bools = new Map<string, boolean>();
  for (const [name, values] of parsed.values) {
    const last = values.at(-1)!;
    if (FLAGS[name] !== "bool") strings.set(name, last);
    else {
      try {
        bools.set(name, goBool(name, last));
      } catch (error) {
        return (error as Error).message;
      }
    }
  }
  if (action && action !== "list" && args.length !== 1) return `accepts 1 arg(s), received ${args.length}`;
  return {
    ...(action && !parsed.help ? { action } : {}),
    args,
    ctx: { json: bools.get("json") ?? false, strings, bools },
  };
}

/** `airlock admin-profiles …`. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const parsed = parse(argv);
  if (typeof parsed === "string") {
    io.stderr(`${parsed}\n`);
    return 1;
  }
  if (!parsed.action) {
    io.stdout(HELP);
    return 0;
  }
  const root = stateRoot(io.env, io.homeDir ?? homedir());
  const ctx: Context = { ...parsed.ctx, io, root, path: adminProfilesPath(root) };
  try {
    await ACTIONS[parsed.action](ctx, parsed.args[0]!);
    return 0;
  } catch (error) {
    io.stderr(`${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
