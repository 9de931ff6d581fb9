/**
 * What the hub + agent add on loopback, measured with the MCP SDK client (Streamable HTTP)
 * calling server-everything's `echo`:
 *
 *   latency      sequential tool calls: directly to server-everything (HTTP) vs through the
 *                hub (workerd) + a real agent process, backend over stdio and over HTTP
 *   throughput   calls per second with 16 and 64 concurrent clients (one session each,
 *                calling in a loop), same three paths; agent at its default limits
 *                (20 commands in flight, 10 running)
 *   handoff      a command queued while the agent idles in its held poll: client sends →
 *                the agent has it (its poll returned with the command); agent in-process so
 *                both times come from one clock
 *
 *   node --import tsx bench/hub-vs-direct.ts [calls] [seconds]
 */
import { availableParallelism, loadavg } from "node:os";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { startAgent } from "../agent/agent.ts";
import { loadConfig } from "../agent/config/load.ts";
import { waitForAgent } from "../agent/demo/stack.ts";
import { silentLogger } from "../shared/log.ts";
import { everythingStdioCommand, startEverythingHttp } from "../test/support/everything.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, startTestHub } from "../test/support/hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "../test/support/hub-stack.ts";

const calls = Number(process.argv[2] ?? 300);
const seconds = Number(process.argv[3] ?? 3);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function stats(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

const ms = (value: number) => `${value.toFixed(2).padStart(7)} ms`;

async function echo(client: Client, message: string): Promise<void> {
  const result = await client.callTool({ name: "echo", arguments: { message } });
  const text = (result.content as Array<{ text?: string }>)[0]?.text;
  if (text !== `Echo: ${message}`) throw new Error(`unexpected answer ${JSON.stringify(result)}`);
}

async function latency(url: URL, token: string | null): Promise<{ p50: number; p99: number }> {
  const { client } = await connectClient(url, { token });
  try {
    for (let i = 0; i < 30; i++) await echo(client, `warm ${i}`);
    const samples: number[] = [];
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      await echo(client, `call ${i}`);
      samples.push(performance.now() - started);
    }
    return stats(samples);
  } finally {
    await client.close();
  }
}

async function throughput(url: URL, token: string | null, concurrency: number): Promise<number> {
  const clients = await Promise.all(Array.from({ length: concurrency }, () => connectClient(url, { token })));
  try {
    await Promise.all(clients.map(({ client }, i) => echo(client, `warm ${i}`)));
    let done = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(clients.map(async ({ client }, c) => {
      for (let i = 0; performance.now() < deadline; i++) {
        await echo(client, `c${c} ${i}`);
        done++;
      }
    }));
    return done / ((performance.now() - started) / 1000);
  } finally {
    await Promise.all(clients.map(({ client }) => client.close()));
  }
}

// Other work on the machine skews loopback numbers; the report carries the load it ran under.
const loadAtStart = loadavg()[0]!;
const [hub, direct, behindAgent] = await Promise.all([
  startTestHub({ tunnels: 3, settings: { livenessMs: 10_000 } }),
  startEverythingHttp(),
  startEverythingHttp(),
]);
const agents: HubAgent[] = [];
try {
  const stdioTunnel = hub.tunnel();
  const httpTunnel = hub.tunnel();
  agents.push(...await Promise.all([
    startHubAgent(hub.url, stdioTunnel, ["--mcp.command", everythingStdioCommand().join(" ")]),
    startHubAgent(hub.url, httpTunnel, ["--mcp.server-url", behindAgent.url]),
  ]));
  const paths: Array<[string, URL, string | null]> = [
    ["direct to server-everything (HTTP)", new URL(direct.url), null],
    ["hub + agent, stdio backend", hub.mcpUrl(stdioTunnel), CLIENT_TOKEN],
    ["hub + agent, HTTP backend", hub.mcpUrl(httpTunnel), CLIENT_TOKEN],
  ];

  const lat: Array<{ p50: number; p99: number }> = [];
  for (const [, url, token] of paths) lat.push(await latency(url, token));
  const rates: number[][] = [];
  for (const [, url, token] of paths) {
    rates.push([await throughput(url, token, 16), await throughput(url, token, 64)]);
  }

  // Handoff: an in-process agent (its poll hook marks receipt) idling on a fourth tunnel.
  const handoffTunnel = hub.tunnel();
  let received: (() => void) | undefined;
  const loaded = await loadConfig({
    argv: [
      "--control-plane.base-url", hub.url.origin, "--control-plane.tunnel-id", handoffTunnel, "--control-plane.api-key", "env:KEY",
      "--health.listen-addr", "127.0.0.1:0", "--mcp.command", everythingStdioCommand().join(" "),
    ],
    env: { KEY: AGENT_KEY },
    cwd: process.cwd(),
  });
  const agent = await startAgent(loaded, {
    log: silentLogger,
    events: { pollFinished: (outcome) => { if (outcome === "commands") received?.(); } },
  });
  const handoff: number[] = [];
  try {
    await waitForAgent(hub.url, handoffTunnel, AGENT_KEY, agent.instanceId);
    const ping = { jsonrpc: "2.0", id: 1, method: "ping" };
    for (let i = 0; i < calls + 30; i++) {
      // Give the agent time to park its next poll, so the command finds it idle.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const arrived = new Promise<number>((resolve) => { received = () => resolve(performance.now()); });
      const sent = performance.now();
      const answer = mcpPost(hub.mcpUrl(handoffTunnel), ping);
      const at = await arrived;
      await (await answer).text();
      if (i >= 30) handoff.push(at - sent);
    }
  } finally {
    await agent.stop();
  }

  const [directLat, stdioLat, httpLat] = lat as [typeof lat[0], typeof lat[0], typeof lat[0]];
  const out: string[] = [];
  out.push(`hub + agent vs direct on loopback (Node ${process.version}, ${availableParallelism()} CPUs, load average ${loadAtStart.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}; ${calls} sequential calls, ${seconds} s per throughput run)`);
  out.push("");
  out.push(`tool call latency (echo)                        p50         p99`);
  paths.forEach(([label], i) => out.push(`  ${label.padEnd(42)} ${ms(lat[i]!.p50)}  ${ms(lat[i]!.p99)}`));
  out.push(`  ${"added by hub + agent (stdio backend)".padEnd(42)} ${ms(stdioLat.p50 - directLat.p50)}  ${ms(stdioLat.p99 - directLat.p99)}`);
  out.push(`  ${"added by hub + agent (HTTP backend)".padEnd(42)} ${ms(httpLat.p50 - directLat.p50)}  ${ms(httpLat.p99 - directLat.p99)}`);
  out.push("");
  out.push(`calls per second                              16 clients  64 clients`);
  paths.forEach(([label], i) => out.push(`  ${label.padEnd(42)} ${rates[i]![0]!.toFixed(0).padStart(10)}  ${rates[i]![1]!.toFixed(0).padStart(10)}`));
  out.push("");
  const h = stats(handoff);
  out.push(`queued command → idle agent has it (n=${handoff.length})    p50 ${ms(h.p50)}   p99 ${ms(h.p99)}`);
  console.log(out.join("\n"));
} finally {
  await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
  await Promise.all([hub.close(), direct.close(), behindAgent.close()]);
}
