/**
 * `airlock runtimes create|connect|list|status|stop|rm|cleanup`: tunnel-client's natively
 * supervised runtimes. An alias names a tunnel; `connect` writes the alias's profile and starts
 * `airlock run` for it in the background (agent/runtimes/supervise.ts), `status` reads the pid
 * and the runtime's own `/healthz` and `/readyz`, `stop` ends it, `rm` forgets it, `cleanup`
 * finds aliases whose runtime and profile are gone. State lives in tunnel-client's layout
 * (agent/runtimes/state.ts). Without `--tunnel-id`, `create`/`connect` find or create the
 * alias's tunnel through the admin API, and `list --organization-id|--workspace-id|--tenant-id`
 * adds that scope's tunnels, as tunnel-client (agent/runtimes/remote.ts).
 * Output and exit codes are tunnel-client's: 0 done, 1 an error, 2 a runtime that did not
 * come up or would not stop.
 */
import { mkdir, rm, stat } from "node:fs/promises";
import { writePrivateFile } from "../runtime/private-file.ts";
import { homedir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { profileDirs } from "../config/profiles.ts";
import {
  appendHistory,
  ensureDirs,
  loadAliases,
  loadProcesses,
  normalizeAlias,
  paths,
  RuntimesError,
  saveAliases,
  saveProcesses,
  stateRoot,
  utcNow,
  type AliasRecord,
  type ProcessRecord,
} from "../runtimes/state.ts";
import {
  launchAgent,
  logTail,
  pidAlive,
  probeHealth,
  runtimeProfile,
  runtimeState,
  terminate,
  waitForHealth,
  type Target,
} from "../runtimes/supervise.ts";
import { listRemoteTunnels, listScope, resolveAliasTunnel } from "../runtimes/remote.ts";
import type { Tunnel } from "../../shared/protocol/admin-tunnels.ts";
import { defineCommand, UsageError } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

/** tunnel-client's default key reference for the runtimes it writes. */
const DEFAULT_KEY_REF = "env:CONTROL_PLANE_API_KEY";
const TUNNEL_ID = /^tunnel_[a-z0-9]{32}$/;
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** How long `connect` waits for the runtime's `/healthz` before reporting it did not come up. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

const FLAGS: Record<string, FlagSpec> = {
  alias: { kind: "string", value: "ALIAS", help: "create/connect: the alias (letters, digits, '-')" },
  "tunnel-id": {
    kind: "string",
    value: "ID",
    help: "create/connect: the tunnel the alias names (without it: the alias's tunnel, one of the scope with its name, or a new one, through the admin API)",
  },
  name: { kind: "string", value: "NAME", help: "create/connect: a display name for the alias" },
  description: { kind: "string", value: "TEXT", help: "create/connect: a description" },
  "mcp-server-url": { kind: "string", value: "URL", help: "connect: the MCP server (Streamable HTTP)" },
  "mcp-command": { kind: "string", value: "CMD", help: "connect: a stdio MCP server command" },
  "runtime-api-key": {
    kind: "string",
    value: "REF",
    help: `connect: the agent's key as env:NAME or file:PATH (default ${DEFAULT_KEY_REF})`,
  },
  profile: { kind: "string", value: "NAME", help: "connect: profile name to write and run (default: the alias)" },
  "profile-dir": { kind: "string", value: "DIR", help: "connect: where the profile is written" },
  "control-plane-base-url": { kind: "string", value: "URL", help: "connect: the control plane (default OpenAI's)" },
  "control-plane-url-path": { kind: "string", value: "PATH", help: "connect: a path appended to the base URL" },
  "tunnel-client-bin": { kind: "string", value: "PATH", help: "accepted for compatibility; this airlock runs" },
  "admin-profile": {
    kind: "string",
    value: "NAME",
    help: "admin API calls: a saved admin profile (airlock admin-profiles)",
  },
  "admin-key": {
    kind: "string",
    value: "REF",
    help: "admin API calls: the admin key as env:NAME or file:PATH (default OPENAI_ADMIN_KEY)",
  },
  "organization-id": {
    kind: "string",
    value: "ID",
    repeatable: true,
    help: "create/connect/list: organization scope at the admin API",
  },
  "workspace-id": {
    kind: "string",
    value: "ID",
    repeatable: true,
    help: "create/connect/list: workspace scope at the admin API",
  },
  "tenant-id": { kind: "string", value: "ID", help: "list: tenant scope at the admin API" },
  apply: { kind: "bool", help: "cleanup: remove the entries classified stale_alias" },
  json: { kind: "bool", help: "print JSON" },
};

export const main = defineCommand({
  name: "runtimes",
  synopsis:
    "airlock runtimes (create | connect | list | status ALIAS | stop ALIAS | rm ALIAS | cleanup [--apply]) [flags]",
  description:
    "Natively supervised agents, as tunnel-client's runtimes: `connect --alias A [--tunnel-id ID | --organization-id ORG] " +
    "(--mcp-server-url URL | --mcp-command CMD)` writes A's profile and runs `airlock run` for it in the background; " +
    "`status` shows its state (stopped, starting, healthy, ready), `stop` ends it, `rm` forgets it, `cleanup` lists stale " +
    "aliases. Without --tunnel-id the alias's tunnel is found or created through the admin API (--admin-key, " +
    "--admin-profile or OPENAI_ADMIN_KEY); `list --organization-id ID` adds that scope's tunnels.",
  flags: FLAGS,
  // tunnel-client (cobra) exits 1 on any error.
  usageExit: 1,
  run: runtimes,
});

type Payload = Record<string, unknown>;
/** What a subcommand returns: its JSON payload, the human line(s), and the exit code. */
interface Outcome {
  payload: Payload;
  text: string;
  code: number;
}

interface Context {
  root: string;
  flags: ParsedFlags;
  io: CliIo;
  homeDir: string;
}

async function runtimes(flags: ParsedFlags, io: CliIo): Promise<number> {
  const [sub, ...args] = flags.positionals;
  const homeDir = io.homeDir ?? io.env.HOME ?? homedir();
  const ctx: Context = { root: stateRoot(io.env, homeDir), flags, io, homeDir };
  const handlers: Record<string, (alias: string | undefined) => Promise<Outcome>> = {
    create: () => create(ctx),
    connect: () => connect(ctx),
    list: () => list(ctx),
    cleanup: () => cleanup(ctx),
    status: (alias) => status(ctx, aliasArg(alias, "status")),
    stop: (alias) => stop(ctx, aliasArg(alias, "stop")),
    disconnect: (alias) => stop(ctx, aliasArg(alias, "stop")),
    rm: (alias) => remove(ctx, aliasArg(alias, "rm")),
    remove: (alias) => remove(ctx, aliasArg(alias, "rm")),
  };
  const handler = sub === undefined ? undefined : handlers[sub];
  if (!handler)
    throw new UsageError(
      `unknown runtimes command ${sub === undefined ? "(none)" : `"${sub}"`}; use create, connect, list, status, stop, rm or cleanup`,
    );
  const takesAlias = ["status", "stop", "disconnect", "rm", "remove"].includes(sub!);
  if (args.length > (takesAlias ? 1 : 0)) throw new UsageError(`unexpected argument "${args.at(-1)}"`);
  let outcome: Outcome;
  try {
    outcome = await handler(args[0]);
  } catch (error) {
    if (!(error instanceof RuntimesError)) throw error;
    io.stderr(`airlock runtimes ${sub}: ${error.message}\n`);
    return 1;
  }
  io.stdout(flags.bools.has("json") ? `${JSON.stringify(outcome.payload, null, 2)}\n` : outcome.text);
  return outcome.code;
}

function aliasArg(alias: string | undefined, command: string): string {
  if (alias === undefined)
    throw new UsageError(`runtimes ${command} takes the alias: airlock runtimes ${command} ALIAS`);
  return alias;
}

/**
 * The alias a `create`/`connect` names, and its tunnel: `--tunnel-id` as given, or, as
 * tunnel-client, found or created through the tunnel management API (agent/runtimes/remote.ts).
 */
async function aliasAndTunnel(
  ctx: Context,
  command: string,
): Promise<{ alias: string; tunnelId: string; tunnel?: Tunnel; remote: Partial<AliasRecord> }> {
  const raw = ctx.flags.strings.get("alias");
  if (raw === undefined) throw new UsageError(`runtimes ${command} needs --alias`);
  const tunnelId = ctx.flags.strings.get("tunnel-id")?.trim();
  if (!tunnelId) {
    const alias = normalizeAlias(raw);
    const record = (await loadAliases(ctx.root))[alias];
    const { tunnel, adminProfile } = await resolveAliasTunnel(ctx, alias, {
      ...(record?.tunnel_id ? { tunnelId: record.tunnel_id } : {}),
      ...(record?.admin_profile ? { adminProfile: record.admin_profile } : {}),
    });
    if (!TUNNEL_ID.test(tunnel.id))
      throw new RuntimesError(`the control plane answered with "${tunnel.id}", which is not a tunnel id`);
    return { alias, tunnelId: tunnel.id, tunnel, remote: { admin_profile: adminProfile } };
  }
  if (!TUNNEL_ID.test(tunnelId))
    throw new RuntimesError(
      `--tunnel-id "${tunnelId}" is not a tunnel id (tunnel_ followed by 32 lowercase characters)`,
    );
  return { alias: normalizeAlias(raw), tunnelId, remote: {} };
}

function aliasRecord(
  ctx: Context,
  alias: string,
  tunnelId: string,
  extra: Partial<AliasRecord> = {},
  tunnel?: Tunnel,
): AliasRecord {
  const description = tunnel?.description ?? ctx.flags.strings.get("description");
  return {
    alias,
    tunnel_id: tunnelId,
    name: tunnel?.name ?? ctx.flags.strings.get("name") ?? alias,
    ...(description ? { description } : {}),
    ...extra,
    updated_at: utcNow(),
  };
}

async function create(ctx: Context): Promise<Outcome> {
  const { alias, tunnelId, tunnel, remote } = await aliasAndTunnel(ctx, "create");
  await ensureDirs(ctx.root);
  const aliases = await loadAliases(ctx.root);
  aliases[alias] = { ...aliases[alias], ...aliasRecord(ctx, alias, tunnelId, remote, tunnel) };
  await saveAliases(ctx.root, aliases);
  await appendHistory(ctx.root, "create", alias, tunnelId);
  return {
    payload: {
      alias,
      tunnel: tunnel ?? { id: tunnelId, name: aliases[alias]!.name },
      ...remote,
      state_root: ctx.root,
    },
    text: `Created alias ${alias} for tunnel ${tunnelId}\n`,
    code: 0,
  };
}

function connectTarget(flags: ParsedFlags): Target {
  const url = flags.strings.get("mcp-server-url")?.trim();
  const command = flags.strings.get("mcp-command")?.trim();
  if (Boolean(url) === Boolean(command))
    throw new RuntimesError("connect needs exactly one of --mcp-server-url URL or --mcp-command CMD");
  return url ? { kind: "server_url", value: url } : { kind: "command", value: command! };
}

function keyReference(flags: ParsedFlags): string {
  const ref = (flags.strings.get("runtime-api-key") ?? DEFAULT_KEY_REF).trim();
  if (!/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/.test(ref))
    throw new RuntimesError(
      "--runtime-api-key takes a reference (env:NAME or file:PATH), never the key itself: it is written into the profile",
    );
  return ref;
}

/** Where the alias's profile goes: `--profile-dir`, else Airlock's profile directory (so `airlock run --profile` finds it). */
function profileLocation(ctx: Context, alias: string): { name: string; dir: string; path: string } {
  const name = ctx.flags.strings.get("profile")?.trim() || alias;
  if (!PROFILE_NAME.test(name)) throw new RuntimesError("--profile must use letters, digits, '.', '_' or '-'");
  const given = ctx.flags.strings.get("profile-dir")?.trim();
  const dir = given || profileDirs({ flags: {}, env: ctx.io.env, cwd: ctx.io.cwd, homeDir: ctx.homeDir })[0]!;
  return { name, dir, path: join(dir, `${name}.yaml`) };
}

/** What `connect` settles before it starts anything: the alias, its tunnel, the profile and the runtime's files. */
interface Placement {
  alias: string;
  tunnelId: string;
  target: Target;
  profile: { name: string; dir: string; path: string };
  healthUrlFile: string;
  logFile: string;
}

async function connect(ctx: Context): Promise<Outcome> {
  const { alias, tunnelId, tunnel, remote } = await aliasAndTunnel(ctx, "connect");
  const target = connectTarget(ctx.flags);
  const apiKeyRef = keyReference(ctx.flags);
  const profile = profileLocation(ctx, alias);
  await ensureDirs(ctx.root);
  const place: Placement = {
    alias,
    tunnelId,
    target,
    profile,
    healthUrlFile: paths.healthUrlFile(ctx.root, alias),
    logFile: paths.logFile(ctx.root, alias),
  };
  await writeAliasProfile(ctx, place, apiKeyRef);
  const aliases = await loadAliases(ctx.root);
  aliases[alias] = aliasRecord(
    ctx,
    alias,
    tunnelId,
    {
      ...remote,
      profile_name: profile.name,
      profile_dir: profile.dir,
      profile_path: profile.path,
      health_url_file: place.healthUrlFile,
    },
    tunnel,
  );
  await saveAliases(ctx.root, aliases);
  const { pid, started } = await startOrReuseRuntime(ctx, place);
  return connectOutcome(ctx, place, pid, started);
}

async function writeAliasProfile(ctx: Context, place: Placement, apiKeyRef: string): Promise<void> {
  const { tunnelId, target, healthUrlFile, logFile } = place;
  const baseUrl = ctx.flags.strings.get("control-plane-base-url")?.trim();
  const urlPath = ctx.flags.strings.get("control-plane-url-path")?.trim();
  await mkdir(place.profile.dir, { recursive: true, mode: 0o700 });
  await writePrivateFile(
    place.profile.path,
    runtimeProfile({ tunnelId, baseUrl, urlPath, apiKeyRef, target, healthUrlFile, logFile }),
  );
}

/** Launch the alias's runtime (or keep the one already serving its tunnel) and record its process. */
async function startOrReuseRuntime(ctx: Context, place: Placement): Promise<{ pid: number; started: boolean }> {
  const { alias, tunnelId, target, profile, healthUrlFile, logFile } = place;
  const processes = await loadProcesses(ctx.root);
  const previous = processes[alias];
  // A runtime already serving this tunnel is reused, as tunnel-client; one for another tunnel is replaced.
  const reuse = previous?.mode === "process" && previous.tunnel_id === tunnelId && pidAlive(previous.pid);
  if (previous?.mode === "process" && !reuse && pidAlive(previous.pid)) await terminate(previous.pid!, STOP_TIMEOUT_MS);
  let pid = previous?.pid ?? 0;
  let command = previous?.command ?? "";
  if (!reuse) {
    await rm(healthUrlFile, { force: true });
    const launched = await launchAgent(profile.path, logFile, process.env);
    pid = launched.pid;
    command = launched.command.join(" ");
  }
  processes[alias] = {
    alias,
    tunnel_id: tunnelId,
    config_path: profile.path,
    health_url_file: healthUrlFile,
    target_kind: target.kind,
    target_value: target.value,
    command,
    started_at: reuse ? previous!.started_at : utcNow(),
    mode: "process",
    pid,
    log_path: logFile,
    profile_name: profile.name,
    profile_dir: profile.dir,
    profile_path: profile.path,
  };
  await saveProcesses(ctx.root, processes);
  return { pid, started: !reuse };
}

/** Wait for the runtime's health, log the connect in the history and answer (exit 2 with the log's tail if unhealthy). */
async function connectOutcome(ctx: Context, place: Placement, pid: number, started: boolean): Promise<Outcome> {
  const { alias, tunnelId, profile, healthUrlFile, logFile } = place;
  const probe = await waitForHealth(pid, healthUrlFile, START_TIMEOUT_MS);
  const running = pidAlive(pid);
  await appendHistory(
    ctx.root,
    "connect",
    alias,
    tunnelId,
    `mode=process pid=${pid} started=${started} healthy=${probe.healthy}`,
  );
  const payload: Payload = {
    alias,
    tunnel_id: tunnelId,
    mode: "process",
    pid,
    started,
    running,
    healthy: probe.healthy,
    ready: probe.ready,
    runtime_state: runtimeState(running, probe),
    ...(probe.url ? { health_url: probe.url } : {}),
    config_path: profile.path,
    log_path: logFile,
    state_root: ctx.root,
  };
  if (probe.healthy) return { payload, text: `Connected ${alias} using process mode\n`, code: 0 };
  const tail = await logTail(logFile, 20);
  payload.error = running
    ? `the runtime did not serve /healthz within ${START_TIMEOUT_MS / 1000}s`
    : "the runtime exited during start";
  ctx.io.stderr(`airlock runtimes connect: ${payload.error}; last lines of ${logFile}:\n${tail}\n`);
  return { payload, text: `Connected ${alias} using process mode, but it is not healthy\n`, code: 2 };
}

async function list(ctx: Context): Promise<Outcome> {
  const scope = listScope(ctx.flags);
  const aliases = Object.values(await loadAliases(ctx.root)).sort((a, b) => a.alias.localeCompare(b.alias));
  let text = aliases.length
    ? aliases.map((record) => `${record.alias}\t${record.tunnel_id}\n`).join("")
    : `No runtime aliases found in ${ctx.root}\n`;
  const payload: Payload = { aliases, state_root: ctx.root };
  if (scope) {
    // tunnel-client: the scope's tunnels, each with the local alias that names it (if any).
    const byTunnel = new Map(aliases.map((record) => [record.tunnel_id, record.alias]));
    const remote = (await listRemoteTunnels(ctx, scope)).map((tunnel) => ({
      ...tunnel,
      local_alias: byTunnel.get(tunnel.id) ?? "",
    }));
    payload.remote_tunnels = remote;
    text += remote.map((t) => `${t.id}\t${t.name}${t.local_alias ? `\t${t.local_alias}` : ""}\n`).join("");
  }
  return { payload, text, code: 0 };
}

/** What is known about an alias locally: its process record, whether it runs, what its health endpoints say. */
async function localDetails(record: AliasRecord | undefined, proc: ProcessRecord | undefined) {
  const running = proc?.mode === "process" && pidAlive(proc.pid);
  const healthUrlFile = proc?.health_url_file ?? record?.health_url_file;
  const probe = running && healthUrlFile ? await probeHealth(healthUrlFile) : { healthy: false, ready: false };
  const profilePath = record?.profile_path ?? proc?.profile_path;
  const profileExists = profilePath
    ? await stat(profilePath).then(
        () => true,
        () => false,
      )
    : false;
  return { running, probe, profilePath, profileExists, runtime_state: runtimeState(running, probe) };
}

async function knownAlias(ctx: Context, raw: string) {
  const alias = normalizeAlias(raw);
  const [aliases, processes] = await Promise.all([loadAliases(ctx.root), loadProcesses(ctx.root)]);
  const record = aliases[alias];
  if (!record) throw new RuntimesError(`alias ${alias} is not known; run create or connect first`);
  return { alias, record, proc: processes[alias], aliases, processes };
}

async function status(ctx: Context, raw: string): Promise<Outcome> {
  const { alias, record, proc } = await knownAlias(ctx, raw);
  const local = await localDetails(record, proc);
  const payload: Payload = {
    alias,
    tunnel_id: record.tunnel_id,
    runtime_state: local.runtime_state,
    process_running: local.running,
    healthy: local.probe.healthy,
    ready: local.probe.ready,
    ...(local.probe.url ? { health_url: local.probe.url } : {}),
    ...(proc ? { process: proc } : {}),
    profile: { path: local.profilePath ?? "", exists: local.profileExists },
    state_root: ctx.root,
  };
  return { payload, text: `${alias}\t${local.runtime_state}\t${record.tunnel_id}\n`, code: 0 };
}

async function stop(ctx: Context, raw: string): Promise<Outcome> {
  const { alias, record, proc, processes } = await knownAlias(ctx, raw);
  const running = proc?.mode === "process" && pidAlive(proc.pid);
  const stopped = running ? await terminate(proc!.pid!, STOP_TIMEOUT_MS) : true;
  await rm(paths.healthUrlFile(ctx.root, alias), { force: true });
  if (proc) {
    const { pid: _pid, ...rest } = proc;
    processes[alias] = { ...rest, mode: "stopped" };
    await saveProcesses(ctx.root, processes);
  }
  const stopError = stopped ? "" : `process ${proc!.pid} did not exit within ${STOP_TIMEOUT_MS / 1000}s of SIGTERM`;
  await appendHistory(
    ctx.root,
    "stop",
    alias,
    record.tunnel_id,
    `already_stopped=${!running}${stopError ? ` error=${stopError}` : ""}`,
  );
  const payload: Payload = {
    alias,
    tunnel_id: record.tunnel_id,
    already_stopped: !running,
    stopped,
    stop_error: stopError,
    runtime_state: stopped ? "stopped" : "healthy",
  };
  if (!stopped) ctx.io.stderr(`airlock runtimes stop: ${stopError}\n`);
  return { payload, text: stopped ? `Stopped ${alias}\n` : "", code: stopped ? 0 : 2 };
}

async function remove(ctx: Context, raw: string): Promise<Outcome> {
  const alias = normalizeAlias(raw);
  const [aliases, processes] = await Promise.all([loadAliases(ctx.root), loadProcesses(ctx.root)]);
  const record = aliases[alias];
  const proc = processes[alias];
  if (!record && !proc) throw new RuntimesError(`alias ${alias} is not known`);
  if (proc && proc.mode !== "stopped")
    throw new RuntimesError(`alias ${alias} still has a managed runtime; run \`airlock runtimes stop ${alias}\` first`);
  delete aliases[alias];
  delete processes[alias];
  await saveAliases(ctx.root, aliases);
  await saveProcesses(ctx.root, processes);
  const files = [
    ...new Set(
      [record?.profile_path, record?.health_url_file, proc?.config_path, proc?.health_url_file, proc?.log_path].filter(
        (path): path is string => Boolean(path),
      ),
    ),
  ];
  for (const path of files) await rm(path, { force: true });
  const tunnelId = record?.tunnel_id ?? proc?.tunnel_id ?? "";
  await appendHistory(ctx.root, "rm", alias, tunnelId, `removed_paths=${files.length}`);
  return {
    payload: { alias, removed: true, removed_paths: files, state_root: ctx.root, tunnel_id: tunnelId },
    text: `Removed local runtime metadata for ${alias}\n`,
    code: 0,
  };
}

/** tunnel-client's inventory classes: a live runtime, a profile that could run, a profile gone, or nothing left. */
function classify(local: Awaited<ReturnType<typeof localDetails>>): string {
  if (local.running) return "live_runtime";
  if (local.profileExists) return "valid_profile";
  return local.profilePath ? "missing_profile" : "stale_alias";
}

async function cleanup(ctx: Context): Promise<Outcome> {
  const apply = ctx.flags.bools.has("apply");
  const [aliases, processes] = await Promise.all([loadAliases(ctx.root), loadProcesses(ctx.root)]);
  const names = [...new Set([...Object.keys(aliases), ...Object.keys(processes)])].sort();
  const entries: Payload[] = [];
  const removed: string[] = [];
  for (const name of names) {
    const local = await localDetails(aliases[name], processes[name]);
    const classification = classify(local);
    const tunnelId = aliases[name]?.tunnel_id ?? processes[name]?.tunnel_id ?? "";
    entries.push({
      alias: name,
      tunnel_id: tunnelId,
      classification,
      runtime_state: local.runtime_state,
      profile: { path: local.profilePath ?? "", exists: local.profileExists },
      cleanup_safe: classification === "stale_alias",
      cleanup_command: "airlock runtimes cleanup --apply",
    });
    if (apply && classification === "stale_alias") {
      delete aliases[name];
      delete processes[name];
      removed.push(name);
      await appendHistory(ctx.root, "cleanup", name, tunnelId, "removed stale local alias/process metadata");
    }
  }
  if (apply && removed.length) {
    await saveAliases(ctx.root, aliases);
    await saveProcesses(ctx.root, processes);
  }
  const rows = entries.map((entry) => `${entry.alias}\t${entry.classification}\t${entry.tunnel_id}\n`).join("");
  const text = entries.length
    ? `${rows}${apply ? "" : "Dry run only. Re-run with --apply to remove entries classified as stale_alias.\n"}`
    : `No runtime aliases found in ${ctx.root}\n`;
  return { payload: { state_root: ctx.root, apply, entries, removed }, text, code: 0 };
}
