/**
 * Several real agent processes on one hub tunnel, each with its own stdio backend (a small
 * SDK server that can say which process answered): exactly-once delivery, session
 * affinity, a 1 MB result, 100 concurrent clients, an agent killed with SIGKILL, and a hub
 * restart over its persistent state.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { bigText } from "../fixtures/hub-fixture-server.ts";
import { processAlive } from "../support/everything.ts";
import { freePort } from "../support/ports.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, startHubAgent, type HubAgent } from "../support/hub-stack.ts";

const FIXTURE = fileURLToPath(new URL("../fixtures/hub-fixture-server.ts", import.meta.url));
/**
 * One shared child per agent (`share: true`): this file tells agents apart by their backend's
 * pid, so each agent must have exactly one (per-session children are tested in stdio-sessions).
 */
function backendArgs(dir: string): string[] {
  const config = join(dir, "agent.yaml");
  writeFileSync(
    config,
    JSON.stringify({
      mcp: { commands: [{ channel: "main", command: `${process.execPath} --import tsx ${FIXTURE}`, share: true }] },
    }),
  );
  return ["--config", config];
}
// Long enough that an agent busy serialising a 20 MB result on a loaded machine is not taken for lost.
const LIVENESS_MS = 3000;
const RESPONSE_TIMEOUT_MS = 60_000;

interface Session {
  client: Client;
  sessionId: string;
  /** Process id of the backend (so: the agent) that serves this session. */
  pid: string;
}

function text(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]!.text;
}

/** Sum of `airlock_commands_total` over all its series on an agent. */
async function commandsServed(agent: HubAgent): Promise<number> {
  const metrics = await (await fetch(`${agent.opsUrl}/metrics`)).text();
  return [...metrics.matchAll(/^airlock_commands_total\{[^}]*\} (\d+)$/gm)].reduce(
    (sum, match) => sum + Number(match[1]),
    0,
  );
}

/** The pid of the agent's stdio backend, from its "MCP server process started" log line. */
async function backendPid(agent: HubAgent): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const started = agent.logs().find((record) => record.msg === "MCP server process started");
    if (started) return String(started.pid);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`agent ${agent.instanceId} logged no backend start:\n${agent.stderr()}`);
}

interface TunnelStatus {
  waitingPolls: number;
  pending: number;
  queued: number;
}

/** Until the hub's `/status` for `tunnel` satisfies `ready`. */
async function waitForStatus(
  hub: URL,
  tunnel: string,
  ready: (status: TunnelStatus) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const response = await fetch(new URL(`v1/tunnels/${tunnel}/status`, hub), {
      headers: { Authorization: `Bearer ${AGENT_KEY}` },
    });
    if (ready((await response.json()) as TunnelStatus)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`waited ${timeoutMs} ms for ${what} on tunnel ${tunnel}`);
}

/** Until the hub holds a poll on `tunnel` (some agent is connected right now). */
const waitForHeldPoll = (hub: URL, tunnel: string, timeoutMs: number) =>
  waitForStatus(hub, tunnel, (status) => status.waitingPolls > 0, timeoutMs, "an agent's poll");

