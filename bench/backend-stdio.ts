/**
 * Per-call overhead of the stdio backend against the MCP SDK's own client, both driving
 * the same server (`mcp-server-everything stdio`, tool `echo`):
 *
 *   sdk client    Client + StdioClientTransport, `callTool` (zod-validated both ways)
 *   airlock       createStdioBackend().exchange() with a raw `tools/call` message
 *
 * Sequential calls give latency (p50/p99); a second pass runs the same count with 20 in
 * flight at once (the SDK client multiplexes too) and reports calls per second.
 *
 *   node --import tsx bench/backend-stdio.ts [calls]
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createStdioBackend } from "../agent/backends/stdio.ts";
import { silentLogger } from "../shared/log.ts";
import { everythingStdioCommand, exchangeOf, rpc } from "../test/support/everything.ts";

const calls = Number(process.argv[2] ?? 300);
const WARMUP = 30;
const CONCURRENCY = 20;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(call: (i: number) => Promise<void>): Promise<{ p50: number; p99: number; perSecond: number }> {
  for (let i = 0; i < WARMUP; i++) await call(i);
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await call(i);
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < calls) await call(next++);
    }),
  );
  const perSecond = calls / ((performance.now() - start) / 1000);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), perSecond };
}

async function sdkClient() {
  const [command, ...args] = everythingStdioCommand();
  const client = new Client({ name: "bench", version: "0" });
  await client.connect(new StdioClientTransport({ command: command!, args, stderr: "ignore" }));
  const result = await measure(async (i) => {
    await client.callTool({ name: "echo", arguments: { message: `m${i}` } });
  });
  await client.close();
  return result;
}

async function airlock() {
  const backend = createStdioBackend({ name: "bench", command: everythingStdioCommand(), log: silentLogger });
  await backend.exchange(exchangeOf(rpc.initialize(0)));
  await backend.exchange(exchangeOf(rpc.initialized()));
  const result = await measure(async (i) => {
    const answer = await backend.exchange(exchangeOf(rpc.call(i, "echo", { message: `m${i}` })));
    if (answer.kind !== "response") throw new Error(`echo failed: ${JSON.stringify(answer)}`);
  });
  await backend.close();
  return result;
}

const sdk = await sdkClient();
const ours = await airlock();
const f = (n: number) => n.toFixed(3).padStart(8);
console.log(`stdio echo, ${calls} sequential calls after ${WARMUP} warm-up; throughput with ${CONCURRENCY} in flight`);
console.log(`${"".padEnd(12)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"calls/s".padStart(9)}`);
for (const [label, r] of [
  ["sdk client", sdk],
  ["airlock", ours],
] as const) {
  console.log(`${label.padEnd(12)} ${f(r.p50)} ${f(r.p99)} ${r.perSecond.toFixed(0).padStart(9)}`);
}
