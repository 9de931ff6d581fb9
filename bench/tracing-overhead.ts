/**
 * What tracing costs the agent on one `echo` call: the same agent process (Node) through the
 * fake control plane, with tracing off (no OTEL_* set: the SDK is never loaded) and on
 * (always_on, exported to an OTLP/HTTP receiver on loopback). Commands carry a client
 * `traceparent` in both runs, so the off run includes passing it on in `_meta`.
 *
 *   node --import tsx bench/tracing-overhead.ts [calls]
 */
import { startFakeControlPlane } from "../test/support/fake-control-plane.ts";
import { everythingStdioCommand } from "../test/support/everything.ts";
import { startAgentProcess } from "../test/support/agent-process.ts";
import { startOtlpReceiver } from "../test/support/otlp-receiver.ts";

const calls = Number(process.argv[2] ?? 300);
const WARMUP = 30;
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function summary(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  return `p50 ${at(50).toFixed(2).padStart(6)} ms   p99 ${at(99).toFixed(2).padStart(6)} ms`;
}

async function run(env: Record<string, string>): Promise<number[]> {
  const cp = await startFakeControlPlane({ apiKey: "bench-key-0123456789" });
  const agent = await startAgentProcess(
    "node",
    [
      "--control-plane.base-url",
      cp.baseUrl,
      "--control-plane.tunnel-id",
      cp.tunnelId,
      "--control-plane.api-key",
      "env:BENCH_KEY",
      "--mcp.command",
      everythingStdioCommand().join(" "),
      "--log.level",
      "warn",
    ],
    { BENCH_KEY: "bench-key-0123456789", ...env },
  );
  const headers = { traceparent: [TRACEPARENT] };
  const [init] = cp.enqueue({
    headers,
    jsonrpc: {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "1" } },
    },
  });
  await cp.waitForFinal(init!.request_id, 20_000);
  const samples: number[] = [];
  for (let i = 0; i < WARMUP + calls; i++) {
    const start = performance.now();
    const [command] = cp.enqueue({
      headers,
      jsonrpc: {
        jsonrpc: "2.0",
        id: i + 1,
        method: "tools/call",
        params: { name: "echo", arguments: { message: `m${i}` } },
      },
    });
    await cp.waitForFinal(command!.request_id, 10_000);
    if (i >= WARMUP) samples.push(performance.now() - start);
  }
  await agent.stop();
  await cp.close();
  return samples;
}

const otlp = await startOtlpReceiver();
const off = await run({});
const on = await run({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "200" });
console.log(`echo through the agent (node), ${calls} sequential calls`);
console.log(`  tracing off   ${summary(off)}`);
console.log(`  tracing on    ${summary(on)}   (${otlp.spans.length} spans received)`);
await otlp.close();
