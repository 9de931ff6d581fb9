/**
 * `airlock admin tunnels create|get|list|update|delete`: tunnel-client's tunnel management
 * commands, same flags, environment, output and exit status (0 done, 1 anything else), against
 * OpenAI's admin API or, with `--hub URL --token REF`, an Airlock hub (docs/admin.md).
 */
import {
  CreatedTunnelSecrets,
  Tunnel,
  TunnelList,
  type TunnelCreateRequest,
  type TunnelUpdateRequest,
} from "../../shared/protocol/admin-tunnels.ts";
import { createHttpClient } from "../runtime/http-client.ts";
import { AdminRequestError, adminRequest, type AdminTarget } from "./admin-client.ts";
import { AdminConfigError, loadAdminConfig, loadReadOnlyConfig, type AdminConfig } from "./admin-target.ts";
import {
  checkTunnelsArgs,
  parseTunnelsArgs,
  TunnelsUsageError,
  UnknownAdminCommand,
  type TunnelsArgs,
} from "./admin-tunnels-args.ts";
import { strictConfigFromEnv } from "../config/values.ts";
import { goJson } from "./go-json.ts";
import type { CliIo } from "./options.ts";

const READY_DELAY_NOTE = "Note: wait 25-30 seconds before expecting a newly created tunnel to be active and ready.";

export const TUNNELS_HELP = `Inspect or manage tunnels via the control-plane API (tunnel-client's admin tunnels).

usage:
  airlock admin tunnels create --name NAME --description TEXT [--organization-id ID]… [--workspace-id ID]…
  airlock admin tunnels get <tunnel_id>
  airlock admin tunnels list (--organization-id ID | --workspace-id ID | --tenant-id ID)
  airlock admin tunnels update <tunnel_id> [--name NAME] [--description TEXT] [--organization-id ID]… [--workspace-id ID]…
  airlock admin tunnels delete <tunnel_id> --confirm

OpenAI (default): https://api.openai.com/v1/tunnels with an admin key.
  --admin-key env:NAME|file:/path   admin API key (default: OPENAI_ADMIN_KEY); get also takes the
                                    runtime key (CONTROL_PLANE_API_KEY / OPENAI_API_KEY)
  --control-plane.base-url URL      (CONTROL_PLANE_BASE_URL)    --control-plane.url-path PATH (CONTROL_PLANE_URL_PATH)
  --ca-bundle PATH                  extra trusted CAs, PEM (CA_BUNDLE)
  --admin-profile NAME              (Airlock) base URL, URL path and key reference from airlock admin-profiles
  list, create, update and delete need Tunnels Read and Manage; create needs an org or workspace id,
  list exactly one filter. A created tunnel is active after 25-30 seconds.

Airlock hub: add --hub URL --token env:NAME|file:/path (the hub's admin token, AIRLOCK_ADMIN_TOKEN_SHA256).
  create answers the new tunnel's agent key and client token once; list without a filter lists all;
  tunnels of the hub's AIRLOCK_TUNNELS are listed read-only.

  --json   print JSON (errors too, as {"error":{…}} on stdout)
Exit status: 0 done, 1 anything else (as tunnel-client).
`;

/** One tunnel's fields in tunnel-client's JSON order, empties left out as Go's `omitempty` does. */
function tunnelJson(tunnel: Tunnel, extra: Record<string, string> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { id: tunnel.id, name: tunnel.name, description: tunnel.description };
  if (tunnel.creator) out.creator = tunnel.creator;
  if (tunnel.tenant_ids) out.tenant_ids = tunnel.tenant_ids;
  if (tunnel.workspace_ids) out.workspace_ids = tunnel.workspace_ids;
  if (tunnel.organization_ids) out.organization_ids = tunnel.organization_ids;
  if (tunnel.request_id) out.request_id = tunnel.request_id;
  if (tunnel.source) out.source = tunnel.source;
  if (tunnel.created_at) out.created_at = tunnel.created_at;
  return { ...out, ...extra };
}

/** tunnel-client's text block for one tunnel, plus the hub's read-only marker. */
function tunnelText(tunnel: Tunnel): string {
  const lines = [`Tunnel ${tunnel.id}`, `  Name: ${tunnel.name}`, `  Description: ${tunnel.description}`];
  if (tunnel.creator) lines.push(`  Creator: ${tunnel.creator}`);
  lines.push(`  Organizations: ${(tunnel.organization_ids ?? []).join(", ")}`);
  lines.push(`  Workspaces: ${(tunnel.workspace_ids ?? []).join(", ")}`);
  if (tunnel.tenant_ids) lines.push(`  Tenants: ${tunnel.tenant_ids.join(", ")}`);
  if (tunnel.source === "static") lines.push("  Source: static (the hub's AIRLOCK_TUNNELS; read-only here)");
  return `${lines.join("\n")}\n`;
}

