/**
 * The admin UI on a real running agent (`startAgent` + `mountAdminUi`): fake control plane,
 * server-everything over stdio, the operator listener on 127.0.0.1. After a call has gone
 * through the tunnel the UI shows the agent ready, connected, the backend up and the call.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { quote } from "shell-quote";
import { startAgent } from "../../agent/agent.ts";
import type { AgentHandle } from "../../agent/agent.ts";
import { loadConfig } from "../../agent/config/load.ts";
import { createLogTail, createRecentCalls } from "../../agent/ops/recent.ts";
import { mountAdminUi } from "../../agent/ops/ui.tsx";
import { createUiCredential } from "../../agent/ops/ui-auth.ts";
import { createLogger } from "../../shared/log.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import type { FakeControlPlane } from "../support/fake-control-plane.ts";
import { everythingStdioCommand, rpc } from "../support/everything.ts";

let cp: FakeControlPlane;
let agent: AgentHandle;
let calls: ReturnType<typeof createRecentCalls>;
const UI_TOKEN = "ui-agent-test-token-0123456789";
const ui = { headers: { Authorization: `Bearer ${UI_TOKEN}` } };

before(async () => {
  cp = await startFakeControlPlane();
  const loaded = await loadConfig({
    argv: [
      "--control-plane.base-url",
      cp.baseUrl,
      "--control-plane.tunnel-id",
      cp.tunnelId,
      "--mcp.command",
      quote(everythingStdioCommand()),
      "--health.listen-addr",
      "127.0.0.1:0",
      "--control-plane.poll-timeout",
      "2s",
    ],
    env: { CONTROL_PLANE_API_KEY: cp.apiKey },
    cwd: process.cwd(),
  });
  const logs = createLogTail(loaded.config.adminUi.logBufferEvents);
  const credential = await createUiCredential(UI_TOKEN);
  calls = createRecentCalls();
  const log = createLogger({ level: "info", sink: logs.sink, secrets: () => loaded.secrets });
  agent = await startAgent(loaded, {
    log,
    events: calls.events,
    extendOps: (app, handle) => mountAdminUi(app, handle, { logger: log, calls, logs, credential }),
  });
});

after(async () => {
  await agent?.stop();
  await cp?.close();
});

test("run → /ui shows the agent healthy, with the call that went through", async () => {
  const [init] = cp.enqueue({ jsonrpc: rpc.initialize(1) });
  const session = (await cp.waitForFinal(init!.request_id, 20_000)).payload.resp_headers as
    | Record<string, string[]>
    | undefined;
  const headers: Record<string, string[]> = session?.["Mcp-Session-Id"]
    ? { "Mcp-Session-Id": session["Mcp-Session-Id"] }
    : {};
  const [call] = cp.enqueue({ jsonrpc: rpc.call(2, "echo", { message: "through the tunnel" }), headers });
  await cp.waitForFinal(call!.request_id, 20_000);
  // The dispatcher reports a call once its final post is answered: a moment after the fake records it.
  await cp.waitFor(() => calls.list().some((c) => c.target === "echo"), 10_000, "the echo call to be reported");
  await cp.waitFor(() => agent.readiness().ready, 10_000, "the agent to be ready");

  const page = await fetch(`${agent.opsUrl}/ui`, ui);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /id="ready" data-ready="true">ready</);
  assert.match(html, /id="cp-state">connected</);
  assert.match(html, /<tr data-backend="main" data-state="up">/);
  assert.match(html, /<td>tools\/call<\/td><td>echo<\/td><td>main<\/td>/);
  assert.match(html, new RegExp(agent.instanceId));
  assert.doesNotMatch(html, new RegExp(cp.apiKey));

  const bundle = await (await fetch(`${agent.opsUrl}/ui/support-bundle`, ui)).text();
  assert.doesNotMatch(bundle, new RegExp(cp.apiKey));
  assert.match(bundle, /airlock_polls_total/);
  const logs = (await (await fetch(`${agent.opsUrl}/ui/api/logs?after=0`, ui)).json()) as {
    entries: Array<{ msg: string }>;
  };
  assert.ok(
    logs.entries.some((e) => e.msg === "agent started"),
    JSON.stringify(logs.entries.map((e) => e.msg)),
  );
  cp.assertNoViolations();
});
