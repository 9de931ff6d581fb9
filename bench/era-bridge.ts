/**
 * What the era bridge (agent/bridge/) adds per call: the same `tools/call echo` to
 * server-everything (a 2025-era server), over stdio and over Streamable HTTP, sent
 *
 *   legacy   as a 2025 client sends it, on a session it initialised (the bridge passes it through)
 *   modern   as a 2026-07-28 client sends it, stateless (the bridge strips the envelope, uses its
 *            legacy session, completes the result)
 *
 * through the same bridged backend, sequentially; p50/p99 of each and the p50 difference.
 * Then the other direction, to the 2026-only SDK v2 fixture (test/fixtures/modern-server.ts):
 * there the modern call passes through and the legacy one is bridged (the bridge answers its
 * `initialize` and adds the envelope and the modern headers to every request).
 *
 *   node --import tsx bench/era-bridge.ts [calls]
 */
import { bridgeEras } from "../agent/bridge/backend.ts";
import { createHttpBackend } from "../agent/backends/http.ts";
import { createStdioBackend } from "../agent/backends/stdio.ts";
import type { Backend } from "../agent/backends/types.ts";
import { silentLogger } from "../shared/log.ts";
import { LEGACY_VERSIONS } from "../shared/mcp/era.ts";
import type { HeaderMap } from "../shared/protocol/commands.ts";
import { headerValue } from "../shared/protocol/headers.ts";
import {
  everythingStdioCommand,
  exchangeOf,
  modernStdioCommand,
  rpc,
  startEverythingHttp,
  startModernHttp,
  type RunningServer,
} from "../test/support/everything.ts";

const calls = Number(process.argv[2] ?? 300);
const WARMUP = 30;
const META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {},
  "io.modelcontextprotocol/clientInfo": { name: "bench", version: "0.0.0" },
};

async function p50p99(call: (i: number) => Promise<void>): Promise<[number, number]> {
  for (let i = 0; i < WARMUP; i++) await call(i);
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await call(i);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return [samples[Math.floor(calls / 2)]!, samples[Math.min(calls - 1, Math.floor(calls * 0.99))]!];
}

/** `bridged` names the client era the bridge translates for this server; the other passes through. */
async function compare(label: string, backend: Backend, bridged: "modern" | "legacy"): Promise<void> {
  const bridge = bridgeEras(backend, { log: silentLogger });
  await bridge.start();
  // The legacy client speaks the version the bridge's own sessions use, so both legs get the same server behaviour.
  const init = await bridge.exchange(
    exchangeOf({
      ...rpc.initialize(0),
      params: { protocolVersion: LEGACY_VERSIONS[0], capabilities: {}, clientInfo: { name: "bench", version: "0" } },
    }),
  );
  const session = init.kind === "response" ? headerValue(init.headers, "mcp-session-id") : undefined;
  const headers: HeaderMap = {
    "Mcp-Protocol-Version": [LEGACY_VERSIONS[0]],
    ...(session ? { "Mcp-Session-Id": [session] } : {}),
  };
  await bridge.exchange(exchangeOf({ jsonrpc: "2.0", method: "notifications/initialized" }, { headers }));
  const echo = (i: number, meta?: object) => ({
    jsonrpc: "2.0",
    id: i + 1,
    method: "tools/call",
    params: { name: "echo", arguments: { message: `m${i}` }, ...(meta ? { _meta: meta } : {}) },
  });
  const check = (kind: string) => {
    if (kind !== "response") throw new Error(`${label}: the call failed (${kind})`);
  };
  const legacy = await p50p99(async (i) => check((await bridge.exchange(exchangeOf(echo(i), { headers }))).kind));
  const modern = await p50p99(async (i) => check((await bridge.exchange(exchangeOf(echo(i, META)))).kind));
  const f = (n: number) => n.toFixed(3).padStart(7);
  const tag = (era: string) => (era === bridged ? `${era} (bridged)` : era).padEnd(16);
  const adds = bridged === "modern" ? modern[0] - legacy[0] : legacy[0] - modern[0];
  console.log(
    `${label.padEnd(13)} ${tag("legacy")} p50 ${f(legacy[0])} ms p99 ${f(legacy[1])} ms | ${tag("modern")} p50 ${f(modern[0])} ms p99 ${f(modern[1])} ms | bridging adds ${f(adds)} ms at p50`,
  );
  await bridge.close();
}

/** Run `compare` against an HTTP server started for it. */
async function overHttp(label: string, start: () => Promise<RunningServer>, bridged: "modern" | "legacy") {
  const server = await start();
  try {
    await compare(label, createHttpBackend({ name: "bench", url: server.url, log: silentLogger }), bridged);
  } finally {
    await server.close();
  }
}

const stdio = (command: string[]) => createStdioBackend({ name: "bench", command, log: silentLogger });
console.log("a 2025 server (server-everything): modern clients are bridged");
await compare("stdio", stdio(everythingStdioCommand()), "modern");
await overHttp("http", startEverythingHttp, "modern");
console.log("a 2026-only server (the SDK v2 fixture): legacy clients are bridged");
await compare("stdio", stdio(modernStdioCommand(true)), "legacy");
await overHttp("http", () => startModernHttp(true), "legacy");
