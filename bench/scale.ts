/**
 * Scale of one hub (issue 13): memory per held poll and per open MCP session, and echo
 * calls/s with the idle polls held against none, in one run. Not a test; loopback only.
 *
 * - The hub (Worker in workerd via Miniflare, behind the local front) runs in its own Node
 *   process (`bench/scale/hub.ts`), so its RSS and its workerd child's hold the hub alone.
 * - Idle agents: lightweight HTTP clients speaking the agent contract (`GET
 *   /v1/tunnels/{id}/poll` with the agent headers, a distinct instance id each), spread
 *   over 8 tunnels, each re-polling as soon as a poll returns (25 s holds). One undici Agent
 *   with one connection per poll.
 * - Sessions: `initialize` + `notifications/initialized` through the hub to one real Node
 *   agent (`airlock run`) with server-everything on stdio, on a tunnel of its own.
 * - calls/s: echo through the MCP SDK client at 16 concurrent clients, to that agent.
 *
 * Polls and sessions are added in steps (a quarter, half, all), RSS read after each has
 * settled. workerd cannot be made to collect garbage, so before the sessions a control sends
 * as many requests (pings on one session) as the sessions will: its row is what requests
 * alone leave behind, and the sessions' rows after it what the sessions keep.
 *
 * Each held poll is a socket in the bench, two in the hub's Node process (the front's
 * client side and its connection to workerd) and one in workerd: 1,000 polls exceed the
 * common soft limit of 1,024 descriptors per process, so raise it; run it as
 *
 *   ulimit -n 8192; node --import tsx bench/scale.ts [polls=1000] [sessions=1000] [calls=600]
 *
 * AIRLOCK_BENCH_MAX_S caps the whole run (default 600 s); AIRLOCK_AUDIT=off runs the hub
 * without its audit log (every initialize is an audited call: see what the log holds).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { setMaxListeners } from "node:events";
import { createInterface } from "node:readline";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { Agent, request } from "undici";
import { everythingStdioCommand } from "../test/support/everything.ts";
import { TestAgent, mcpPost, tunnelId, AGENT_KEY } from "../test/support/hub.ts";
import { startHubAgent, type HubAgent } from "../test/support/hub-stack.ts";
import { echoThroughput } from "./support/echo-load.ts";
import { REPO } from "../test/support/agent-process.ts";
import { findDescendant, rssMiB } from "./faults/processes.ts";
import { capRun, within } from "./support/limits.ts";

const polls = Number(process.argv[2] ?? 1000);
const sessions = Number(process.argv[3] ?? 1000);
const calls = Number(process.argv[4] ?? 600);
const IDLE_TUNNELS = 8;
const POLL_HOLD_MS = 25_000;

capRun("bench/scale.ts");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface HubChild {
  url: URL;
  child: ChildProcess;
  workerd: number;
  stop(): Promise<void>;
}

/** Start `bench/scale/hub.ts` and find its workerd. */
async function startHub(): Promise<HubChild> {
  const child = spawn(
    process.execPath,
    ["--expose-gc", "--import", "tsx", "bench/scale/hub.ts", String(IDLE_TUNNELS + 1)],
    { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const line = await within(
    "starting the hub",
    new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`the hub exited with ${code} before listening`)));
    }),
    60_000,
  );
  const workerd = findDescendant(child.pid!, /workerd/);
  if (workerd === undefined) throw new Error("no workerd process under the hub");
  return {
    url: new URL((JSON.parse(line) as { url: string }).url),
    child,
    workerd,
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Idle agents: each holds one poll at a time and polls again as soon as it returns. */
class IdleAgents {
  readonly #dispatcher = new Agent({
    connections: null,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: POLL_HOLD_MS * 2,
    bodyTimeout: POLL_HOLD_MS * 2,
  });
  readonly #stop = new AbortController();
  readonly #loops: Array<Promise<void>> = [];
  inFlight = 0;
  returned = 0;
  commands = 0;
  errors: string[] = [];

  readonly hub: URL;

  constructor(hub: URL) {
    this.hub = hub;
    setMaxListeners(0, this.#stop.signal); // One listener per poll in flight.
  }

  get count(): number {
    return this.#loops.length;
  }

  /** Start agents until there are `total`, spread round-robin over the idle tunnels. */
  grow(total: number): void {
    while (this.#loops.length < total) {
      const n = this.#loops.length;
      this.#loops.push(
        this.#run(new TestAgent(this.hub, tunnelId(2 + (n % IDLE_TUNNELS)), { instanceId: `idle-${n}` })),
      );
    }
  }

  async #run(agent: TestAgent): Promise<void> {
    const url = agent.url("/poll");
    url.searchParams.set("limit", "1");
    url.searchParams.set("timeout_ms", String(POLL_HOLD_MS));
    while (!this.#stop.signal.aborted) {
      this.inFlight++;
      try {
        const response = await request(url, {
          headers: agent.headers(),
          dispatcher: this.#dispatcher,
          signal: this.#stop.signal,
        });
        const text = await response.body.text();
        if (response.statusCode === 200 && text.includes('"request_id"')) this.commands++;
        else if (response.statusCode !== 200 && response.statusCode !== 204)
          this.errors.push(`HTTP ${response.statusCode}: ${text.slice(0, 200)}`);
        this.returned++;
      } catch (error) {
        if (!this.#stop.signal.aborted) {
          this.errors.push((error as Error).message);
          await sleep(1000);
        }
      } finally {
        this.inFlight--;
      }
    }
  }

  /** Live agents the hub lists over the idle tunnels. */
  async live(): Promise<number> {
    let live = 0;
    for (let t = 0; t < IDLE_TUNNELS; t++) {
      const response = await fetch(new URL(`v1/tunnels/${tunnelId(2 + t)}/status`, this.hub), {
        headers: { Authorization: `Bearer ${AGENT_KEY}` },
      });
      const body = (await response.json()) as { agents?: Array<{ live: boolean }> };
      live += body.agents?.filter((agent) => agent.live).length ?? 0;
    }
    return live;
  }

  /** Wait until the hub lists every agent as live and each has a poll in flight. */
  async settled(): Promise<void> {
    for (;;) {
      if (this.errors.length > 0) throw new Error(`idle agents failed: ${this.errors.slice(0, 3).join("; ")}`);
      if (this.inFlight === this.count && (await this.live()) >= this.count) return;
      await sleep(250);
    }
  }

  async close(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    await Promise.allSettled(this.#loops);
    await this.#dispatcher.close();
  }
}

