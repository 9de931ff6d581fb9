/**
 * What a `tools/list` through an aggregated channel costs, for N = 1, 3, 10 backends
 * (N copies of server-everything over stdio), against going to the backends directly:
 *
 *   slowest single   tools/list to one backend directly; the backend with the highest p50
 *   direct fan-out   tools/list to all N backends directly, in parallel; time until the last answers
 *   aggregate        tools/list to the aggregate (fan-out, merge, namespacing), one page
 *
 *   node --import tsx bench/routing-tools-list.ts [iterations] [sizes, e.g. 1,3,10]
 */
import { createAggregateBackend } from "../agent/routing/aggregate.ts";
import { createStdioBackend } from "../agent/backends/stdio.ts";
import type { Backend } from "../agent/backends/types.ts";
import { silentLogger } from "../shared/log.ts";
import { everythingStdioCommand } from "../test/support/everything.ts";
import { testClient, type TestMcpClient } from "../test/support/routing.ts";

const iterations = Number(process.argv[2] ?? 200);
const sizes = (process.argv[3] ?? "1,3,10").split(",").map(Number);
const WARMUP = 20;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Stats {
  p50: number;
  p99: number;
}

async function measure(work: () => Promise<unknown>): Promise<Stats> {
  for (let i = 0; i < WARMUP; i++) await work();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    await work();
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

async function listTools(client: TestMcpClient, expected: number): Promise<void> {
  const { message } = await client.request("tools/list");
  const tools = (message.result as { tools?: unknown[] } | undefined)?.tools;
  if (tools?.length !== expected)
    throw new Error(
      `tools/list returned ${tools?.length} tools, expected ${expected}: ${JSON.stringify(message).slice(0, 300)}`,
    );
}

const f = (ms: number) => ms.toFixed(2).padStart(7);
const rows: string[] = [];

for (const n of sizes) {
  const members: Backend[] = Array.from({ length: n }, (_, i) =>
    createStdioBackend({ name: `e${i}`, command: everythingStdioCommand(), log: silentLogger }),
  );
  const aggregate = createAggregateBackend({
    channel: "bench",
    members: members.map((backend) => ({ backend })),
    log: silentLogger,
  });
  try {
    await aggregate.start();
    const direct = members.map((member) => testClient(member));
    for (const client of direct) await client.initialize();
    const perBackend = ((await direct[0]!.request("tools/list")).message.result as { tools: unknown[] }).tools.length;
    const through = testClient(aggregate);
    await through.initialize();

    let slowest: Stats = { p50: 0, p99: 0 };
    for (const client of direct) {
      const stats = await measure(() => listTools(client, perBackend));
      if (stats.p50 > slowest.p50) slowest = stats;
    }
    const fanOut = await measure(() => Promise.all(direct.map((client) => listTools(client, perBackend))));
    const aggregated = await measure(() => listTools(through, perBackend * n));
    rows.push(
      `N=${String(n).padEnd(3)} tools ${String(perBackend * n).padStart(4)}   slowest single p50 ${f(slowest.p50)} p99 ${f(slowest.p99)}   ` +
        `direct fan-out p50 ${f(fanOut.p50)} p99 ${f(fanOut.p99)}   aggregate p50 ${f(aggregated.p50)} p99 ${f(aggregated.p99)}   ` +
        `aggregate/slowest p50 ×${(aggregated.p50 / slowest.p50).toFixed(2)}`,
    );
    console.log(rows.at(-1));
  } finally {
    await aggregate.close();
  }
}

console.log(
  `\ntools/list latency in ms, ${iterations} iterations after ${WARMUP} warm-up, server-everything over stdio, ${process.version}`,
);
for (const row of rows) console.log(row);
