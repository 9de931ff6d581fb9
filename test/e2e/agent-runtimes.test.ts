/**
 * The agent as an operator runs it — a real process under Node, Deno and Bun — against the
 * contract-checking fake control plane, with server-everything over stdio (channel `main`)
 * and over Streamable HTTP (channel `web`).
 */
import { after, before, describe, test } from "node:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { startFakeControlPlane, type FakeControlPlane, type RecordedResponse } from "../support/fake-control-plane.ts";
import { everythingStdioCommand, startEverythingHttp, type RunningServer } from "../support/everything.ts";
import { startAgentProcess, type AgentProcess, type RuntimeName } from "../support/agent-process.ts";

const INIT = { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } };

function result(response: RecordedResponse): Record<string, unknown> {
  const message = response.payload.resp_json as { result?: Record<string, unknown>; error?: unknown };
  assert.ok(message.result, `expected a result, got ${JSON.stringify(response.payload)}`);
  return message.result;
}

for (const runtime of ["node", "deno", "bun"] as RuntimeName[]) {
  describe(`agent under ${runtime}`, { concurrency: false }, () => {
    let cp: FakeControlPlane;
    let http: RunningServer;
    let agent: AgentProcess;
    const secret = "sk-e2e-secret-value-123456";
    const pidFile = join(mkdtempSync(join(tmpdir(), "airlock-pid-")), "agent.pid");

    before(async () => {
      [cp, http] = await Promise.all([startFakeControlPlane({ apiKey: secret }), startEverythingHttp()]);
      agent = await startAgentProcess(
        runtime,
        [
          "--control-plane.base-url",
          cp.baseUrl,
          "--control-plane.tunnel-id",
          cp.tunnelId,
          "--control-plane.api-key",
          "env:E2E_KEY",
          "--control-plane.poll-timeout",
          "2s",
          "--mcp.command",
          everythingStdioCommand().join(" "),
          "--mcp.server-url",
          `channel=web,url=${http.url}`,
          "--pid.file",
          pidFile,
        ],
        { E2E_KEY: secret },
      );
    });
    after(async () => {
      await agent?.stop("SIGKILL");
      await Promise.all([cp?.close(), http?.close()]);
    });

    for (const channel of ["main", "web"]) {
      test(`${channel}: initialize → initialized → tools/list → echo, session carried`, async () => {
        const [init] = cp.enqueue({ channel, jsonrpc: { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT } });
        const initAnswer = await cp.waitForFinal(init!.request_id, 20_000);
        assert.equal(initAnswer.payload.resp_type, "jsonrpc_response");
        assert.equal((result(initAnswer).serverInfo as { name: string }).name.length > 0, true);
        const headers = initAnswer.payload.resp_headers as Record<string, string[]> | undefined;
        const session = headers?.["Mcp-Session-Id"]?.[0];
        if (channel === "web") assert.ok(session, "the HTTP backend returns a session id");
        const sessionHeaders: Record<string, string[]> = session ? { "Mcp-Session-Id": [session] } : {};

        const [initialized] = cp.enqueue({
          channel,
          headers: sessionHeaders,
          jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" },
        });
        const ack = await cp.waitForFinal(initialized!.request_id, 10_000);
        assert.equal(ack.payload.resp_type, "notify_ack");
        assert.equal(ack.payload.resp_json, undefined);

        const [list] = cp.enqueue({
          channel,
          headers: sessionHeaders,
          jsonrpc: { jsonrpc: "2.0", id: "list-1", method: "tools/list" },
        });
        const tools = result(await cp.waitForFinal(list!.request_id, 10_000)).tools as Array<{ name: string }>;
        assert.ok(tools.some((tool) => tool.name === "echo"));

        const [echo] = cp.enqueue({
          channel,
          headers: sessionHeaders,
          jsonrpc: {
            jsonrpc: "2.0",
            id: 7,
            method: "tools/call",
            params: { name: "echo", arguments: { message: `hi ${runtime}` } },
          },
        });
        const echoed = await cp.waitForFinal(echo!.request_id, 10_000);
        assert.equal((echoed.payload.resp_json as { id: unknown }).id, 7);
        assert.deepEqual(result(echoed).content, [{ type: "text", text: `Echo: hi ${runtime}` }]);

        const [progress] = cp.enqueue({
          channel,
          headers: sessionHeaders,
          jsonrpc: {
            jsonrpc: "2.0",
            id: 8,
            method: "tools/call",
            params: {
              name: "trigger-long-running-operation",
              arguments: { duration: 0.3, steps: 3 },
              _meta: { progressToken: "p-1" },
            },
          },
        });
        const done = await cp.waitForFinal(progress!.request_id, 15_000);
        const posts = cp.responsesFor(progress!.request_id);
        const notifies = posts.filter((post) => post.respType === "jsonrpc_notify");
        assert.ok(notifies.length >= 3, `expected progress notifies, got ${notifies.length}`);
        assert.equal(posts.at(-1), done, "the final response comes after every notify");
        for (const notify of notifies) {
          const message = notify.payload.resp_json as { method: string; params: { progressToken: unknown } };
          assert.equal(message.method, "notifications/progress");
          assert.equal(message.params.progressToken, "p-1");
        }
      });
    }

    test("readyz?strict=1 is 200 once polling; metrics count the commands; /ui serves; the key never shows", async () => {
      assert.equal(
        readFileSync(pidFile, "utf8").trim(),
        String(agent.child.pid),
        "process.pid_file holds the agent's pid",
      );
      const ready = await fetch(`${agent.opsUrl}/readyz?strict=1`);
      assert.equal(ready.status, 200, await ready.clone().text());
      const metrics = await (await fetch(`${agent.opsUrl}/metrics`)).text();
      assert.match(metrics, /airlock_commands_total\{[^}]*outcome="ok"[^}]*\} \d+/);
      assert.ok(!metrics.includes(secret));
      assert.equal((await fetch(`${agent.opsUrl}/ui`)).status, 401, "the UI needs its credential");
      const ui = await fetch(`${agent.opsUrl}/ui`, { headers: agent.uiHeaders() });
      assert.equal(ui.status, 200);
      const page = await ui.text();
      assert.ok(page.includes(cp.tunnelId), "the admin UI names the tunnel");
      assert.ok(page.includes("get-structured-content"), "the admin UI lists the tools clients were shown");
      assert.ok(!page.includes(secret));
      assert.ok(!agent.stderr().includes(secret), "the API key never reaches the log");
    });

    test("a stdio server never inherits the agent's key (get-env shows the child's environment)", async () => {
      const [call] = cp.enqueue({
        channel: "main",
        jsonrpc: { jsonrpc: "2.0", id: 50, method: "tools/call", params: { name: "get-env", arguments: {} } },
      });
      const text = JSON.stringify(result(await cp.waitForFinal(call!.request_id, 10_000)));
      assert.ok(text.includes("PATH"), "get-env lists the child's environment");
      assert.ok(!text.includes(secret), "the control-plane key is not in the child's environment");
      assert.ok(!text.includes("E2E_KEY"), "nor the variable that held it");
    });

    test("SIGTERM lets a call in flight finish, posts it, and exits 0", async () => {
      const [slow] = cp.enqueue({
        channel: "main",
        jsonrpc: {
          jsonrpc: "2.0",
          id: 99,
          method: "tools/call",
          params: {
            name: "trigger-long-running-operation",
            arguments: { duration: 1, steps: 2 },
            _meta: { progressToken: "p-2" },
          },
        },
      });
      await cp.waitFor(() => cp.responsesFor(slow!.request_id).length > 0, 15_000, "the slow call to start");
      const code = await agent.stop("SIGTERM");
      assert.equal(code, 0, agent.stderr());
      const final = cp.responsesFor(slow!.request_id).find((post) => post.final);
      assert.ok(final, "the call in flight was answered before exit");
      assert.equal(existsSync(pidFile), false, "the pid file is removed on a clean exit");
      assert.ok(result(final).content);
      cp.assertNoViolations();
    });
  });
}