/** Open `count` MCP sessions (initialize + initialized) at `url`, 32 at a time; returns their ids. */
async function openSessions(url: URL, count: number, offset: number): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const one = async (i: number) => {
    const initialize = {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: `scale-${offset + i}`, version: "0" },
      },
    };
    const response = await mcpPost(url, initialize);
    const text = await response.text();
    const session = response.headers.get("mcp-session-id");
    if (response.status !== 200 || !session || !text.includes('"serverInfo"'))
      throw new Error(`initialize ${offset + i}: HTTP ${response.status} ${text.slice(0, 200)}`);
    const initialized = await mcpPost(
      url,
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { headers: { "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18" } },
    );
    await initialized.body?.cancel();
    if (initialized.status !== 202)
      throw new Error(`notifications/initialized ${offset + i}: HTTP ${initialized.status}`);
    ids.push(session);
  };
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < count) await one(next++);
    }),
  );
  return ids;
}

/**
 * The control for the sessions' figure: `count` pings on one existing session, as many
 * requests through hub and agent as the sessions took but opening nothing, so what they
 * leave in RSS (garbage workerd has not collected yet; it cannot be made to) shows.
 */
async function pings(url: URL, session: string, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < count) {
        const id = next++;
        const response = await mcpPost(
          url,
          { jsonrpc: "2.0", id, method: "ping" },
          { headers: { "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18" } },
        );
        const text = await response.text();
        if (response.status !== 200 || !text.includes('"result"'))
          throw new Error(`ping ${id}: HTTP ${response.status} ${text.slice(0, 200)}`);
      }
    }),
  );
}

/** `calls` echo calls over 16 SDK clients. */
function throughput(url: URL): Promise<number> {
  return echoThroughput(url, { total: calls, concurrency: 16 });
}

interface Sample {
  label: string;
  polls: number;
  sessions: number;
  workerd: number;
  hub: number;
  agent: number;
}

