/**
 * The real processes the fault cases run: `airlock hub` as its own Node process (workerd
 * is its child), agents through the test suite's launcher, and what the soak measures of
 * them (RSS from /proc, the state directory's size). Linux only (/proc).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { airlockCommand, REPO } from "../../test/support/agent-process.ts";
import { AGENT_KEY, CLIENT_TOKEN } from "../../test/support/hub.ts";

export const TUNNEL = "tunnel_fa017fa017fa017fa017fa017fa017fa";

export interface HubProcess {
  url: URL;
  mcpUrl: URL;
  child: ChildProcess;
  stateDir: string;
  /** Everything the hub wrote to stderr. */
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface HubProcessOptions {
  /** Extra `airlock hub` flags (limits, `--upstream …`). */
  args?: string[];
  /** Reuse a state directory (a restart); default a fresh one, removed by `stop`. */
  stateDir?: string;
  /** Listen address; default a free loopback port. */
  listen?: string;
  env?: Record<string, string>;
}

/** Start `airlock hub` and wait until it listens. */
export async function startHubProcess(options: HubProcessOptions = {}): Promise<HubProcess> {
  const own = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "airlock-faults-hub-"));
  const urlFile = join(stateDir, "..", `hub-url-${process.pid}-${Date.now()}`);
  const [cmd, ...argv] = airlockCommand("node", [
    "hub",
    "--tunnel-id",
    TUNNEL,
    "--agent-key",
    "env:FAULTS_AGENT_KEY",
    "--client-token",
    "env:FAULTS_CLIENT_TOKEN",
    "--listen",
    options.listen ?? "127.0.0.1:0",
    "--state-dir",
    stateDir,
    "--url-file",
    urlFile,
    ...(options.args ?? []),
  ]);
  const child = spawn(cmd!, argv, {
    cwd: REPO,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, FAULTS_AGENT_KEY: AGENT_KEY, FAULTS_CLIENT_TOKEN: CLIENT_TOKEN, ...options.env },
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 60_000;
  while (!existsSync(urlFile) || readFileSync(urlFile, "utf8").trim() === "") {
    if (child.exitCode !== null) throw new Error(`airlock hub exited with ${child.exitCode}:\n${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`airlock hub did not listen within 60 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const url = new URL(`${readFileSync(urlFile, "utf8").trim()}/`);
  return {
    url,
    mcpUrl: new URL(`v1/mcp/${TUNNEL}`, url),
    child,
    stateDir,
    stderr: () => stderr,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
      rmSync(urlFile, { force: true });
      if (own) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Parent pid of every process, from /proc. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // The command name may contain spaces and parentheses: the fields start after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      out.set(Number(entry), ppid);
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** The first descendant of `root` whose command line matches `pattern` (workerd under the hub). */
export function findDescendant(root: number, pattern: RegExp): number | undefined {
  const tree = parents();
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    for (const [child, parent] of tree) {
      if (parent !== pid) continue;
      try {
        if (pattern.test(readFileSync(`/proc/${child}/cmdline`, "utf8").replaceAll("\0", " "))) return child;
      } catch {
        // Gone.
      }
      queue.push(child);
    }
  }
  return undefined;
}

/** Resident set size of a process in MiB, or NaN once it is gone. */
export function rssMiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Total size of the files under `dir`, in MiB. */
export function dirMiB(dir: string): number {
  let bytes = 0;
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) bytes += statSync(full).size;
    }
  };
  if (existsSync(dir)) walk(dir);
  return bytes / (1024 * 1024);
}
