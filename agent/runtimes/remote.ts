/**
 * The remote half of `airlock runtimes`, as tunnel-client's runtime manager does it: when
 * `create`/`connect` get no `--tunnel-id`, the alias's tunnel is found or made through the
 * tunnel management API (`airlock admin tunnels`' client and target resolution), and
 * `list --organization-id/--workspace-id/--tenant-id` adds the remote tunnels of that scope.
 *
 * The order is tunnel-client's: a tunnel the alias already names (checked with a GET; one
 * that is gone — 404 — is forgotten), then, with a scope, a tunnel of that scope whose name
 * is the wanted one, then a new tunnel (which needs `--organization-id` or `--workspace-id`).
 *
 * The admin API and key come from an admin profile, as tunnel-client's runtimes settle it:
 * `--admin-profile`, else the one the alias was made with, else TUNNEL_MCP_ADMIN_PROFILE, else
 * `default`; `--admin-key` / `--control-plane-base-url` / `--control-plane-url-path` override
 * its values, and a profile they create or change is saved (and made active) in
 * tunnel-client's admin_profiles.yaml, so the next command finds it without the flags.
 */
import { TunnelList, type Tunnel, type TunnelCreateRequest } from "../../shared/protocol/admin-tunnels.ts";
import { AdminRequestError, adminRequest, type AdminTarget } from "../cli/admin-client.ts";
import {
  ensureStateDirs,
  loadAdminProfiles,
  mergeAdminProfile,
  normalizeProfileName,
  saveAdminProfiles,
  stateRoot as adminStateRoot,
  type AdminProfile,
} from "../cli/admin-profiles-store.ts";
import { DEFAULT_ADMIN_BASE_URL, loadAdminConfig, type AdminConfig } from "../cli/admin-target.ts";
import type { TunnelsArgs } from "../cli/admin-tunnels-args.ts";
import { readTunnel, withTarget } from "../cli/admin-tunnels.ts";
import type { CliIo, ParsedFlags } from "../cli/options.ts";
import { RuntimesError, utcNow } from "./state.ts";

/** What the remote calls read: the runtimes command line and where it runs. */
export interface RemoteContext {
  flags: ParsedFlags;
  io: CliIo;
  homeDir: string;
}

/** runtimes' flags under the names `admin tunnels` reads (`--control-plane-base-url` is its `--control-plane.base-url`). */
function adminArgs(flags: ParsedFlags, profile?: AdminProfile): TunnelsArgs {
  const strings = new Map<string, string>();
  if (profile) {
    strings.set("control-plane.base-url", profile.control_plane_base_url);
    if (profile.control_plane_url_path) strings.set("control-plane.url-path", profile.control_plane_url_path);
    strings.set("admin-key", profile.admin_key);
  }
  const lists = new Map<string, string[]>();
  for (const name of ["organization-id", "workspace-id"]) {
    // pflag's string slices: repeated flags and commas both add ids.
    const ids = (flags.lists.get(name) ?? [])
      .flatMap((v) => v.split(","))
      .map((v) => v.trim())
      .filter(Boolean);
    if (ids.length) lists.set(name, ids);
  }
  return { action: undefined, args: [], strings, lists, bools: new Map(), help: false };
}

/** The admin profile this command uses (see the module comment), saved when the flags create or change it. */
async function runtimeAdminProfile(ctx: RemoteContext, remembered: string | undefined): Promise<AdminProfile> {
  const { env } = ctx.io;
  const root = adminStateRoot(env, ctx.homeDir);
  const name = normalizeProfileName(
    ctx.flags.strings.get("admin-profile")?.trim() || remembered || env.TUNNEL_MCP_ADMIN_PROFILE?.trim() || "default",
  );
  const file = await loadAdminProfiles(root);
  const existing = file.profiles[name];
  const given = {
    baseUrl: ctx.flags.strings.get("control-plane-base-url"),
    urlPath: ctx.flags.strings.get("control-plane-url-path"),
    adminKey: ctx.flags.strings.get("admin-key"),
  };
  const profile = mergeAdminProfile(name, given, existing ?? {}, env, DEFAULT_ADMIN_BASE_URL);
  const changed =
    !existing ||
    (["control_plane_base_url", "control_plane_url_path", "admin_key"] as const).some(
      (key) => (existing[key] ?? "") !== (profile[key] ?? ""),
    );
  if (changed) {
    await ensureStateDirs(root);
    file.profiles[name] = { ...profile, updated_at: utcNow() };
    file.active_profile = name;
    await saveAdminProfiles(root, file);
  }
  return profile;
}

/** Where the admin calls go, and the admin profile that said so. */
async function target(
  ctx: RemoteContext,
  remembered?: string,
): Promise<{ config: AdminConfig; profile: AdminProfile }> {
  try {
    const profile = await runtimeAdminProfile(ctx, remembered);
    const config = await loadAdminConfig(adminArgs(ctx.flags, profile), ctx.io.env, ctx.io.cwd, ctx.homeDir);
    return { config, profile };
  } catch (error) {
    throw new RuntimesError((error as Error).message);
  }
}

