/**
 * One command, every path side by side, ratios against the direct call measured in the same run:
 *
 *   direct         the MCP SDK client → server-everything over Streamable HTTP
 *   supergateway   the same client → supergateway (stdio → Streamable HTTP bridge, stateful) → server-everything
 *   airlock        the same client → local hub (front proxy → workerd → TunnelHub) → agent's held poll →
 *                  backend → response POST → hub → client; the agent as users run it: Node on the bundle
 *                  (dist/airlock.js), Deno on the standalone bundle, Bun as the single-file executable;
 *                  server-everything over stdio, and over HTTP for Node; the Node stdio path once more
 *                  with tracing on in hub and agent (always_on, exported to an OTLP/HTTP receiver on
 *                  loopback), so the row beside it shows what tracing costs and the others that off costs nothing
 *
 * Workload per path (MCP SDK client, `echo`): `calls` sequential calls on one session (p50/p99), then
 * `total` calls spread over 16 and over 64 concurrent sessions (calls/s). Then the hand-off: a command
 * queued while an idle in-process agent holds its poll, until that poll returns it.
 *
 *   node --import tsx bench/compare.ts [calls=300] [total=1500]
 *
 * AIRLOCK_BENCH_ONLY=Node runs only the paths whose label contains that text (direct always runs).
 *
 * Builds first. Every phase has a deadline and the whole run is capped (10 minutes by default,
 * AIRLOCK_BENCH_MAX_S): a stuck path fails the run instead of hanging it.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startAgent } from "../agent/agent.ts";
import { loadConfig } from "../agent/config/load.ts";
import { waitForAgent } from "../agent/demo/stack.ts";
import { silentLogger } from "../shared/log.ts";
import {
  everythingStdioCommand,
  startEverythingHttp,
  stopChild,
  type RunningServer,
} from "../test/support/everything.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, startTestHub } from "../test/support/hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "../test/support/hub-stack.ts";
import { echo, echoThroughput } from "./support/echo-load.ts";
import { startOtlpReceiver } from "../test/support/otlp-receiver.ts";
import { freePort } from "../test/support/ports.ts";
import { ROOT, run } from "../test/support/run.ts";
import { capRun, within } from "./support/limits.ts";
import { stringify } from "yaml";

const calls = Number(process.argv[2] ?? 300);
const total = Number(process.argv[3] ?? 1500);

capRun("bench/compare.ts");

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function stats(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
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

/** `total` calls over `concurrency` sessions. */
function throughput(url: URL, token: string | null, concurrency: number): Promise<number> {
  return echoThroughput(url, { total, concurrency, token });
}

async function startSupergateway(): Promise<RunningServer> {
  // supergateway takes a port and does not report the one it got.
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      join(ROOT, "node_modules/supergateway/dist/index.js"),
      "--stdio",
      everythingStdioCommand().join(" "),
      "--outputTransport",
      "streamableHttp",
      "--stateful",
      "--port",
      String(port),
      "--logLevel",
      "none",
    ],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (chunk) => {
    stderr += chunk;
  });
  const url = `http://127.0.0.1:${port}/mcp`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`supergateway exited (${child.exitCode}):\n${stderr}`);
    const answered = await fetch(url, { method: "GET" }).then(
      () => true,
      () => false,
    );
    if (answered) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`supergateway did not listen on ${port} within 20 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, pid: child.pid!, close: () => stopChild(child) };
}

/** The hand-off: a queued command reaching an idle agent's held poll (agent in-process: one clock). */
async function handoff(hubUrl: URL, tunnel: string, mcpUrl: URL): Promise<{ p50: number; p99: number }> {
  let received: (() => void) | undefined;
  const loaded = await loadConfig({
    argv: [
      "--control-plane.base-url",
      hubUrl.origin,
      "--control-plane.tunnel-id",
      tunnel,
      "--control-plane.api-key",
      "env:KEY",
      "--health.listen-addr",
      "127.0.0.1:0",
      "--mcp.command",
      everythingStdioCommand().join(" "),
    ],
    env: { KEY: AGENT_KEY },
    cwd: process.cwd(),
  });
  const agent = await startAgent(loaded, {
    log: silentLogger,
    events: {
      pollFinished: (outcome) => {
        if (outcome === "commands") received?.();
      },
    },
  });
  const samples: number[] = [];
  try {
    await waitForAgent(hubUrl, tunnel, AGENT_KEY, agent.instanceId);
    const ping = { jsonrpc: "2.0", id: 1, method: "ping" };
    for (let i = 0; i < Math.min(calls, 200) + 20; i++) {
      // Give the agent time to park its next poll, so the command finds it idle.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const arrived = new Promise<number>((resolve) => {
        received = () => resolve(performance.now());
      });
      const sent = performance.now();
      const answer = mcpPost(mcpUrl, ping);
      const at = await arrived;
      await (await answer).text();
      if (i >= 20) samples.push(at - sent);
    }
  } finally {
    await agent.stop();
  }
  return stats(samples);
}

interface Row {
  label: string;
  p50: number;
  p99: number;
  c16: number;
  c64: number;
}

function table(rows: Row[]): string {
  const direct = rows[0]!;
  const x = (value: number, base: number) => `${(value / base).toFixed(2)}×`;
  const lines = [
    "| path | p50 ms | p99 ms | p50 × direct | p99 × direct | calls/s @16 | calls/s @64 | @64 vs direct |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.label} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ${x(row.p50, direct.p50)} | ${x(row.p99, direct.p99)} | ${row.c16.toFixed(0)} | ${row.c64.toFixed(0)} | ${((row.c64 / direct.c64) * 100).toFixed(0)} % |`,
    );
  }
  return lines.join("\n");
}