/** A tunnel from an answer body, with the answer's request id. */
export function readTunnel(data: unknown, requestId: string): Tunnel {
  const parsed = Tunnel.safeParse(data ?? {});
  if (!parsed.success) throw new Error(`decode response: ${parsed.error.issues[0]?.message ?? "unexpected body"}`);
  return { ...parsed.data, ...(requestId ? { request_id: requestId } : {}) };
}

interface Run {
  flags: TunnelsArgs;
  io: CliIo;
  json: boolean;
}

/** Run `body` against the resolved target with a CA-aware HTTP client, closed afterwards. */
export async function withTarget<T>(config: AdminConfig, body: (target: AdminTarget) => Promise<T>): Promise<T> {
  const http = createHttpClient(config.caBundle ? { caFile: config.caBundle } : {});
  try {
    await http.ready().catch((error: Error) => {
      throw new AdminConfigError(`invalid ca-bundle "${config.caBundle}": ${error.message}`);
    });
    return await body({
      base: config.base,
      urlPath: config.urlPath,
      route: config.route,
      key: config.key,
      fetch: http.fetch,
    });
  } finally {
    await http.close();
  }
}

function printTunnel(run: Run, tunnel: Tunnel, extra: Record<string, string> = {}): void {
  run.io.stdout(run.json ? goJson(tunnelJson(tunnel, extra)) : tunnelText(tunnel));
}

async function create(run: Run): Promise<void> {
  const name = run.flags.strings.get("name") ?? "";
  const description = run.flags.strings.get("description") ?? "";
  if (name.trim() === "") throw new AdminConfigError("name is required (set --name)");
  if (description.trim() === "") throw new AdminConfigError("description is required (set --description)");
  const config = await loadAdminConfig(run.flags, run.io.env, run.io.cwd, run.io.homeDir);
  // The hub has no organizations or workspaces to attach to; there they are optional labels.
  if (!config.hub && config.organizationIds.length === 0 && config.workspaceIds.length === 0)
    throw new AdminConfigError("at least one of --organization-id or --workspace-id is required");
  const body: TunnelCreateRequest = { name, description };
  if (config.workspaceIds.length) body.workspace_ids = config.workspaceIds;
  if (config.organizationIds.length) body.organization_ids = config.organizationIds;
  const answer = await withTarget(config, (target) => adminRequest(target, "POST", { body }));
  const tunnel = readTunnel(answer.data, answer.requestId);
  if (!config.hub) {
    printTunnel(run, tunnel);
    if (!run.json) run.io.stdout(`${READY_DELAY_NOTE}\n`);
    return;
  }
  const secrets = CreatedTunnelSecrets.safeParse(answer.data);
  if (!secrets.success) throw new Error("decode response: the hub sent no agent_key/client_token for the new tunnel");
  printTunnel(run, tunnel, secrets.data);
  if (!run.json) run.io.stdout(secretsText(config.base, tunnel.id, secrets.data));
}

/** The hub's new credentials, once, with where each one goes. */
function secretsText(hub: URL, id: string, secrets: CreatedTunnelSecrets): string {
  return [
    `  Agent key: ${secrets.agent_key}`,
    `  Client token: ${secrets.client_token}`,
    "Shown once: the hub keeps only their SHA-256. The tunnel is ready now.",
    `  agents:      --control-plane.base-url ${hub.origin} --control-plane.tunnel-id ${id}`,
    "               --control-plane.api-key env:NAME (NAME holding the agent key)",
    `  MCP clients: ${new URL(`v1/mcp/${id}`, hub).href} with Authorization: Bearer <client token>`,
    "",
  ].join("\n");
}

async function get(run: Run): Promise<void> {
  const config = await loadReadOnlyConfig(run.flags, run.io.env, run.io.cwd, run.io.homeDir);
  const id = run.flags.args[0]!;
  if (id === "") throw new AdminConfigError("tunnel id is required");
  const answer = await withTarget(config, (target) =>
    adminRequest(target, "GET", { suffix: `/${encodeURIComponent(id)}` }),
  );
  printTunnel(run, readTunnel(answer.data, answer.requestId));
}