/**
 * Run one management call; its failure becomes the runtimes command's error (exit 1), worded
 * as `admin tunnels` words it. `undefined` for a 404 when `notFound` is "undefined".
 */
async function call<T>(
  config: AdminConfig,
  body: (target: AdminTarget) => Promise<T>,
  notFound: "error" | "undefined" = "error",
): Promise<T | undefined> {
  try {
    return await withTarget(config, body);
  } catch (error) {
    if (notFound === "undefined" && error instanceof AdminRequestError && error.statusCode === 404) return undefined;
    throw new RuntimesError((error as Error).message);
  }
}

const NEEDS_SCOPE =
  "creating a tunnel requires --organization-id or --workspace-id (or pass --tunnel-id to attach to an existing tunnel)";

/** tunnel-client's list scope rule: exactly one family, and one id of it. */
export function listScope(flags: ParsedFlags): URLSearchParams | undefined {
  const args = adminArgs(flags);
  const organizations = args.lists.get("organization-id") ?? [];
  const workspaces = args.lists.get("workspace-id") ?? [];
  const tenant = flags.strings.get("tenant-id")?.trim() ?? "";
  const families = [organizations.length > 0, workspaces.length > 0, tenant !== ""].filter(Boolean).length;
  if (families === 0) return undefined;
  if (families > 1)
    throw new RuntimesError(
      "runtimes list accepts exactly one remote scope family: --organization-id, --workspace-id, or --tenant-id",
    );
  if (organizations.length > 1)
    throw new RuntimesError("runtimes list accepts at most one --organization-id for remote listing");
  if (workspaces.length > 1)
    throw new RuntimesError("runtimes list accepts at most one --workspace-id for remote listing");
  const query = new URLSearchParams();
  if (organizations[0]) query.set("organization_id", organizations[0]);
  if (workspaces[0]) query.set("workspace_id", workspaces[0]);
  if (tenant) query.set("tenant_id", tenant);
  return query;
}

/** The tunnels of one scope (`GET /v1/tunnels?organization_id=…`). */
export async function listRemoteTunnels(ctx: RemoteContext, query: URLSearchParams): Promise<Tunnel[]> {
  return listTunnels((await target(ctx)).config, query);
}

async function listTunnels(config: AdminConfig, query: URLSearchParams): Promise<Tunnel[]> {
  const answer = await call(config, (t) => adminRequest(t, "GET", { query }));
  const parsed = TunnelList.safeParse(answer?.data ?? {});
  if (!parsed.success) throw new RuntimesError('decode response: the tunnel list is not {"tunnels": […]}');
  return parsed.data.tunnels ?? [];
}

/**
 * The tunnel for `alias`: the one it already names (`known`), else one of the given scope
 * named `--name` (default: the alias), else a new one; with the admin profile used.
 */
export async function resolveAliasTunnel(
  ctx: RemoteContext,
  alias: string,
  known: { tunnelId?: string; adminProfile?: string } = {},
): Promise<{ tunnel: Tunnel; adminProfile: string }> {
  const knownId = known.tunnelId;
  const scoped = ["organization-id", "workspace-id"].some((name) => adminArgs(ctx.flags).lists.has(name));
  // Said before the admin key is looked for: without a scope there is nothing to look up or create.
  if (!knownId && !scoped) throw new RuntimesError(NEEDS_SCOPE);
  const { config, profile } = await target(ctx, known.adminProfile);
  const found = (tunnel: Tunnel) => ({ tunnel, adminProfile: profile.name });
  if (knownId) {
    const suffix = `/${encodeURIComponent(knownId)}`;
    const answer = await call(config, (t) => adminRequest(t, "GET", { suffix }), "undefined");
    // undefined: the tunnel was deleted at the control plane, so the alias is stale; look further (as tunnel-client).
    if (answer) return found(readTunnel(answer.data, answer.requestId));
  }
  const name = ctx.flags.strings.get("name")?.trim() || alias;
  const { organizationIds, workspaceIds } = config;
  if (organizationIds.length === 0 && workspaceIds.length === 0) throw new RuntimesError(NEEDS_SCOPE);
  const query = new URLSearchParams();
  if (organizationIds[0]) query.set("organization_id", organizationIds[0]);
  else query.set("workspace_id", workspaceIds[0]!);
  const existing = (await listTunnels(config, query)).find((tunnel) => tunnel.name === name);
  if (existing) return found(existing);
  const body: TunnelCreateRequest = {
    name,
    description: ctx.flags.strings.get("description")?.trim() || `MCP tunnel for ${alias}`,
  };
  if (workspaceIds.length) body.workspace_ids = workspaceIds;
  if (organizationIds.length) body.organization_ids = organizationIds;
  const answer = await call(config, (t) => adminRequest(t, "POST", { body }));
  return found(readTunnel(answer?.data, answer?.requestId ?? ""));
}