for (const script of [[], ["bun"]]) {
  const { code, output } = await within(
    `npm run build ${script.join(" ")}`,
    run(process.execPath, ["scripts/build.mjs", ...script]),
  );
  if (code !== 0) throw new Error(output);
}
const BUN_EXE = join(ROOT, `dist/bin/airlock-bun-linux-${arch() === "arm64" ? "arm64" : "x64"}`);
const AGENT_COMMANDS = {
  node: (args: string[]) => [process.execPath, join(ROOT, "dist/airlock.js"), ...args],
  deno: (args: string[]) => [
    join(ROOT, "node_modules/.bin/deno"),
    "run",
    "-A",
    join(ROOT, "dist/standalone/airlock.mjs"),
    ...args,
  ],
  bun: (args: string[]) => [BUN_EXE, ...args],
};

/**
 * The agents' stdio backend: server-everything as one shared child (`share: true`), the process
 * model supergateway and tunnel-client use. The default (one child per MCP session, at most 32)
 * would start 64 server-everything processes for the 64-client run and evict sessions past 32
 * between their `initialize` and `notifications/initialized` (the client then sees 404): that
 * measures process start-up and eviction, not the tunnel.
 */
const configDir = mkdtempSync(join(tmpdir(), "airlock-bench-compare-"));
const stdioConfig = join(configDir, "agent.yaml");
writeFileSync(
  stdioConfig,
  stringify({ config_version: 1, mcp: { commands: [{ command: everythingStdioCommand().join(" "), share: true }] } }),
);
const STDIO = ["--config", stdioConfig];

const loadAtStart = loadavg()[0]!;
const otlp = await startOtlpReceiver();
const [hub, tracedHub, direct, behindAgent, gateway] = await within(
  "starting the servers",
  Promise.all([
    startTestHub({ tunnels: 6, settings: { livenessMs: 10_000 } }),
    startTestHub({ tunnels: 1, settings: { livenessMs: 10_000 }, otlpEndpoint: otlp.url }),
    startEverythingHttp(),
    startEverythingHttp(),
    startSupergateway(),
  ]),
);
const agents: HubAgent[] = [];
try {
  const paths: Array<[string, URL, string | null]> = [
    ["direct HTTP to server-everything", new URL(direct.url), null],
    ["supergateway (stdio → Streamable HTTP)", new URL(gateway.url), null],
  ];
  const airlock: Array<[string, keyof typeof AGENT_COMMANDS, string[]]> = [
    ["Airlock hub + Node agent, stdio backend", "node", STDIO],
    ["Airlock hub + Node agent, HTTP backend", "node", ["--mcp.server-url", behindAgent.url]],
    ["Airlock hub + Deno agent, stdio backend", "deno", STDIO],
    ["Airlock hub + Bun agent, stdio backend", "bun", STDIO],
  ];
  const only = process.env.AIRLOCK_BENCH_ONLY ?? "";
  for (const [label, runtime, backend] of airlock.filter(([label]) => label.includes(only))) {
    const tunnel = hub.tunnel();
    agents.push(
      await within(
        `starting the ${runtime} agent`,
        startHubAgent(hub.url, tunnel, backend, { runtime, command: AGENT_COMMANDS[runtime] }),
      ),
    );
    paths.push([label, hub.mcpUrl(tunnel), CLIENT_TOKEN]);
  }
  const traced = "Airlock hub + Node agent, stdio backend, tracing on";
  if (traced.includes(only)) {
    const tunnel = tracedHub.tunnel();
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url };
    agents.push(
      await within(
        "starting the traced node agent",
        startHubAgent(tracedHub.url, tunnel, STDIO, {
          runtime: "node",
          command: AGENT_COMMANDS.node,
          env,
        }),
      ),
    );
    paths.push([traced, tracedHub.mcpUrl(tunnel), CLIENT_TOKEN]);
  }

  const rows: Row[] = [];
  for (const [label, url, token] of paths.filter(([label], i) => i === 0 || label.includes(only))) {
    const lat = await within(`${label}: ${calls} sequential calls`, latency(url, token));
    const c16 = await within(`${label}: ${total} calls at 16 clients`, throughput(url, token, 16));
    const c64 = await within(`${label}: ${total} calls at 64 clients`, throughput(url, token, 64));
    rows.push({ label, ...lat, c16, c64 });
  }
  const handoffTunnel = hub.tunnel();
  const h = await within("hand-off", handoff(hub.url, handoffTunnel, hub.mcpUrl(handoffTunnel)));

  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  console.log(
    `Node ${process.version} · ${availableParallelism()} CPUs (${cpu}) · ${(totalmem() / 2 ** 30).toFixed(1)} GiB · load average ${loadAtStart.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}`,
  );
  console.log(
    `echo via the MCP SDK client: ${calls} sequential calls (p50/p99), then ${total} calls at 16 and at 64 concurrent clients`,
  );
  console.log("");
  console.log(table(rows));
  console.log("");
  console.log(
    `hand-off: queued command → idle agent's held poll returns it (n=${Math.min(calls, 200)}): p50 ${h.p50.toFixed(2)} ms, p99 ${h.p99.toFixed(2)} ms`,
  );
  if (otlp.spans.length > 0) console.log(`tracing on: ${otlp.spans.length} spans reached the OTLP receiver`);
} finally {
  await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
  await Promise.all([
    hub.close(),
    tracedHub.close(),
    direct.close(),
    behindAgent.close(),
    gateway.close(),
    otlp.close(),
  ]);
  rmSync(configDir, { recursive: true, force: true });
}
