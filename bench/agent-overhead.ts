/**
 * What the agent adds to one `echo` call, and what it costs to keep running.
 *
 *   direct     MCP SDK Client + StdioClientTransport → server-everything (the baseline)
 *   agent      fake control plane enqueues a tools/call → the agent's held poll returns it →
 *              stdio backend → server-everything → response POST received by the fake
 *              (the agent is a real process: node, deno or bun)
 *
 * Also prints each runtime's resident memory after the agent has idled (held polls only).
 *
 *   node --import tsx bench/agent-overhead.ts [calls]
 *
 * AIRLOCK_BACKEND=http puts server-everything behind the agent over Streamable HTTP (the direct
 * baseline then uses the SDK's Streamable HTTP client); AIRLOCK_RUNTIMES=node (comma-separated)
 * runs only those runtimes.
 */
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startFakeControlPlane } from "../test/support/fake-control-plane.ts";
import { everythingStdioCommand, startEverythingHttp } from "../test/support/everything.ts";
import { startAgentProcess, type RuntimeName } from "../test/support/agent-process.ts";

const calls = Number(process.argv[2] ?? 200);
const WARMUP = 20;

function summary(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  return `p50 ${at(50).toFixed(2).padStart(6)} ms   p99 ${at(99).toFixed(2).padStart(6)} ms`;
}

async function time(count: number, call: (i: number) => Promise<void>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await call(i);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await call(i);
    samples.push(performance.now() - start);
  }
  return samples;
}

/** Resident set size of a process and its children (the MCP server is one of them), in MiB. */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

const http = process.env.AIRLOCK_BACKEND === "http" ? await startEverythingHttp() : undefined;
const [command, ...args] = everythingStdioCommand();
const client = new Client({ name: "bench", version: "1" });
await client.connect(
  http
    ? new StreamableHTTPClientTransport(new URL(http.url))
    : new StdioClientTransport({ command: command!, args, stderr: "ignore" }),
);
const direct = await time(calls, async (i) => {
  await client.callTool({ name: "echo", arguments: { message: `m${i}` } });
});
await client.close();
console.log(`echo, ${calls} sequential calls`);
console.log(`  direct (SDK client, ${http ? "HTTP " : "stdio"})        ${summary(direct)}`);
const backend = http ? ["--mcp.server-url", http.url] : ["--mcp.command", everythingStdioCommand().join(" ")];
const runtimes = (process.env.AIRLOCK_RUNTIMES ?? "node,deno,bun").split(",") as RuntimeName[];

const idle: string[] = [];
for (const runtime of runtimes) {
  const cp = await startFakeControlPlane({ apiKey: "bench-key-0123456789" });
  const agent = await startAgentProcess(
    runtime,
    [
      "--control-plane.base-url",
      cp.baseUrl,
      "--control-plane.tunnel-id",
      cp.tunnelId,
      "--control-plane.api-key",
      "env:BENCH_KEY",
      ...backend,
      "--log.level",
      "warn",
    ],
    { BENCH_KEY: "bench-key-0123456789" },
  );
  const [init] = cp.enqueue({
    jsonrpc: {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "1" } },
    },
  });
  await cp.waitForFinal(init!.request_id, 20_000);
  const through = await time(calls, async (i) => {
    const [command] = cp.enqueue({
      jsonrpc: {
        jsonrpc: "2.0",
        id: i + 1,
        method: "tools/call",
        params: { name: "echo", arguments: { message: `m${i}` } },
      },
    });
    await cp.waitForFinal(command!.request_id, 10_000);
  });
  console.log(`  through the agent (${runtime.padEnd(4)})        ${summary(through)}`);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  idle.push(
    `  ${runtime.padEnd(5)} ${rssMiB(agent.child.pid!).toFixed(0).padStart(4)} MiB (agent process, MCP server child excluded)`,
  );
  await agent.stop();
  await cp.close();
}
console.log("idle resident memory after the calls and 3 s of held polls");
for (const line of idle) console.log(line);
await http?.close();
