/**
 * What the relay adds per poll and per call, on loopback, the real Worker in workerd
 * (Miniflare) in front of the fake OpenAI control plane, side by side:
 *
 *   direct         the agent polls the fake upstream itself (no relay)
 *   pass-through   a relay tunnel with no policy and the audit log off (proxying only)
 *   policy         the issue-5 example policy, audit off (evaluation, list filtering, pending state)
 *   policy+audit   the same policy with the audit log on (a hash-chained record per phase)
 *
 * Measured per iteration, sequentially (one agent, one command at a time):
 *
 *   poll        GET …/poll with one `tools/call` queued upstream → 200 with the command
 *   response    POST …/response with the call's result → 200 (upstream took it)
 *   call        poll + response: everything the relay adds to one tools/call
 *   empty poll  GET …/poll?timeout_ms=1 with nothing queued → 204
 *
 *   node --import tsx bench/relay-overhead.ts [iterations]
 */
import { readFileSync } from "node:fs";
import { startLocalHub, type LocalHub } from "../agent/hub-local/run.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../test/support/fake-control-plane.ts";
import { TestAgent } from "../test/support/hub.ts";

const iterations = Number(process.argv[2] ?? 300);
const AGENT_KEY = "bench-relay-agent-key";
const EXAMPLE_POLICY = readFileSync(new URL("../test/fixtures/policies/example.yaml", import.meta.url), "utf8");

interface Setup {
  label: string;
  cp: FakeControlPlane;
  relay?: LocalHub;
  agent: TestAgent;
}

async function setup(label: string, index: number, relay?: { policy?: string; audit: boolean }): Promise<Setup> {
  const tunnelId = `tunnel_${String(index).padStart(32, "0")}`;
  const cp = await startFakeControlPlane({ tunnelId, apiKey: `sk-bench-upstream-${index}` });
  if (!relay)
    return {
      label,
      cp,
      agent: new TestAgent(new URL(cp.baseUrl), tunnelId, { key: cp.apiKey, channels: [{ name: "main" }] }),
    };
  const hub = await startLocalHub({
    tunnels: [{ id: tunnelId, agentKeys: [AGENT_KEY], clientTokens: [] }],
    upstream: cp.baseUrl,
    upstreamKey: cp.apiKey,
    audit: relay.audit,
    ...(relay.policy ? { policy: relay.policy } : {}),
  });
  return {
    label,
    cp,
    relay: hub,
    agent: new TestAgent(hub.url, tunnelId, { key: AGENT_KEY, channels: [{ name: "main" }] }),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Samples {
  poll: number[];
  response: number[];
  call: number[];
  empty: number[];
}

async function measure(s: Setup, count: number): Promise<Samples> {
  const samples: Samples = { poll: [], response: [], call: [], empty: [] };
  for (let i = 0; i < count; i++) {
    const [queued] = s.cp.enqueue({
      jsonrpc: {
        jsonrpc: "2.0",
        id: i,
        method: "tools/call",
        params: { name: "echo", arguments: { message: `call ${i}` } },
      },
    });
    const t0 = performance.now();
    const { commands } = await s.agent.poll({ limit: 1, timeoutMs: 1000 });
    const t1 = performance.now();
    const command = commands[0];
    if (!command || command.request_id !== queued!.request_id)
      throw new Error(`${s.label}: the poll did not carry the queued command`);
    const posted = await s.agent.reply(command, { content: [{ type: "text", text: `Echo: call ${i}` }] });
    await posted.text();
    const t2 = performance.now();
    if (posted.status !== 200) throw new Error(`${s.label}: response post answered ${posted.status}`);
    samples.poll.push(t1 - t0);
    samples.response.push(t2 - t1);
    samples.call.push(t2 - t0);
    const t3 = performance.now();
    const empty = await s.agent.poll({ limit: 1, timeoutMs: 1 });
    samples.empty.push(performance.now() - t3);
    if (empty.status !== 204) throw new Error(`${s.label}: an empty poll answered ${empty.status}`);
  }
  return samples;
}

const setups = [
  await setup("direct", 1),
  await setup("pass-through", 2, { audit: false }),
  await setup("policy", 3, { policy: EXAMPLE_POLICY, audit: false }),
  await setup("policy+audit", 4, { policy: EXAMPLE_POLICY, audit: true }),
];
try {
  for (const s of setups) await measure(s, 50);
  const results = new Map<string, Samples>();
  for (const s of setups) results.set(s.label, await measure(s, iterations));

  const f = (n: number) => n.toFixed(2).padStart(8);
  const medians = (label: string) => {
    const samples = results.get(label)!;
    return Object.fromEntries(
      Object.entries(samples).map(([name, values]) => [name, [...values].sort((a, b) => a - b)]),
    ) as unknown as Samples;
  };
  console.log(
    `relay overhead on loopback (workerd via Miniflare, Node ${process.version}), ${iterations} sequential calls each; ms`,
  );
  console.log(`${"".padEnd(14)}${setups.map((s) => s.label.padStart(26)).join("")}`);
  console.log(`${"".padEnd(14)}${setups.map(() => "p50      p99   +p50".padStart(26)).join("")}`);
  const direct = medians("direct");
  for (const metric of ["poll", "response", "call", "empty"] as const) {
    const cells = setups.map((s) => {
      const sorted = medians(s.label)[metric];
      const added = percentile(sorted, 50) - percentile(direct[metric], 50);
      return `${f(percentile(sorted, 50))} ${f(percentile(sorted, 99))} ${s.label === "direct" ? "      " : (added >= 0 ? "+" : "") + added.toFixed(2).padStart(5)}`;
    });
    console.log(
      `${(metric === "empty" ? "empty poll" : metric).padEnd(14)}${cells.map((cell) => cell.padStart(26)).join("")}`,
    );
  }
  const pass = medians("pass-through");
  const full = medians("policy+audit");
  const delta = (metric: keyof Samples) => (percentile(full[metric], 50) - percentile(pass[metric], 50)).toFixed(2);
  console.log(
    `\npolicy + audit over the pass-through relay (p50): per call ${delta("call")} ms, per poll ${delta("poll")} ms, per response ${delta("response")} ms`,
  );
  for (const s of setups) s.cp.assertNoViolations();
} finally {
  for (const s of setups) {
    await s.relay?.close();
    await s.cp.close();
  }
}
