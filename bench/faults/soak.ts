/**
 * The soak: 8 MCP clients calling `echo` (server-everything over stdio, one agent, the hub
 * in workerd) for a given time, printing every 30 s each process's RSS and the hub's state
 * directory size, then whether each RSS at the end is under 1.1 × its RSS at 2 minutes.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { everythingStdioCommand } from "../../test/support/everything.ts";
import { connectClient, startHubAgent } from "../../test/support/hub-stack.ts";
import { dirMiB, findDescendant, rssMiB, startHubProcess, TUNNEL } from "./processes.ts";

const CLIENTS = 8;
const SAMPLE_EVERY_MS = 30_000;
/** The baseline the issue compares against: RSS at 2 minutes (or the first sample of a shorter soak). */
const BASELINE_MS = 120_000;

interface Sample {
  atMs: number;
  calls: number;
  failed: number;
  rss: Record<string, number>;
  /** The agent's V8 heap in use (its /metrics), to tell a leak from a lazy collector. */
  agentHeapMiB: number;
  stateMiB: number;
}

/** `nodejs_heap_size_used_bytes` from the agent's /metrics, in MiB. */
async function agentHeap(opsUrl: string): Promise<number> {
  try {
    const metrics = await (await fetch(`${opsUrl}/metrics`)).text();
    return Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(metrics)?.[1]) / (1024 * 1024);
  } catch {
    return NaN;
  }
}

export async function soak(seconds: number, print: (line: string) => void): Promise<boolean> {
  const hub = await startHubProcess();
  const agent = await startHubAgent(hub.url, TUNNEL, ["--mcp.command", everythingStdioCommand().join(" ")]);
  const clients: Client[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) clients.push((await connectClient(hub.mcpUrl, { name: `soak-${i}` })).client);
    const pids: Record<string, number | undefined> = {
      agent: agent.child.pid,
      backend: findDescendant(agent.child.pid!, /server-everything|everything/),
      "hub (node)": hub.child.pid,
      workerd: findDescendant(hub.child.pid!, /workerd/),
    };
    print(`soak: ${CLIENTS} clients calling echo for ${seconds} s; pids ${JSON.stringify(pids)}`);
    let calls = 0;
    let failed = 0;
    const latencies: number[] = [];
    const started = performance.now();
    const until = started + seconds * 1000;
    const samples: Sample[] = [];
    const sample = async () => {
      const rss = Object.fromEntries(
        Object.entries(pids).map(([name, pid]) => [name, pid === undefined ? NaN : rssMiB(pid)]),
      );
      const s: Sample = {
        atMs: performance.now() - started,
        calls,
        failed,
        rss,
        agentHeapMiB: await agentHeap(agent.opsUrl),
        stateMiB: dirMiB(hub.stateDir),
      };
      samples.push(s);
      const columns = Object.entries(rss)
        .map(([name, mib]) => `${name} ${mib.toFixed(1)}`)
        .join("  ");
      print(
        `  t=${String(Math.round(s.atMs / 1000)).padStart(4)} s  calls ${String(calls).padStart(7)}  failed ${failed}  RSS MiB: ${columns}  agent heap ${s.agentHeapMiB.toFixed(1)}  state dir ${s.stateMiB.toFixed(2)} MiB`,
      );
    };
    await sample();
    const timer = setInterval(() => void sample(), SAMPLE_EVERY_MS);
    await Promise.all(
      clients.map(async (client, c) => {
        for (let i = 0; performance.now() < until; i++) {
          const t0 = performance.now();
          try {
            await client.callTool({ name: "echo", arguments: { message: `c${c}-${i}` } });
            calls++;
            latencies.push(performance.now() - t0);
          } catch {
            failed++;
          }
        }
      }),
    );
    clearInterval(timer);
    await sample();
    latencies.sort((a, b) => a - b);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]?.toFixed(1);
    const elapsed = (performance.now() - started) / 1000;
    print(
      `soak: ${calls} calls (${(calls / elapsed).toFixed(1)}/s), ${failed} failed, p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`,
    );
    const baseline = samples.find((s) => s.atMs >= BASELINE_MS) ?? samples[1] ?? samples[0]!;
    const last = samples.at(-1)!;
    let flat = failed === 0;
    for (const name of Object.keys(pids)) {
      const ratio = last.rss[name]! / baseline.rss[name]!;
      flat &&= ratio < 1.1;
      print(
        `  ${name.padEnd(11)} RSS at ${Math.round(baseline.atMs / 1000)} s ${baseline.rss[name]!.toFixed(1)} MiB → at ${Math.round(last.atMs / 1000)} s ${last.rss[name]!.toFixed(1)} MiB: ×${ratio.toFixed(3)} ${ratio < 1.1 ? "< 1.1 ok" : "≥ 1.1 GROWS"}`,
      );
    }
    print(
      `  agent heap ${baseline.agentHeapMiB.toFixed(1)} → ${last.agentHeapMiB.toFixed(1)} MiB; state dir ${baseline.stateMiB.toFixed(2)} → ${last.stateMiB.toFixed(2)} MiB`,
    );
    return flat;
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await agent.stop("SIGTERM");
    await hub.stop();
  }
}
