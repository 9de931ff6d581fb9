/**
 * Start `agent/main.ts` as a real process under Node (tsx), Deno or Bun, the way an
 * operator would, and stop it with a signal. Used by the end-to-end suites.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type RuntimeName = "node" | "deno" | "bun";
export const REPO = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(REPO, "agent/main.ts");

/** argv that runs `airlock <args>` under a runtime; Deno gets `denoFlags` (default: every permission). */
export function airlockCommand(runtime: RuntimeName, args: string[], denoFlags: readonly string[] = ["-A"]): string[] {
  switch (runtime) {
    case "node":
      return [process.execPath, "--import", "tsx", MAIN, ...args];
    case "deno":
      return [join(REPO, "node_modules/.bin/deno"), "run", ...denoFlags, "--no-check", MAIN, ...args];
    case "bun":
      return [join(REPO, "node_modules/.bin/bun"), MAIN, ...args];
  }
}

/**
 * The `airlock run` flags that point an agent at a (fake) control plane: its base URL, its
 * tunnel and the key, given as a reference (`env:NAME`) so it never sits in argv.
 */
export function controlPlaneFlags(cp: { baseUrl: string; tunnelId: string }, keyRef: string): string[] {
  return [
    "--control-plane.base-url",
    cp.baseUrl,
    "--control-plane.tunnel-id",
    cp.tunnelId,
    "--control-plane.api-key",
    keyRef,
  ];
}

export interface AgentProcess {
  child: ChildProcess;
  /** Operator surface base URL, read from the url file. */
  opsUrl: string;
  /** Everything the agent wrote so far, stdout and stderr (json logs go to stdout, as tunnel-client's). */
  stderr(): string;
  /** What the agent wrote to stdout only. */
  stdout(): string;
  /** Log records (JSON lines, from either stream) seen so far. */
  logs(): Array<Record<string, unknown>>;
  /** `Authorization` for the admin UI, from the token the agent printed at start. */
  uiHeaders(): Record<string, string>;
  /** SIGTERM (or `signal`), resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Start `airlock run` with `args` (plus a health listener on 127.0.0.1:0) and wait until it
 * serves `/healthz`. `denoFlags` replaces `-A` under Deno; it is given the directory of the
 * url file, the one path the agent writes.
 */
export function startAgentProcess(
  runtime: RuntimeName,
  args: string[],
  env: Record<string, string> = {},
  denoFlags?: (writableDir: string) => string[],
): Promise<AgentProcess> {
  return startAirlockProcess(runtime, (runArgs, dir) => airlockCommand(runtime, runArgs, denoFlags?.(dir)), args, env);
}

/**
 * {@link startAgentProcess} for any way of running `airlock`: `command` turns the `run`
 * arguments (and the process's scratch directory) into argv (the bundle, a single-file
 * executable, …); `label` names it in errors.
 */
export async function startAirlockProcess(
  label: string,
  command: (runArgs: string[], dir: string) => string[],
  args: string[],
  env: Record<string, string> = {},
): Promise<AgentProcess> {
  const dir = mkdtempSync(join(tmpdir(), "airlock-agent-"));
  const urlFile = join(dir, "health.url");
  // JSON logs unless the test chooses a format.
  const format = args.some((arg) => arg.startsWith("--log.format")) ? [] : ["--log.format", "json"];
  const [cmd, ...argv] = command(
    ["run", "--health.listen-addr", "127.0.0.1:0", "--health.url-file", urlFile, ...format, ...args],
    dir,
  );
  const child = spawn(cmd!, argv, { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!existsSync(urlFile) || readFileSync(urlFile, "utf8").trim() === "") {
    if (child.exitCode !== null)
      throw new Error(`agent (${label}) exited with ${child.exitCode} before serving:\n${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`agent (${label}) did not write its url file within 30 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const opsUrl = readFileSync(urlFile, "utf8").trim();
  return {
    child,
    opsUrl,
    stderr: () => `${stderr}${stdout}`,
    stdout: () => stdout,
    logs: () =>
      `${stderr}\n${stdout}`.split("\n").flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    uiHeaders: () => {
      const token = /admin UI token: (\S+)/.exec(stderr)?.[1];
      if (!token) throw new Error(`the agent printed no admin UI token:\n${stderr}`);
      return { Authorization: `Bearer ${token}` };
    },
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const code = await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
