/**
 * Hub latency on loopback, the real Worker in workerd (Miniflare):
 *
 *   handoff     ingress POST sent → the agent's held poll returns with the command
 *   round trip  ingress POST → held poll → immediate answer → client has the response
 *   throughput  round trips per second with C concurrent clients and one agent polling limit=25
 *   floor       GET /healthz on the same hub (HTTP through workerd, no Durable Object)
 *
 *   node --import tsx bench/hub-latency.ts [iterations]
 *
 * AIRLOCK_AUDIT=off runs the hub without its audit log (its request record is on the hand-off's path).
 */
import { mcpPost, startTestHub, type PolledCommand, type TestAgent } from "../test/support/hub.ts";

const iterations = Number(process.argv[2] ?? 300);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(label: string, samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const f = (n: number) => n.toFixed(2).padStart(7);
  return `${label.padEnd(34)} n=${String(samples.length).padEnd(5)} p50 ${f(percentile(sorted, 50))} ms   p99 ${f(percentile(sorted, 99))} ms   max ${f(sorted.at(-1)!)} ms`;
}

/** An agent that answers every command at once, held polls in a loop. */
function immediateAgent(agent: TestAgent): { stop(): Promise<void> } {
  let stopped = false;
  const answer = (command: PolledCommand) => agent.reply(command, { ok: true }).then((r) => r.body?.cancel());
  const loop = (async () => {
    while (!stopped) {
      const { commands } = await agent.poll({ timeoutMs: 1000, limit: 25 });
      for (const command of commands) void answer(command);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

const hub = await startTestHub({
  tunnels: 3,
  settings: { livenessMs: 10_000 },
  audit: process.env.AIRLOCK_AUDIT !== "off",
});
try {
  const message = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "noop", arguments: {} } };

  // Warm up workerd, the Durable Objects and the connection pools.
  for (const tunnel of [hub.tunnel(), hub.tunnel()]) {
    const agent = immediateAgent(hub.agent(tunnel));
    for (let i = 0; i < 50; i++) await (await mcpPost(hub.mcpUrl(tunnel), message)).text();
    await agent.stop();
  }
  const healthz = new URL("healthz", hub.url);
  for (let i = 0; i < 50; i++) await (await fetch(healthz)).text();

  const floor: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    await (await fetch(healthz)).text();
    floor.push(performance.now() - started);
  }

  const handoffTunnel = hub.tunnel();
  const handoffAgent = hub.agent(handoffTunnel);
  const handoff: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const polled = handoffAgent.poll({ timeoutMs: 5000, limit: 1 });
    // Let the poll reach the Durable Object and park.
    await new Promise((resolve) => setTimeout(resolve, 3));
    const started = performance.now();
    const client = mcpPost(hub.mcpUrl(handoffTunnel), message);
    const { commands } = await polled;
    handoff.push(performance.now() - started);
    await handoffAgent.reply(commands[0]!, {});
    await (await client).text();
  }

  const roundTripTunnel = handoffTunnel;
  const agent = immediateAgent(hub.agent(roundTripTunnel));
  const roundTrip: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    await (await mcpPost(hub.mcpUrl(roundTripTunnel), message)).text();
    roundTrip.push(performance.now() - started);
  }

  const lines = [
    summary("floor: GET /healthz", floor),
    summary("handoff: POST → held poll", handoff),
    summary("round trip: POST → answer", roundTrip),
  ];
  for (const concurrency of [16, 64]) {
    const total = iterations * 2;
    let next = 0;
    const samples: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          next++;
          const t0 = performance.now();
          const response = await mcpPost(hub.mcpUrl(roundTripTunnel), message);
          await response.text();
          if (response.status !== 200) throw new Error(`status ${response.status}`);
          samples.push(performance.now() - t0);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    lines.push(
      `${summary(`round trip, ${concurrency} concurrent`, samples)}   ${(total / seconds).toFixed(0)} calls/s`,
    );
  }
  await agent.stop();
  console.log(`hub latency on loopback (workerd via Miniflare, Node ${process.version})`);
  for (const line of lines) console.log(line);
} finally {
  await hub.close();
}
