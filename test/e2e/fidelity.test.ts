/**
 * Fidelity: the same MCP client script (test/support/fidelity-client.ts) runs directly
 * against server-everything over Streamable HTTP and through the hub (workerd) + a real
 * agent process, with server-everything behind the agent over stdio and over HTTP. The
 * normalised transcripts must be identical, whole: messages the server sends outside any
 * request (log messages, resource updates, the roots request) reach the client through
 * the hub's `get-stream` extension (the backend's GET stream, or a stdio server's lines
 * with no request in flight), and a request the client cancelled gets no late answer. The
 * agent leg runs under Node with the whole script, and under Deno and Bun with its core part.
 *
 * The legs start together in `before` (they mostly wait on server-side timers) and each test
 * awaits its own: a leg that cannot start, or an agent that is not running under the runtime
 * its leg names, fails that test with the reason (and the test's time is the leg's).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { everythingStdioCommand, startEverythingHttp, type RunningServer } from "../support/everything.ts";
import { runFidelityScript, type FidelityOptions, type Transcript } from "../support/fidelity-client.ts";
import { CLIENT_TOKEN, startTestHub, type TestHub } from "../support/hub.ts";
import { startHubAgent, type HubAgent } from "../support/hub-stack.ts";
import type { RuntimeName } from "../support/agent-process.ts";

/** Step by step first, so a difference names the step; then the whole transcript. */
function assertSameTranscript(actual: Transcript, expected: Transcript, leg: string): void {
  assert.deepEqual(actual.server, expected.server, `${leg}: initialize result`);
  assert.deepEqual(
    actual.steps.map((s) => s.step),
    expected.steps.map((s) => s.step),
    `${leg}: the same steps ran`,
  );
  for (const [i, step] of expected.steps.entries())
    assert.deepEqual(actual.steps[i], step, `${leg}: step "${step.step}"`);
  assert.deepEqual(actual.serverRequests, expected.serverRequests, `${leg}: server→client requests answered`);
  assert.deepEqual(actual.notifications, expected.notifications, `${leg}: notifications received`);
}

let hub: TestHub;
let direct: RunningServer;
let behindAgent: RunningServer;
const agents: HubAgent[] = [];
type Leg = "direct" | "directCore" | "stdio" | "http" | "deno" | "bun";
/** Every leg's transcript, as it comes in. */
const transcripts: Partial<Record<Leg, Promise<Transcript>>> = {};

const STDIO = ["--mcp.command", everythingStdioCommand().join(" ")];

/**
 * A tunnel served by a fresh agent process with `backend`; the options to run the script
 * through it. The agent must say it runs under `runtime` (`/healthz?verbose=1`), so a leg
 * named after Deno or Bun cannot quietly run another runtime.
 */
async function throughAgent(
  backend: string[],
  runtime: RuntimeName = "node",
): Promise<Pick<FidelityOptions, "url" | "token">> {
  const tunnel = hub.tunnel();
  const agent = await startHubAgent(hub.url, tunnel, backend, { runtime });
  agents.push(agent);
  const health = (await (await fetch(`${agent.opsUrl}/healthz?verbose=1`)).json()) as { runtime?: { name?: string } };
  if (health.runtime?.name !== runtime)
    throw new Error(`the agent meant to run under ${runtime} reports ${JSON.stringify(health.runtime)}`);
  return { url: hub.mcpUrl(tunnel), token: CLIENT_TOKEN };
}

/** Start a leg now; its test awaits it (the no-op catch only keeps an early failure from counting as unhandled). */
function startLeg(leg: Leg, run: () => Promise<Transcript>): void {
  const transcript = run();
  transcript.catch(() => {});
  transcripts[leg] = transcript;
}

before(async () => {
  [hub, direct, behindAgent] = await Promise.all([
    startTestHub({ tunnels: 4, settings: { livenessMs: 5000 } }),
    startEverythingHttp(),
    startEverythingHttp(),
  ]);
  const directUrl = new URL(direct.url);
  startLeg("direct", () => runFidelityScript({ url: directUrl, scope: "full" }));
  startLeg("directCore", () => runFidelityScript({ url: directUrl, scope: "core" }));
  startLeg("stdio", async () => runFidelityScript({ ...(await throughAgent(STDIO)), scope: "full" }));
  startLeg("http", async () =>
    runFidelityScript({ ...(await throughAgent(["--mcp.server-url", behindAgent.url])), scope: "full" }),
  );
  for (const runtime of ["deno", "bun"] as const)
    startLeg(runtime, async () => runFidelityScript({ ...(await throughAgent(STDIO, runtime)), scope: "core" }));
});

after(async () => {
  await Promise.allSettled(Object.values(transcripts));
  await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
  await Promise.all([hub?.close(), direct?.close(), behindAgent?.close()]);
});

describe("fidelity: the whole script under Node", () => {
  test("the direct run itself covers what the suite claims", async () => {
    const expected = await transcripts.direct!;
    const steps = expected.steps.map((s) => s.step).join("\n");
    for (const covered of [
      /tools\/call echo/,
      /get-structured-content/,
      /get-resource-links/,
      /get-tiny-image/,
      /get-annotated-message/,
      /trigger-sampling-request/,
      /trigger-elicitation-request/,
      /trigger-url-elicitation/,
      /gzip-file-as-resource/,
      /bad arguments/,
      /resources\/templates\/list/,
      /resources\/subscribe/,
      /prompts\/get completable-prompt/,
      /completion\/complete/,
      /logging\/setLevel/,
      /toggle-simulated-logging/,
      /get-roots-list/,
      /tasks\/result/,
      /cancellation/,
      /^ping$/m,
    ])
      assert.match(steps, covered);
    const progress = expected.steps.find((s) => s.step.includes("(progress)"))?.progress;
    assert.deepEqual(
      progress,
      [1, 2, 3, 4].map((n) => ({ progress: n, total: 4 })),
    );
    assert.deepEqual(expected.steps.find((s) => s.step === "cancellation: what the client saw")?.outcome, {
      progressBeforeAbort: 1,
      sentCancelled: true,
      lateAnswers: [],
    });
    const methods = expected.serverRequests.map((r) => (r as { method: string }).method);
    assert.deepEqual([...new Set(methods)].sort(), ["elicitation/create", "roots/list", "sampling/createMessage"]);
    assert.ok(expected.notifications.length >= 4, "log messages and resource updates arrived");
  });

  test("through hub + agent, backend over stdio: identical", async () => {
    assertSameTranscript(await transcripts.stdio!, await transcripts.direct!, "hub + agent (stdio)");
  });

  test("through hub + agent, backend over HTTP: identical", async () => {
    assertSameTranscript(await transcripts.http!, await transcripts.direct!, "hub + agent (HTTP)");
  });
});

describe("fidelity: the agent leg under Deno and Bun (core script, stdio backend)", () => {
  for (const runtime of ["deno", "bun"] as const) {
    test(`${runtime}: identical to the direct run`, async () => {
      const actual = await transcripts[runtime]!;
      assert.ok(actual.steps.length > 0, `the ${runtime} leg ran no step`);
      assertSameTranscript(actual, await transcripts.directCore!, `hub + agent under ${runtime}`);
    });
  }
});
