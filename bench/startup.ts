/**
 * What starting and idling an agent costs, per way of running it: from spawning the process
 * to the fake control plane receiving its first poll, and its resident memory (the agent's
 * process alone, not the MCP server it starts) after it has idled in its held poll.
 *
 *   source/tsx     node --import tsx agent/main.ts (a checkout, no build)
 *   bundle         node dist/airlock.js (`npm run build`; what `airlock`, npx and Docker run)
 *   bun exe        dist/bin/airlock-bun-linux-<arch> (`npm run build:bun`)
 *   deno bundle    deno run -A dist/standalone/airlock.mjs (what `deno compile` embeds)
 *   bun / deno source   bun agent/main.ts, deno run -A agent/main.ts
 *
 * Builds first. Median of `runs` starts (default 3); idle for `idle` ms (default 2000).
 *
 *   node --import tsx bench/startup.ts [runs] [idleMs] [only: a substring of the way's name]
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { arch } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startFakeControlPlane } from "../test/support/fake-control-plane.ts";
import { everythingStdioCommand } from "../test/support/everything.ts";
import { airlockCommand } from "../test/support/agent-process.ts";
import { ROOT, run } from "../test/support/run.ts";

const runs = Number(process.argv[2] ?? 3);
const idleMs = Number(process.argv[3] ?? 2000);
const only = process.argv[4] ?? "";
const BUN_EXE = join(ROOT, `dist/bin/airlock-bun-linux-${arch() === "arm64" ? "arm64" : "x64"}`);

const WAYS: Record<string, (args: string[]) => string[]> = {
  "node source (tsx)": (args) => airlockCommand("node", args),
  "node bundle": (args) => [process.execPath, join(ROOT, "dist/airlock.js"), ...args],
  "bun executable": (args) => [BUN_EXE, ...args],
  "bun source": (args) => airlockCommand("bun", args),
  "deno standalone bundle": (args) => [
    join(ROOT, "node_modules/.bin/deno"),
    "run",
    "-A",
    join(ROOT, "dist/standalone/airlock.mjs"),
    ...args,
  ],
  "deno source": (args) => airlockCommand("deno", args),
};

/** CPU time (user + system) a process has used, ms (Linux /proc; USER_HZ is 100). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resident set size of one process, MiB (Linux /proc). */
function rssMiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : NaN;
}

async function once(command: (args: string[]) => string[]): Promise<{ firstPollMs: number; cpu: number; rss: number }> {
  const cp = await startFakeControlPlane({ apiKey: "sk-startup-bench-key-123456" });
  const [cmd, ...argv] = command([
    "run",
    "--control-plane.base-url",
    cp.baseUrl,
    "--control-plane.tunnel-id",
    cp.tunnelId,
    "--control-plane.api-key",
    "env:BENCH_KEY",
    "--mcp.command",
    everythingStdioCommand().join(" "),
    "--health.listen-addr",
    "127.0.0.1:0",
  ]);
  const started = performance.now();
  const child = spawn(cmd!, argv, {
    cwd: ROOT,
    env: { ...process.env, BENCH_KEY: cp.apiKey },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk) => {
    stderr += chunk;
  });
  try {
    await cp.waitForPolls(1, 30_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${stderr}`);
    });
    const firstPollMs = performance.now() - started;
    const cpu = cpuMs(child.pid!);
    await sleep(idleMs);
    return { firstPollMs, cpu, rss: rssMiB(child.pid!) };
  } finally {
    child.kill("SIGKILL");
    await cp.close();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

for (const script of [[], ["bun"]]) {
  const { code, output } = await run(process.execPath, ["scripts/build.mjs", ...script]);
  if (code !== 0) throw new Error(output);
}
console.log(`| way of running | start → first poll (ms) | CPU until first poll (ms) | idle RSS (MiB) |`);
console.log(`|---|---:|---:|---:|`);
for (const [name, command] of Object.entries(WAYS)) {
  if (!name.includes(only) || (name === "bun executable" && !existsSync(BUN_EXE))) continue;
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await once(command));
  console.log(
    `| ${name} | ${median(results.map((r) => r.firstPollMs)).toFixed(0)} | ${median(results.map((r) => r.cpu)).toFixed(0)} | ${median(results.map((r) => r.rss)).toFixed(1)} |`,
  );
}