async function list(run: Run): Promise<void> {
  const config = await loadAdminConfig(run.flags, run.io.env, run.io.cwd, run.io.homeDir);
  const tenant = run.flags.strings.get("tenant-id") ?? "";
  const filters = [config.organizationIds.length > 0, config.workspaceIds.length > 0, tenant !== ""].filter(Boolean);
  // OpenAI wants the scope explicit; a hub lists all its tunnels without one.
  if (filters.length > 1 || (filters.length === 0 && !config.hub))
    throw new AdminConfigError("provide exactly one of --organization-id, --workspace-id, or --tenant-id");
  const query = new URLSearchParams();
  if (config.organizationIds[0]) query.set("organization_id", config.organizationIds[0]);
  if (config.workspaceIds[0]) query.set("workspace_id", config.workspaceIds[0]);
  if (tenant) query.set("tenant_id", tenant);
  const answer = await withTarget(config, (target) => adminRequest(target, "GET", { query }));
  const parsed = TunnelList.safeParse(answer.data ?? {});
  if (!parsed.success) throw new Error(`decode response: ${parsed.error.issues[0]?.message ?? "unexpected body"}`);
  const tunnels = parsed.data.tunnels;
  if (run.json) {
    const out: Record<string, unknown> = { tunnels: tunnels?.map((tunnel) => tunnelJson(tunnel)) ?? null };
    if (answer.requestId) out.request_id = answer.requestId;
    run.io.stdout(goJson(out));
    return;
  }
  for (const tunnel of tunnels ?? []) run.io.stdout(tunnelText(tunnel));
}

async function update(run: Run): Promise<void> {
  const config = await loadAdminConfig(run.flags, run.io.env, run.io.cwd, run.io.homeDir);
  const { strings, lists } = run.flags;
  const body: TunnelUpdateRequest = {};
  if (strings.has("name")) body.name = strings.get("name")!.trim();
  if (strings.has("description")) body.description = strings.get("description")!;
  if (lists.has("organization-id")) body.organization_ids = config.organizationIds;
  if (lists.has("workspace-id")) body.workspace_ids = config.workspaceIds;
  if (Object.keys(body).length === 0) throw new AdminConfigError("provide at least one field to update");
  const id = run.flags.args[0]!;
  const answer = await withTarget(config, (target) =>
    adminRequest(target, "POST", { suffix: `/${encodeURIComponent(id)}`, body }),
  );
  printTunnel(run, readTunnel(answer.data, answer.requestId));
}

async function remove(run: Run): Promise<void> {
  if (!run.flags.bools.get("confirm")) throw new AdminConfigError("refusing to delete without --confirm");
  const config = await loadAdminConfig(run.flags, run.io.env, run.io.cwd, run.io.homeDir);
  const id = run.flags.args[0]!;
  const answer = await withTarget(config, (target) =>
    adminRequest(target, "DELETE", { suffix: `/${encodeURIComponent(id)}` }),
  );
  printTunnel(run, readTunnel(answer.data, answer.requestId));
}

const ACTIONS = { create, get, list, update, delete: remove } as const;

/** tunnel-client's `--json` error: `{"error":{message, method, path, status_code, …}}` on stdout, keys sorted as Go maps are. */
function jsonError(error: Error): string {
  const detail: Record<string, unknown> = { message: error.message };
  if (error instanceof AdminRequestError) {
    Object.assign(detail, { method: error.method, path: error.path, status_code: error.statusCode });
    if (error.requestId) detail.request_id = error.requestId;
    if (error.info.code) detail.code = error.info.code;
    if (error.info.type) detail.type = error.info.type;
    if (error.info.mitigation) detail.mitigation = error.info.mitigation;
  }
  const sorted = Object.fromEntries(Object.entries(detail).sort(([a], [b]) => (a < b ? -1 : 1)));
  return goJson({ error: sorted });
}

/** `airlock admin tunnels …` (argv: the words after `admin`). */
export async function tunnelsMain(argv: string[], io: CliIo): Promise<number> {
  let flags: TunnelsArgs;
  try {
    flags = parseTunnelsArgs(argv);
    if (flags.help || !flags.action) {
      // tunnel-client prints help, exit 0, for `admin tunnels` with no or an unknown action.
      if (flags.unknownAction) io.stderr(`unknown command "${flags.unknownAction}" for "airlock admin tunnels"\n`);
      io.stdout(TUNNELS_HELP);
      return 0;
    }
    checkTunnelsArgs(flags);
  } catch (error) {
    if (!(error instanceof TunnelsUsageError)) throw error;
    io.stderr(`${error.message}\n`);
    // tunnel-client shows the help and exits 0; AIRLOCK_STRICT_CONFIG makes a typo fail the script instead.
    if (error instanceof UnknownAdminCommand && !strictConfigFromEnv(io.env)) {
      io.stdout(TUNNELS_HELP);
      return 0;
    }
    return 1;
  }
  const run: Run = { flags, io, json: flags.bools.get("json") ?? false };
  try {
    await ACTIONS[flags.action](run);
    return 0;
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error));
    if (run.json) io.stdout(jsonError(failure));
    else io.stderr(`${failure.message}\n`);
    return 1;
  }
}
