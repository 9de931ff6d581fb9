/**
 * Where a tunnelled call spends CPU, process by process: sequential `echo` calls from the MCP SDK
 * client through the local hub and a Node agent (the bundle) to server-everything over stdio, and
 * the CPU time (user + system, from /proc) each process used per call:
 *
 *   client + front   this process: the MCP SDK client and the hub's Node front proxy
 *   workerd          the Worker and the TunnelHub Durable Object
 *   agent            poll answer → dispatch → stdio backend → response POST
 *   backend          server-everything (the work a direct call also pays)
 *
 * CPU per call survives a loaded machine far better than wall-clock time, which is printed too.
 *
 *   node --import tsx bench/hops.ts [calls=300]
 *
 * AIRLOCK_AGENT_NODE_FLAGS adds Node flags to the agent (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof");
 * AIRLOCK_AUDIT=off runs the hub without its audit log, to see what the log costs workerd;
 * AIRLOCK_BACKEND=http puts server-everything behind the agent over Streamable HTTP instead of stdio.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { everythingStdioCommand, startEverythingHttp } from "../test/support/everything.ts";
import { startTestHub } from "../test/support/hub.ts";
import { connectClient, startHubAgent } from "../test/support/hub-stack.ts";
import { ROOT, run } from "../test/support/run.ts";

const calls = Number(process.argv[2] ?? 300);
const TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime + stime of one process, ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Direct children of a process (every thread's list). */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
    if (text) out.push(...text.split(" ").map(Number));
  }
  return out;
}

const commandOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");

const { code, output } = await run(process.execPath, ["scripts/build.mjs"]);
if (code !== 0) throw new Error(output);
const hub = await startTestHub({
  tunnels: 1,
  settings: { livenessMs: 10_000 },
  audit: process.env.AIRLOCK_AUDIT !== "off",
});
const tunnel = hub.tunnel();
const httpBackend = process.env.AIRLOCK_BACKEND === "http" ? await startEverythingHttp() : undefined;
const backendArgs = httpBackend
  ? ["--mcp.server-url", httpBackend.url]
  : ["--mcp.command", everythingStdioCommand().join(" ")];
const agent = await startHubAgent(hub.url, tunnel, backendArgs, {
  command: (args) => [
    process.execPath,
    ...(process.env.AIRLOCK_AGENT_NODE_FLAGS ?? "").split(" ").filter(Boolean),
    join(ROOT, "dist/airlock.js"),
    ...args,
  ],
});
try {
  const { client } = await connectClient(hub.mcpUrl(tunnel));
  const echo = async (i: number) => {
    await client.callTool({ name: "echo", arguments: { message: `m${i}` } });
  };
  for (let i = 0; i < 50; i++) await echo(i);
  const workerd = children(process.pid).find((pid) => commandOf(pid).includes("workerd"));
  const backend = httpBackend?.pid ?? children(agent.child.pid!)[0];
  if (!workerd || !backend) throw new Error("could not find the workerd or backend process");
  // The client alone, calling server-everything directly: subtracted to get the front proxy's share.
  const direct = await startEverythingHttp();
  const { client: directClient } = await connectClient(new URL(direct.url), { token: null });
  for (let i = 0; i < 50; i++) await directClient.callTool({ name: "echo", arguments: { message: `w${i}` } });
  const clientStart = cpuMs(process.pid);
  for (let i = 0; i < calls; i++) await directClient.callTool({ name: "echo", arguments: { message: `d${i}` } });
  const clientMs = (cpuMs(process.pid) - clientStart) / calls;
  await directClient.close();
  await direct.close();

  const pids = {
    "client + front (this process)": process.pid,
    workerd,
    agent: agent.child.pid!,
    "backend (server-everything)": backend,
  };
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)]));
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await echo(i);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  console.log(
    `${calls} sequential calls · p50 ${samples[Math.floor(calls / 2)]!.toFixed(2)} ms · p99 ${samples[Math.floor(calls * 0.99)]!.toFixed(2)} ms`,
  );
  console.log("| process | CPU ms per call |");
  console.log("|---|---:|");
  let sum = 0;
  for (const [name, pid] of Object.entries(pids)) {
    const per = (cpuMs(pid) - before[name]!) / calls;
    sum += per;
    console.log(`| ${name} | ${per.toFixed(2)} |`);
  }
  console.log(`| all | ${sum.toFixed(2)} |`);
  console.log(
    `(the MCP SDK client alone, calling directly: ${clientMs.toFixed(2)} ms per call; the rest of this process is the front proxy and Miniflare's Node side)`,
  );
  await client.close();
} finally {
  await agent.stop("SIGTERM");
  await httpBackend?.close();
  await hub.close();
}
