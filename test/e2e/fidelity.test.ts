/**
 * Fidelity: the same MCP client script (test/support/fidelity-client.ts) runs directly
 * against server-everything over Streamable HTTP and through the hub (workerd) + a real
 * agent process, with server-everything behind the agent over stdio and over HTTP. The
 * normalised transcripts must be identical, whole: messages the server sends outside any
 * request (log messages, resource updates, the roots request) reach the client through
 * the hub's `get-stream` extension (the backend's GET stream, or a stdio server's lines
 * with no request in flight), and a request the client cancelled gets no late answer. The
 * agent leg runs under Node with the whole script, and under Deno and Bun with its core part.
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
/** Every leg's transcript; the legs run at once (they mostly wait on server-side timers). */
const transcripts: Partial<Record<"direct" | "directCore" | "stdio" | "http" | "deno" | "bun", Transcript>> = {};

const STDIO = ["--mcp.command", everythingStdioCommand().join(" ")];

/** A tunnel served by a fresh agent process with `backend`; the options to run the script through it. */
async function throughAgent(
  backend: string[],
  runtime: RuntimeName = "node",
): Promise<Pick<FidelityOptions, "url" | "token">> {
  const tunnel = hub.tunnel();
  agents.push(await startHubAgent(hub.url, tunnel, backend, { runtime }));
  return { url: hub.mcpUrl(tunnel), token: CLIENT_TOKEN };
}

before(async () => {
  [hub, direct, behindAgent] = await Promise.all([
    startTestHub({ tunnels: 4, settings: { livenessMs: 5000 } }),
    startEverythingHttp(),
    startEverythingHttp(),
  ]);
  const [stdio, http, deno, bun] = await Promise.all([
    throughAgent(STDIO),
    throughAgent(["--mcp.server-url", behindAgent.url]),
    throughAgent(STDIO, "deno"),
    throughAgent(STDIO, "bun"),
  ]);
  const directUrl = new URL(direct.url);
  [transcripts.direct, transcripts.directCore, transcripts.stdio, transcripts.http, transcripts.deno, transcripts.bun] =
    await Promise.all([
      runFidelityScript({ url: directUrl, scope: "full" }),
      runFidelityScript({ url: directUrl, scope: "core" }),
      runFidelityScript({ ...stdio, scope: "full" }),
      runFidelityScript({ ...http, scope: "full" }),
      runFidelityScript({ ...deno, scope: "core" }),
      runFidelityScript({ ...bun, scope: "core" }),
    ]);
});

after(async () => {
  await Promise.all(agents.map((agent) => agent.stop("SIGTERM")));
  await Promise.all([hub?.close(), direct?.close(), behindAgent?.close()]);
});

describe("fidelity: the whole script under Node", () => {
  test("the direct run itself covers what the suite claims", () => {
    const expected = transcripts.direct!;
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

  test("through hub + agent, backend over stdio: identical", () => {
    assertSameTranscript(transcripts.stdio!, transcripts.direct!, "hub + agent (stdio)");
  });

  test("through hub + agent, backend over HTTP: identical", () => {
    assertSameTranscript(transcripts.http!, transcripts.direct!, "hub + agent (HTTP)");
  });
});

describe("fidelity: the agent leg under Deno and Bun (core script, stdio backend)", () => {
  for (const runtime of ["deno", "bun"] as const) {
    test(`${runtime}: identical to the direct run`, () => {
      assertSameTranscript(transcripts[runtime]!, transcripts.directCore!, `hub + agent under ${runtime}`);
    });
  }
});
