/**
 * Attack class "a routing setting silently off": `tools.deny`/`allow`, `timeout` and
 * `max_concurrent_requests` on a channel with one backend (real server-everything over
 * stdio) must apply exactly as on an aggregated channel — a denied tool is neither listed
 * nor run.
 */
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import type { StdioBackendConfig } from "../../agent/config/types.ts";
import { createRouteBackend } from "../../agent/routing/route.ts";
import type { Backend, ExchangeResult } from "../../agent/backends/types.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { silentLogger } from "../../shared/log.ts";
import { REPO_ROOT, everythingStdioCommand, exchangeOf, resultText, rpc } from "../support/everything.ts";

async function channel(t: TestContext, settings: Partial<StdioBackendConfig>): Promise<Backend> {
  const backend = createRouteBackend(
    {
      channel: "main",
      origin: "routes",
      backends: [
        {
          name: "everything",
          transport: "stdio",
          command: everythingStdioCommand(),
          env: {},
          cwd: REPO_ROOT,
          ...settings,
        },
      ],
    },
    { log: silentLogger },
  );
  t.after(() => backend.close());
  await backend.start();
  assert.equal((await backend.exchange(exchangeOf(rpc.initialize(1)))).kind, "response");
  await backend.exchange(exchangeOf(rpc.initialized()));
  return backend;
}

function message(result: ExchangeResult): JsonRpcMessage {
  assert.equal(result.kind, "response", JSON.stringify(result));
  return (result as { message: JsonRpcMessage }).message;
}

async function toolNames(backend: Backend): Promise<string[]> {
  const listed = message(await backend.exchange(exchangeOf(rpc.toolsList(2)))).result as {
    tools: Array<{ name: string }>;
  };
  return listed.tools.map((tool) => tool.name);
}

describe("routing settings on a one-backend channel (attack: tools.deny ignored)", () => {
  test("tools.deny: the denied tool is not listed and does not run", async (t) => {
    const backend = await channel(t, { tools: { deny: ["get-env", "echo"] } });
    const names = await toolNames(backend);
    assert.ok(names.includes("get-sum"), names.join(", "));
    assert.ok(!names.includes("get-env") && !names.includes("echo"), names.join(", "));
    const refused = message(await backend.exchange(exchangeOf(rpc.call(3, "get-env"))));
    assert.equal((refused.error as { code: number }).code, -32602);
    assert.equal(refused.id, 3);
    assert.equal(JSON.stringify(refused).includes("PATH"), false, "get-env ran");
    const allowed = message(await backend.exchange(exchangeOf(rpc.call(4, "get-sum", { a: 2, b: 3 }))));
    assert.match(resultText(allowed) ?? "", /5/);
  });

  test("tools.allow: only the allowed tools are listed and callable", async (t) => {
    const backend = await channel(t, { tools: { allow: ["get-sum"] } });
    assert.deepEqual(await toolNames(backend), ["get-sum"]);
    assert.equal(
      (message(await backend.exchange(exchangeOf(rpc.call(5, "echo", { message: "x" })))).error as { code: number })
        .code,
      -32602,
    );
  });

  test("timeout: a call past the backend's timeout ends as a timeout failure", async (t) => {
    const backend = await channel(t, { timeoutMs: 200 });
    const result = await backend.exchange(
      exchangeOf(rpc.call(6, "trigger-long-running-operation", { duration: 5, steps: 5 })),
    );
    assert.equal(result.kind, "failure", JSON.stringify(result));
    assert.equal(result.kind === "failure" && result.failure.source, "timeout");
  });

  test("max_concurrent_requests: a second call waits while the first runs", async (t) => {
    const backend = await channel(t, { maxConcurrentRequests: 1 });
    const first = exchangeOf(
      rpc.call(7, "trigger-long-running-operation", { duration: 1, steps: 4 }, { progressToken: "p7" }),
    );
    const running = backend.exchange(first);
    while (first.notified.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const second = backend.exchange(exchangeOf(rpc.call(8, "get-sum", { a: 1, b: 1 })));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(backend.health().inflight, 1, "the second call must wait for the first one's slot");
    assert.equal((await running).kind, "response");
    assert.match(resultText(message(await second)) ?? "", /2/);
  });

  test("a 2026-07-28 subscriptions/listen takes no slot and outlives the timeout", async (t) => {
    const backend = await channel(t, { timeoutMs: 200, maxConcurrentRequests: 1 });
    const _meta = {
      "io.modelcontextprotocol/protocolVersion": "2026-07-28",
      "io.modelcontextprotocol/clientCapabilities": {},
      "io.modelcontextprotocol/clientInfo": { name: "listener", version: "1" },
    };
    const closing = new AbortController();
    const listen = exchangeOf(
      {
        jsonrpc: "2.0",
        id: "l",
        method: "subscriptions/listen",
        params: { notifications: { toolsListChanged: true }, _meta },
      },
      { signal: closing.signal },
    );
    let settled = false;
    const listening = backend.exchange(listen).finally(() => {
      settled = true;
    });
    while (listen.notified.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    // A call past the timeout fails (the timeout is on), the listen opened before it is still open.
    const late = await backend.exchange(
      exchangeOf(rpc.call(9, "trigger-long-running-operation", { duration: 5, steps: 5 })),
    );
    assert.equal(late.kind === "failure" && late.failure.source, "timeout");
    assert.equal(settled, false, "the listen is not cut by the timeout");
    assert.match(
      resultText(message(await backend.exchange(exchangeOf(rpc.call(10, "get-sum", { a: 2, b: 2 }))))) ?? "",
      /4/,
    );
    closing.abort();
    assert.equal((await listening).kind, "response");
  });
});
