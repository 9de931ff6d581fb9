/**
 * Starting, observing and stopping the agents `airlock runtimes` supervises: each is an
 * `airlock run --profile-file <profile>` child, detached so it outlives the command that
 * started it, with its output appended to the alias's log. What it is doing is read the way
 * an operator would: is the pid alive, and what do `/healthz` and `/readyz` at the URL in its
 * `health.url_file` answer.
 */
import { spawn } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import process from "node:process";
import { RUNTIME } from "../version.ts";

/** The MCP server a runtime serves on its `main` channel. */
export interface Target {
  kind: "server_url" | "command";
  value: string;
}

export interface ProfileInputs {
  tunnelId: string;
  baseUrl?: string;
  urlPath?: string;
  /** An `env:`/`file:` reference, never the key itself. */
  apiKeyRef: string;
  target: Target;
  healthUrlFile: string;
  logFile: string;
}

/**
 * The profile `connect` writes, as tunnel-client writes it (JSON, which is YAML): its own
 * health listener on a free loopback port published in the url file, JSON logs in the log file.
 */
export function runtimeProfile(inputs: ProfileInputs): string {
  const mcp =
    inputs.target.kind === "server_url"
      ? { server_urls: [{ channel: "main", url: inputs.target.value }] }
      : { commands: [{ channel: "main", command: inputs.target.value }] };
  const profile = {
    config_version: 1,
    control_plane: {
      ...(inputs.baseUrl ? { base_url: inputs.baseUrl } : {}),
      ...(inputs.urlPath ? { url_path: inputs.urlPath } : {}),
      tunnel_id: inputs.tunnelId,
      api_key: inputs.apiKeyRef,
    },
    health: { listen_addr: "127.0.0.1:0", url_file: inputs.healthUrlFile },
    admin_ui: { open_browser: false },
    log: { level: "info", format: "json", file: inputs.logFile },
    mcp,
  };
  return `${JSON.stringify(profile, null, 2)}\n`;
}

/**
 * argv that runs this same `airlock` again: the runtime and the entry script it was started
 * with (Node keeps its loader flags, e.g. `--import tsx`), or the executable alone when it is
 * a single-file build.
 */
export function selfCommand(): string[] {
  const script = process.argv[1];
  if (!script || script === process.execPath || script.startsWith("/$bunfs/")) return [process.execPath];
  if (RUNTIME.name === "deno") return [process.execPath, "run", "-A", script];
  if (RUNTIME.name === "bun") return [process.execPath, script];
  return [process.execPath, ...process.execArgv, script];
}

/** Start the agent for `profilePath` in the background; resolves with its pid once spawned. */
export async function launchAgent(
  profilePath: string,
  logFile: string,
  env: NodeJS.ProcessEnv,
): Promise<{ pid: number; command: string[] }> {
  const command = [...selfCommand(), "run", "--profile-file", profilePath];
  const log = await open(logFile, "a", 0o600);
  try {
    const child = spawn(command[0]!, command.slice(1), {
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
      env,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once("spawn", () => resolve(child.pid!));
      child.once("error", reject);
    });
    child.unref();
    return { pid, command };
  } finally {
    await log.close();
  }
}

/** True while `pid` is a live process (signal 0 only checks; EPERM still means it exists). */
export function pidAlive(pid: number | undefined): boolean {
  if (!pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM";
  }
}

export interface HealthProbe {
  url?: string;
  healthy: boolean;
  ready: boolean;
}

/** Read the runtime's health URL and ask `/healthz` and `/readyz` (each bounded to 2 s). */
export async function probeHealth(healthUrlFile: string): Promise<HealthProbe> {
  const url = (await readFile(healthUrlFile, "utf8").catch(() => "")).trim();
  if (!url) return { healthy: false, ready: false };
  const ok = async (path: string) => {
    try {
      const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      return response.ok;
    } catch {
      return false;
    }
  };
  const [healthy, ready] = await Promise.all([ok("/healthz"), ok("/readyz")]);
  return { url, healthy, ready };
}

/** tunnel-client's `runtime_state`: stopped, starting (alive, not serving yet), healthy, ready. */
export function runtimeState(running: boolean, probe: HealthProbe): "stopped" | "starting" | "healthy" | "ready" {
  if (!running) return "stopped";
  if (!probe.healthy) return "starting";
  return probe.ready ? "ready" : "healthy";
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wait until the runtime serves `/healthz`, it exits, or `timeoutMs` passes (a CLI waiting on
 * another process: polling is the only signal it has).
 */
export async function waitForHealth(pid: number, healthUrlFile: string, timeoutMs: number): Promise<HealthProbe> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = await probeHealth(healthUrlFile);
    if (probe.healthy || !pidAlive(pid) || Date.now() >= deadline) return probe;
    await sleep(100);
  }
}

/** SIGTERM, then wait (bounded) for the process to be gone; true once it is. */
export async function terminate(pid: number, timeoutMs: number): Promise<boolean> {
  try {
    process.kill(pid, "SIGTERM");
  } catch (error) {
    if ((error as { code?: unknown }).code === "ESRCH") return true;
    throw error;
  }
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** The last `lines` lines of the runtime's log, for a failed start. */
export async function logTail(path: string, lines: number): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
