/**
 * The fault cases: each starts what it needs (hub process, agents, servers, fake control
 * plane), injects one fault, and reports what the client or operator saw against its bound.
 * The bounds are the ones docs/reliability.md promises.
 */
import { readFileSync } from "node:fs";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { startAgentProcess, type AgentProcess } from "../../test/support/agent-process.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../../test/support/fake-control-plane.ts";
import { connectClient, startHubAgent, type HubAgent } from "../../test/support/hub-stack.ts";
import { CLIENT_TOKEN } from "../../test/support/hub.ts";
import { run } from "../../test/support/run.ts";
import { startHubProcess, TUNNEL, type HubProcess } from "./processes.ts";

export interface FaultCase {
  name: string;
  /** The client-visible outcome the case must have, and its time bound. */
  bound: string;
  run(): Promise<{ ok: boolean; outcome: string }>;
}

const FIXTURE = fileURLToPath(new URL("../../test/fixtures/hub-fixture-server.ts", import.meta.url));
const BACKEND = ["--mcp.command", `${process.execPath} --import tsx ${FIXTURE}`];

/** The pid's parent, from /proc. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

function text(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]!.text;
}

/** How a call ended, as words: its text, or the error the client got. */
async function settle(call: Promise<unknown>): Promise<{ ok: boolean; text: string; ms: number }> {
  const started = performance.now();
  try {
    const result = await call;
    return { ok: true, text: text(result).slice(0, 200), ms: performance.now() - started };
  } catch (error) {
    return { ok: false, text: (error as Error).message.slice(0, 400), ms: performance.now() - started };
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A hub process with `count` fixture agents and one connected client; everything stopped after `body`. */
async function withStack<T>(
  count: number,
  options: { hubArgs?: string[]; agentArgs?: string[]; listen?: string; stateDir?: string },
  body: (stack: { hub: HubProcess; agents: HubAgent[]; client: Client }) => Promise<T>,
): Promise<T> {
  const hub = await startHubProcess({ args: options.hubArgs, listen: options.listen, stateDir: options.stateDir });
  const agents: HubAgent[] = [];
  let client: Client | undefined;
  try {
    for (let i = 0; i < count; i++)
      agents.push(await startHubAgent(hub.url, TUNNEL, BACKEND, { args: options.agentArgs }));
    client = (await connectClient(hub.mcpUrl, { name: "faults" })).client;
    return await body({ hub, agents, client });
  } finally {
    await client?.close().catch(() => {});
    await Promise.all(agents.map((agent) => agent.stop("SIGKILL")));
    await hub.stop();
  }
}

/** `airlock run` against a fake control plane, with the fixture server. */
async function agentOn(cp: FakeControlPlane, extra: string[] = []): Promise<AgentProcess> {
  return startAgentProcess(
    "node",
    [
      "--control-plane.base-url",
      cp.baseUrl,
      "--control-plane.tunnel-id",
      cp.tunnelId,
      "--control-plane.api-key",
      "env:FAULTS_KEY",
      "--control-plane.poll-timeout",
      "2s",
      ...BACKEND,
      ...extra,
    ],
    { FAULTS_KEY: cp.apiKey },
  );
}

/** A fake control plane with one agent polling it; both stopped after `body`. */
async function withFakeControlPlane<T>(body: (cp: FakeControlPlane, agent: AgentProcess) => Promise<T>): Promise<T> {
  const cp = await startFakeControlPlane();
  try {
    const agent = await agentOn(cp);
    try {
      return await body(cp, agent);
    } finally {
      await agent.stop();
    }
  } finally {
    await cp.close();
  }
}

/** Queue an echo call and check it is answered, and answered exactly once. */
async function servedOnce(
  cp: FakeControlPlane,
  message: string,
  timeoutMs: number,
): Promise<{ ok: boolean; outcome: string }> {
  const started = performance.now();
  const [command] = cp.enqueue(CALL(1, "echo", { message }));
  const final = await cp.waitForFinal(command!.request_id, timeoutMs);
  const posts = cp.responsesFor(command!.request_id).length;
  return {
    ok: posts === 1 && JSON.stringify(final.payload.resp_json).includes(message),
    outcome: `served once (${posts} post) ${seconds(performance.now() - started)} after the fault began`,
  };
}

const CALL = (id: number, name: string, args: Record<string, unknown>) => ({
  jsonrpc: { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } },
});

export const CASES: FaultCase[] = [
  {
    name: "dead-agent",
    bound:
      "two agents, the one serving a 10-minute call is SIGKILLed: the call ends with a JSON-RPC error naming that agent ≤ 15 s after the kill; new sessions go to the survivor",
    run: () =>
      withStack(2, {}, async ({ hub, agents, client }) => {
        const backendPid = Number(text(await client.callTool({ name: "pid", arguments: {} })));
        const victim = agents.find((agent) => agent.child.pid === parentOf(backendPid));
        if (!victim) return { ok: false, outcome: `no agent owns backend ${backendPid}` };
        const call = settle(
          client.callTool({ name: "slow", arguments: { ms: 600_000, message: "never" } }, undefined, {
            timeout: 300_000,
          }),
        );
        await sleep(500);
        const killed = performance.now();
        await victim.stop("SIGKILL");
        const outcome = await call;
        const after = performance.now() - killed;
        const fresh = (await connectClient(hub.mcpUrl, { name: "after" })).client;
        const survivor = await settle(fresh.callTool({ name: "echo", arguments: { message: "survivor" } }));
        await fresh.close();
        const named = outcome.text.includes(victim.instanceId) && /stopped contacting the hub/.test(outcome.text);
        return {
          ok: !outcome.ok && named && after <= 15_000 && survivor.text === "Echo: survivor",
          outcome: `error after ${seconds(after)}: ${outcome.text}; a new session answers "${survivor.text}"`,
        };
      }),
  },
  {
    name: "oversized-result",
    bound:
      "a 20 MB tool result (hub limit 16 MiB): a JSON-RPC error naming the size and the limit within seconds, not the 120 s deadline",
    run: () =>
      withStack(1, {}, async ({ client }) => {
        const outcome = await settle(
          client.callTool({ name: "big", arguments: { bytes: 20_000_000 } }, undefined, { timeout: 300_000 }),
        );
        const named = /result is \d+ bytes, over the control plane's limit of 16777216 bytes/.test(outcome.text);
        return {
          ok: !outcome.ok && named && outcome.ms < 30_000,
          outcome: `after ${seconds(outcome.ms)}: ${outcome.text}`,
        };
      }),
  },
  {
    name: "oversized-request",
    bound:
      "a 5 MiB MCP request (hub limit 4 MiB), six times: 413 request_body_too_large naming the limit every time, never 502",
    run: () =>
      withStack(1, {}, async ({ hub }) => {
        const body = JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: { name: "echo", arguments: { message: "x".repeat(5 * 1024 * 1024) } },
        });
        const statuses: number[] = [];
        let sample = "";
        for (let i = 0; i < 6; i++) {
          const response = await fetch(hub.mcpUrl, {
            method: "POST",
            body,
            headers: {
              Authorization: `Bearer ${CLIENT_TOKEN}`,
              "Content-Type": "application/json",
              Accept: "application/json, text/event-stream",
            },
          });
          statuses.push(response.status);
          sample = (await response.text()).slice(0, 200);
        }
        return {
          ok: statuses.every((s) => s === 413) && /limit of 4194304 bytes/.test(sample),
          outcome: `statuses ${statuses.join(" ")}; ${sample}`,
        };
      }),
  },
  {
    name: "backend-crash",
    bound: "the stdio server is SIGKILLed mid-call: that call fails within 2 s; the next call gets a new child",
    run: () =>
      withStack(1, {}, async ({ client }) => {
        const pid = Number(text(await client.callTool({ name: "pid", arguments: {} })));
        const call = settle(client.callTool({ name: "slow", arguments: { ms: 60_000, message: "never" } }));
        await sleep(300);
        const killed = performance.now();
        process.kill(pid, "SIGKILL");
        const outcome = await call;
        const after = performance.now() - killed;
        const next = await settle(
          (async () => {
            for (let i = 0; ; i++) {
              try {
                return await client.callTool({ name: "pid", arguments: {} });
              } catch (error) {
                if (i >= 20) throw error;
                await sleep(250);
              }
            }
          })(),
        );
        return {
          ok: !outcome.ok && after < 2000 && next.ok && next.text !== String(pid),
          outcome: `failed after ${seconds(after)}: ${outcome.text}; next call served by pid ${next.text} (was ${pid})`,
        };
      }),
  },
  {
    name: "backend-hang",
    bound:
      "a call that never ends, agent --mcp.timeout 2s: a timeout error within timeout + 1.5 s; the server keeps serving",
    run: () =>
      withStack(1, { agentArgs: ["--mcp.timeout", "2s"] }, async ({ client }) => {
        const outcome = await settle(
          client.callTool({ name: "slow", arguments: { ms: 600_000, message: "never" } }, undefined, {
            timeout: 300_000,
          }),
        );
        const after = await settle(client.callTool({ name: "echo", arguments: { message: "still here" } }));
        return {
          ok: !outcome.ok && outcome.ms < 3500 && after.text === "Echo: still here",
          outcome: `after ${seconds(outcome.ms)}: ${outcome.text}; then "${after.text}"`,
        };
      }),
  },
  {
    name: "control-plane-5xx-429",
    bound:
      "the control plane answers polls 503, 429 (Retry-After: 1), 500: the agent backs off, honours Retry-After, and serves the queued call exactly once within 10 s",
    run: () =>
      withFakeControlPlane(async (cp) => {
        cp.scriptPoll({ status: 503, code: "tunnel_transport_unavailable" });
        cp.scriptPoll({ status: 429, retryAfter: "1", code: "rate_limit_exceeded" });
        cp.scriptPoll({ status: 500 });
        return servedOnce(cp, "after the errors", 10_000);
      }),
  },
  {
    name: "control-plane-outage",
    bound:
      "the control plane drops five polls in a row (connection closed): the agent keeps retrying with backoff and serves the queued call exactly once",
    run: () =>
      withFakeControlPlane(async (cp) => {
        cp.scriptPoll({ drop: true }, 5);
        return servedOnce(cp, "after the outage", 20_000);
      }),
  },
  {
    name: "malformed-command",
    bound:
      "a command without a shard token or JSON-RPC body: ignored with a warning naming why; the next valid command is served",
    run: () =>
      withFakeControlPlane(async (cp, agent) => {
        const [bad] = cp.enqueue({ request_id: "req_malformed", shard_token: "", jsonrpc: "not json-rpc" as never });
        const [good] = cp.enqueue(CALL(2, "echo", { message: "valid" }));
        await cp.waitForFinal(good!.request_id, 10_000);
        const warning = agent.logs().find((line) => /malformed|unknown type/.test(String(line.msg)));
        return {
          ok: warning !== undefined && cp.responsesFor(bad!.request_id).length === 0,
          outcome: `agent: "${warning?.msg}" (${String(warning?.reason ?? "").replaceAll("\n", " ")}); next command served`,
        };
      }),
  },
  {
    name: "bad-config",
    bound:
      "a misspelt key in the config file: exit code 2 with the key path and the key meant, before any network call",
    run: async () => {
      const dir = mkdtempSync(join(tmpdir(), "airlock-faults-config-"));
      try {
        const file = join(dir, "bad.yaml");
        writeFileSync(
          file,
          "control_plane:\n  tunnel_id: tunnel_0123456789abcdef0123456789abcdef\n  api_key: env:X\nmcp:\n  comands:\n    - command: npx -y server\n",
        );
        const result = await run(
          process.execPath,
          ["--import", "tsx", fileURLToPath(new URL("../../agent/main.ts", import.meta.url)), "run", "--config", file],
          { ...process.env, X: "k" },
        );
        const said = result.output.trim().split("\n").slice(0, 2).join(" ");
        return { ok: result.code === 2 && /mcp\.comands/.test(said), outcome: `exit ${result.code}: ${said}` };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: "two-agents",
    bound: "two agents, 20 sessions × 10 calls: every answer right, every call run exactly once across the agents",
    run: () =>
      withStack(2, {}, async ({ hub, agents }) => {
        const served = async () =>
          (
            await Promise.all(
              agents.map(async (agent) => {
                const metrics = await (await fetch(`${agent.opsUrl}/metrics`)).text();
                return [...metrics.matchAll(/^airlock_commands_total\{[^}]*\} (\d+)$/gm)].reduce(
                  (sum, m) => sum + Number(m[1]),
                  0,
                );
              }),
            )
          ).reduce((a, b) => a + b, 0);
        const before = await served();
        let wrong = 0;
        const clients = await Promise.all(
          Array.from({ length: 20 }, (_, i) => connectClient(hub.mcpUrl, { name: `two-${i}` })),
        );
        const afterConnect = await served();
        await Promise.all(
          clients.map(async ({ client }, s) => {
            for (let i = 0; i < 10; i++) {
              if (
                text(await client.callTool({ name: "echo", arguments: { message: `${s}-${i}` } })) !== `Echo: ${s}-${i}`
              )
                wrong++;
            }
          }),
        );
        const ran = (await served()) - afterConnect;
        await Promise.all(clients.map(({ client }) => client.close()));
        return {
          ok: wrong === 0 && ran === 200,
          outcome: `${200 - wrong}/200 right; ${ran} tool calls run across both agents (${afterConnect - before} for the 20 handshakes)`,
        };
      }),
  },
  {
    name: "slow-client",
    bound: "a client that never reads its 10 MB answer: another client's 20 echo calls meanwhile take < 5 s in all",
    run: () =>
      withStack(1, {}, async ({ hub, client }) => {
        const { client: stuck, transport } = await connectClient(hub.mcpUrl, { name: "never-reads" });
        const response = await fetch(hub.mcpUrl, {
          method: "POST",
          headers: {
            Authorization: `Bearer ${CLIENT_TOKEN}`,
            "Content-Type": "application/json",
            Accept: "application/json, text/event-stream",
            "Mcp-Session-Id": transport.sessionId!,
            "Mcp-Protocol-Version": "2025-06-18",
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 99,
            method: "tools/call",
            params: { name: "big", arguments: { bytes: 10_000_000 } },
          }),
        });
        // The answer's headers are here; its body is never read.
        const started = performance.now();
        for (let i = 0; i < 20; i++) await client.callTool({ name: "echo", arguments: { message: `meanwhile ${i}` } });
        const took = performance.now() - started;
        await response.body?.cancel().catch(() => {});
        await stuck.close().catch(() => {});
        return {
          ok: took < 5000,
          outcome: `unread answer ${response.status}; 20 calls by another client took ${seconds(took)}`,
        };
      }),
  },
  {
    name: "hub-restart",
    bound:
      "the hub is stopped mid-call and started again on its state: the call fails at once; the agent is back ≤ 15 s; the old session still works",
    run: async () => {
      const stateDir = mkdtempSync(join(tmpdir(), "airlock-faults-restart-"));
      try {
        let hub = await startHubProcess({ stateDir });
        const listen = `127.0.0.1:${hub.url.port}`;
        const agent = await startHubAgent(hub.url, TUNNEL, BACKEND);
        const { client } = await connectClient(hub.mcpUrl, { name: "restart" });
        try {
          const call = settle(client.callTool({ name: "slow", arguments: { ms: 5000, message: "across" } }));
          await sleep(500);
          const stopped = performance.now();
          await hub.stop();
          const outcome = await call;
          const failedAfter = performance.now() - stopped;
          hub = await startHubProcess({ stateDir, listen });
          const restarted = performance.now();
          const again = await settle(
            (async () => {
              for (;;) {
                try {
                  return await client.callTool({ name: "echo", arguments: { message: "same session" } });
                } catch (error) {
                  if (performance.now() - restarted > 15_000) throw error;
                  await sleep(250);
                }
              }
            })(),
          );
          const back = performance.now() - restarted;
          return {
            ok: !outcome.ok && failedAfter < 5000 && again.text === "Echo: same session" && back <= 15_000,
            outcome: `in-flight call failed ${seconds(failedAfter)} after the stop (${outcome.text.slice(0, 120)}); old session answered ${seconds(back)} after the restart`,
          };
        } finally {
          await client.close().catch(() => {});
          await agent.stop("SIGKILL");
          await hub.stop();
        }
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  },
  {
    name: "upstream-401",
    bound:
      "relay mode, the upstream refuses the relay's key: the agent's /readyz is 503 and says the credentials were refused, within one poll",
    run: async () => {
      const cp = await startFakeControlPlane({ tunnelId: TUNNEL });
      const hub = await startHubProcess({
        args: ["--upstream", cp.baseUrl, "--upstream-key", "env:FAULTS_UPSTREAM_KEY"],
        env: { FAULTS_UPSTREAM_KEY: "wrong-upstream-key" },
      });
      let agent: AgentProcess | undefined;
      try {
        agent = await startAgentProcess(
          "node",
          [
            "--control-plane.base-url",
            hub.url.origin,
            "--control-plane.tunnel-id",
            TUNNEL,
            "--control-plane.api-key",
            "env:FAULTS_KEY",
            ...BACKEND,
          ],
          { FAULTS_KEY: "test-agent-key-0123456789" },
        );
        const started = performance.now();
        let readyz = { status: 0, body: "" };
        while (performance.now() - started < 15_000) {
          const response = await fetch(`${agent.opsUrl}/readyz`);
          readyz = { status: response.status, body: await response.text() };
          if (readyz.status === 503 && /refused|401|credential/i.test(readyz.body)) break;
          await sleep(200);
        }
        return {
          ok: readyz.status === 503 && /refused|401|credential/i.test(readyz.body),
          outcome: `/readyz ${readyz.status} after ${seconds(performance.now() - started)}: ${readyz.body.slice(0, 240)}`,
        };
      } finally {
        await agent?.stop();
        await hub.stop();
        await cp.close();
      }
    },
  },
];