describe("hub with two agents on one tunnel", { concurrency: false }, () => {
  let stateDir: string;
  let port: number;
  let hub: TestHub;
  let tunnel: string;
  let url: URL;
  let agents: HubAgent[] = [];
  const pids = new Map<string, HubAgent>();
  const sessions: Session[] = [];

  // A response deadline far beyond the liveness window, so an error before it can only be the lost lease.
  const startHub = () =>
    startTestHub({
      tunnels: 1,
      port,
      stateDir,
      settings: { livenessMs: LIVENESS_MS, sseKeepaliveMs: 500, responseTimeoutMs: RESPONSE_TIMEOUT_MS },
    });

  async function openSession(name = "hub-agents"): Promise<Session> {
    const { client, transport } = await connectClient(url, { name });
    const pid = text(await client.callTool({ name: "pid", arguments: {} }));
    return { client, sessionId: transport.sessionId!, pid };
  }

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), "airlock-hub-agents-"));
    port = await freePort();
    hub = await startHub();
    tunnel = hub.tunnel();
    url = hub.mcpUrl(tunnel);
    agents = await Promise.all(
      [0, 1].map(() =>
        startHubAgent(hub.url, tunnel, backendArgs(stateDir), { args: ["--control-plane.poll-timeout", "5s"] }),
      ),
    );
    for (const agent of agents) pids.set(await backendPid(agent), agent);
    // Sessions until both agents serve at least one (each initialize goes to whichever agent polls first).
    while (sessions.length < 6 || new Set(sessions.map((s) => s.pid)).size < 2) {
      if (sessions.length >= 24) throw new Error("24 sessions all landed on one agent");
      sessions.push(await openSession());
    }
  });

  after(async () => {
    await Promise.all(sessions.map((s) => s.client.close().catch(() => {})));
    await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
    await hub?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("every call is delivered exactly once, and each session stays on the agent that served its initialize", async () => {
    for (const session of sessions)
      assert.ok(pids.has(session.pid), `session ${session.sessionId} is served by one of the agents' backends`);
    const before = await Promise.all(agents.map(commandsServed));
    const perSession = 10;
    await Promise.all(
      sessions.map((session, s) =>
        Promise.all(
          Array.from({ length: perSession }, async (_, i) => {
            if (i % 2 === 0) {
              assert.equal(
                text(await session.client.callTool({ name: "pid", arguments: {} })),
                session.pid,
                "affinity kept",
              );
            } else {
              assert.equal(
                text(await session.client.callTool({ name: "echo", arguments: { message: `s${s}-c${i}` } })),
                `Echo: s${s}-c${i}`,
              );
            }
          }),
        ),
      ),
    );
    const served = (await Promise.all(agents.map(commandsServed))).map((count, i) => count - before[i]!);
    for (const [i, agent] of agents.entries()) {
      const pid = [...pids].find(([, a]) => a === agent)![0];
      const expected = sessions.filter((s) => s.pid === pid).length * perSession;
      assert.equal(served[i], expected, `agent ${i} ran exactly the commands of its own sessions`);
      assert.ok(expected > 0);
    }
  });

  test("a 1 MB tool result arrives intact", async () => {
    const bytes = 1024 * 1024;
    const result = await sessions[0]!.client.callTool({ name: "big", arguments: { bytes } });
    const received = text(result);
    assert.equal(received.length, bytes);
    assert.equal(received, bigText(bytes));
  });

  test("a 20 MB tool result, over the hub's 16 MiB response limit, reaches the client at once as an error naming size and limit", async (t) => {
    const started = performance.now();
    const outcome = await sessions[0]!.client
      .callTool({ name: "big", arguments: { bytes: 20_000_000 } }, undefined, { timeout: RESPONSE_TIMEOUT_MS * 2 })
      .then(
        () => "answered",
        (error: Error) => error.message,
      );
    assert.match(outcome, /The MCP server's result is \d+ bytes, over the control plane's limit of 16777216 bytes/);
    assert.doesNotMatch(outcome, /tunnel_response_timeout|504/, "not the response deadline");
    t.diagnostic(`oversized result answered in ${Math.round(performance.now() - started)} ms`);
    // The session is intact afterwards.
    assert.equal(
      text(await sessions[0]!.client.callTool({ name: "echo", arguments: { message: "after" } })),
      "Echo: after",
    );
  });

  test("100 concurrent clients, each initialize + a tool call: all correct", async (t) => {
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const { client } = await connectClient(url, { name: `many-${i}` });
        try {
          return text(await client.callTool({ name: "echo", arguments: { message: `client ${i}` } }));
        } finally {
          await client.close();
        }
      }),
    );
    assert.deepEqual(
      answers,
      Array.from({ length: 100 }, (_, i) => `Echo: client ${i}`),
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 30_000, `100 clients took ${Math.round(elapsed)} ms`);
    t.diagnostic(`100 clients (initialize + call + close) in ${Math.round(elapsed)} ms`);
  });

  test("an agent killed with SIGKILL mid-call: the call ends with an error naming it, its sessions fail fast with 404, the other agent keeps serving", async (t) => {
    const victim = agents[0]!;
    const victimPid = [...pids].find(([, a]) => a === victim)![0];
    const doomed = sessions.find((s) => s.pid === victimPid)!;
    const surviving = sessions.find((s) => s.pid !== victimPid)!;
    // The first progress notification says the victim's backend is running the call (a pending
    // count could include the sessions' standing GET streams, and a delivered poll may not have
    // reached the agent yet).
    let started: () => void = () => {};
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const longCall = doomed.client.callTool(
      { name: "slow", arguments: { ms: RESPONSE_TIMEOUT_MS * 2, message: "never" } },
      undefined,
      { timeout: RESPONSE_TIMEOUT_MS * 3, onprogress: () => started() },
    );
    const callOutcome = longCall.then(
      () => "answered",
      (error: Error) => error.message,
    );
    await Promise.race([
      running,
      longCall.then(() => {
        throw new Error("the long call answered before the kill");
      }),
    ]);
    await victim.stop("SIGKILL");
    const killedAt = performance.now();
    const callError = await callOutcome;
    const callFailedAfter = performance.now() - killedAt;
    assert.match(
      callError,
      new RegExp(`-32603.*Agent ${victim.instanceId} took this request and then stopped contacting the hub`),
    );
    assert.doesNotMatch(
      callError,
      /tunnel_response_timeout|504/,
      "ended by the lost lease, not by the response deadline",
    );
    t.diagnostic(
      `the call in flight on the killed agent failed ${Math.round(callFailedAfter)} ms after the kill (liveness ${LIVENESS_MS} ms, deadline ${RESPONSE_TIMEOUT_MS} ms)`,
    );

    const response = await mcpPost(
      url,
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: "anyone?" } } },
      {
        headers: { "Mcp-Session-Id": doomed.sessionId, "Mcp-Protocol-Version": "2025-06-18" },
      },
    );
    const waited = performance.now() - killedAt;
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, "mcp_session_agent_gone");
    // How soon is reported, not asserted: wall-clock time on a loaded machine is no test. The 404
    // naming the gone agent (not a deadline's 504) is what proves the lease ended it.
    t.diagnostic(
      `the dead agent's session failed ${Math.round(waited)} ms after the kill (liveness ${LIVENESS_MS} ms)`,
    );

    assert.equal(
      text(await surviving.client.callTool({ name: "echo", arguments: { message: "still here" } })),
      "Echo: still here",
    );
    const fresh = await openSession("after-the-kill");
    sessions.push(fresh);
    assert.notEqual(fresh.pid, victimPid, "new sessions go to the live agent");
    // The killed agent's backend saw its stdin close and exited too.
    const deadline = Date.now() + 5000;
    while (processAlive(Number(victimPid)) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(processAlive(Number(victimPid)), false);
  });

  test("hub restart over the same state: a request in flight fails cleanly; the agent reconnects by itself; its sessions and new ones work", async (t) => {
    const agent = agents[1]!;
    const session = sessions.find((s) => pids.get(s.pid) === agent)!;
    const inFlight = session.client.callTool({ name: "slow", arguments: { ms: 3000, message: "across the restart" } });
    const outcome = inFlight.then(
      () => "answered",
      (error: Error) => `failed: ${error.message}`,
    );
    // Let the call reach the agent before pulling the hub away.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stoppedAt = performance.now();
    await hub.close();
    const failed = await outcome;
    assert.match(failed, /^failed: /, "the client of a request in flight gets an error, not a hang");
    const failedAfter = performance.now() - stoppedAt;
    assert.ok(failedAfter < 5000);

    hub = await startHub();
    const restartedAt = performance.now();
    // The restarted hub remembers the agent (and counts it live for one window after its last
    // call before the restart), so wait for a poll it actually holds: the agent is back.
    await waitForHeldPoll(hub.url, tunnel, 20_000);
    const reconnectMs = performance.now() - restartedAt;
    assert.ok(reconnectMs < 15_000, `the agent reconnected after ${Math.round(reconnectMs)} ms`);
    t.diagnostic(
      `in-flight request failed ${Math.round(failedAfter)} ms after the hub stopped; agent live again ${Math.round(reconnectMs)} ms after the restart`,
    );

    assert.equal(text(await session.client.callTool({ name: "pid", arguments: {} })), session.pid);
    // The hub minted this session's id (stdio has none) and kept it in the Durable Object's
    // storage: it still knows it, so it answers DELETE itself; an id it never minted is an
    // unknown session (404, as MCP asks), whatever the backend.
    const deleted = await fetch(url, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${CLIENT_TOKEN}`, "Mcp-Session-Id": session.sessionId },
    });
    assert.equal(deleted.status, 204);
    const unknown = await fetch(url, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${CLIENT_TOKEN}`, "Mcp-Session-Id": `airlock-${"0".repeat(32)}` },
    });
    assert.equal(unknown.status, 404, "an id the hub does not know is an unknown session");
    const fresh = await openSession("after-the-restart");
    sessions.push(fresh);
    assert.equal(
      text(await fresh.client.callTool({ name: "echo", arguments: { message: "new hub, same state" } })),
      "Echo: new hub, same state",
    );
  });
});