const loadAtStart = loadavg();
const hub = await startHub();
let agent: HubAgent | undefined;
const idle = new IdleAgents(hub.url);
try {
  agent = await within(
    "starting the agent",
    startHubAgent(hub.url, tunnelId(1), ["--mcp.command", everythingStdioCommand().join(" ")]),
  );
  const mcpUrl = new URL(`v1/mcp/${tunnelId(1)}`, hub.url);
  const samples: Sample[] = [];
  let opened = 0;
  const sample = async (label: string) => {
    // Let the processes settle (timers, lazy frees) and the hub's Node process collect its
    // garbage (twice: finalizers free more) before reading RSS.
    for (let i = 0; i < 2; i++) {
      hub.child.kill("SIGUSR2");
      await sleep(1000);
    }
    samples.push({
      label,
      polls: idle.count,
      sessions: opened,
      workerd: rssMiB(hub.workerd),
      hub: rssMiB(hub.child.pid!),
      agent: rssMiB(agent!.child.pid!),
    });
  };

  await within("warm-up calls", throughput(mcpUrl)); // JIT and pools warm before anything is compared.
  const none = await within("calls/s, no idle polls", throughput(mcpUrl));
  await sample("baseline: after the warm-up and first calls/s runs");
  for (const step of [polls / 4, polls / 2, polls].map(Math.round)) {
    idle.grow(step);
    await within(`${step} held polls`, idle.settled());
    await sample(`${step} idle polls held`);
  }
  // The control first: as many requests as the sessions will take (initialize + initialized
  // each) on one session, so workerd's heap has grown to hold their garbage before the
  // sessions are counted, and the sessions' rows show what they keep.
  const control = (await within("the control's session", openSessions(mcpUrl, 1, 0)))[0]!;
  await within(`${2 * sessions} pings`, pings(mcpUrl, control, 2 * sessions));
  await sample(`+ ${2 * sessions} pings on one session (control)`);
  for (const step of [sessions / 4, sessions / 2, sessions].map(Math.round)) {
    await within(`${step} sessions`, openSessions(mcpUrl, step - opened, opened + 1));
    opened = step;
    await sample(`+ ${step} sessions open`);
  }
  await within("idle polls still held", idle.settled());
  const held = await within(`calls/s, ${polls} idle polls held`, throughput(mcpUrl));
  if (idle.errors.length > 0 || idle.commands > 0)
    throw new Error(`idle agents: ${idle.commands} commands, errors ${idle.errors.slice(0, 3).join("; ")}`);
  const returned = idle.returned;
  await idle.close();
  const after = await within("calls/s, idle polls gone", throughput(mcpUrl));

  const fmt = (n: number) => n.toFixed(1);
  const base = samples[0]!;
  const afterPolls = samples[3]!;
  const afterControl = samples[4]!;
  const last = samples.at(-1)!;
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  console.log(
    `Node ${process.version} · ${availableParallelism()} CPUs (${cpu}) · ${(totalmem() / 2 ** 30).toFixed(1)} GiB · load average ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} → ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  console.log(
    `idle agents: ${polls} over ${IDLE_TUNNELS} tunnels, ${POLL_HOLD_MS / 1000} s holds (${returned} polls returned empty and were renewed); sessions: initialize through the hub to one Node agent with server-everything (stdio); audit log ${process.env.AIRLOCK_AUDIT === "off" ? "off" : "on"}`,
  );
  console.log("");
  console.log("| state | workerd RSS MiB | hub Node RSS MiB | agent RSS MiB |");
  console.log("|---|---:|---:|---:|");
  for (const s of samples) console.log(`| ${s.label} | ${fmt(s.workerd)} | ${fmt(s.hub)} | ${fmt(s.agent)} |`);
  console.log("");
  const perPoll = (key: "workerd" | "hub") => (((afterPolls[key] - base[key]) * 1024) / polls).toFixed(1);
  const perSession = (key: "workerd" | "hub" | "agent") =>
    (((last[key] - afterControl[key]) * 1024) / sessions).toFixed(1);
  console.log("| per | workerd KiB | hub Node KiB | agent KiB |");
  console.log("|---|---:|---:|---:|");
  console.log(`| held poll (${polls}) | ${perPoll("workerd")} | ${perPoll("hub")} | – |`);
  console.log(
    `| open session (${sessions}) | ${perSession("workerd")} | ${perSession("hub")} | ${perSession("agent")} |`,
  );
  const perPair = (key: "workerd" | "hub" | "agent") =>
    (((afterControl[key] - afterPolls[key]) * 1024) / sessions).toFixed(1);
  console.log(
    `| control: 2 pings, opening nothing | ${perPair("workerd")} | ${perPair("hub")} | ${perPair("agent")} |`,
  );
  console.log("");
  console.log("| echo, 16 MCP SDK clients | calls/s |");
  console.log("|---|---:|");
  console.log(`| no idle polls (before) | ${none.toFixed(0)} |`);
  console.log(`| ${polls} idle polls held (+ ${sessions} sessions open) | ${held.toFixed(0)} |`);
  console.log(`| idle agents gone again (sessions still open) | ${after.toFixed(0)} |`);
  console.log(`\n${calls} calls per run.`);
} finally {
  await idle.close();
  await agent?.stop("SIGTERM");
  await hub.stop();
}
