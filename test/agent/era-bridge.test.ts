/**
 * The agent's era bridge (agent/bridge/) around real stdio backends: server-everything (a
 * 2025-era server) for modern requests, and the SDK v2 fixture refusing 2025 clients
 * (test/fixtures/modern-server.ts --modern-only) for legacy ones and for a misjudged probe,
 * and a routing table of two legacy servers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bridgeEras, type EraHealth } from "../../agent/bridge/backend.ts";
import { decorate } from "../../agent/backends/decorate.ts";
import { createHttpBackend } from "../../agent/backends/http.ts";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import type { Backend, ExchangeResult } from "../../agent/backends/types.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { silentLogger } from "../../shared/log.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import {
  everythingStdioCommand,
  exchangeOf,
  modernStdioCommand,
  REPO_ROOT,
  rpc,
  startModernHttp,
} from "../support/everything.ts";
import { spyBackend, startStdioRoutes } from "../support/routing.ts";

const SERVER_INFO = "io.modelcontextprotocol/serverInfo";

function stdio(t: { after(fn: () => Promise<void>): void }, command: string[]): Backend {
  const backend = createStdioBackend({ name: "era-test", command, cwd: REPO_ROOT, log: silentLogger });
  t.after(() => backend.close());
  return backend;
}

/** A modern request: the envelope in `_meta`, as a 2026-07-28 client sends it. */
function modern(id: number, method: string, params: Record<string, unknown> = {}, client = "era-test"): JsonRpcMessage {
  const _meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": { elicitation: {} },
    "io.modelcontextprotocol/clientInfo": { name: client, version: "1.0.0" },
  };
  return { jsonrpc: "2.0", id, method, params: { ...params, _meta } };
}

function result(answer: ExchangeResult): Record<string, unknown> {
  assert.ok(
    answer.kind === "response" && "result" in answer.message,
    `expected a result, got ${JSON.stringify(answer)}`,
  );
  return answer.message.result as Record<string, unknown>;
}

test("modern requests to a legacy stdio server: discover from initialize, complete results, one session per declaration", async (t) => {
  const bridged = bridgeEras(stdio(t, everythingStdioCommand()), { log: silentLogger });
  const discover = result(await bridged.exchange(exchangeOf(modern(1, "server/discover"))));
  assert.deepEqual(discover.supportedVersions, ["2026-07-28"]);
  assert.equal(discover.resultType, "complete");
  assert.equal((discover._meta as Record<string, { name: string }>)[SERVER_INFO]!.name, "mcp-servers/everything");
  const capabilities = discover.capabilities as Record<string, Record<string, unknown>>;
  assert.ok(capabilities.tools, "tools offered");
  assert.equal(capabilities.tools!.listChanged, true, "listChanged: subscriptions/listen is bridged (listen.ts)");

  const echo = result(
    await bridged.exchange(exchangeOf(modern(2, "tools/call", { name: "echo", arguments: { message: "hi" } }))),
  );
  assert.deepEqual(echo.content, [{ type: "text", text: "Echo: hi" }]);
  assert.equal(echo.resultType, "complete");
  assert.equal((echo._meta as Record<string, { name: string }>)[SERVER_INFO]!.name, "mcp-servers/everything");

  const list = result(await bridged.exchange(exchangeOf(modern(3, "tools/list"))));
  assert.equal(list.ttlMs, 0);
  assert.equal(list.cacheScope, "private");
  assert.ok((list.tools as unknown[]).length > 0);

  await bridged.exchange(exchangeOf(modern(4, "tools/list", {}, "another-client")));
  await bridged.exchange(exchangeOf(modern(5, "tools/list", {}, "another-client")));
  const health = bridged.health() as EraHealth;
  assert.equal(health.era, "legacy");
  assert.equal(health.bridgedSessions, 2, "one legacy session per distinct declaration");

  // A legacy client on the same backend is untouched by all this.
  const initialize = result(await bridged.exchange(exchangeOf(rpc.initialize(6))));
  assert.equal(initialize.resultType, undefined);
  assert.equal(typeof initialize.protocolVersion, "string");
});

test("a modern server judged legacy (silent probe) refuses the bridge's session, and the bridge passes through from then on", async (t) => {
  const inner = stdio(t, modernStdioCommand(true));
  // Swallow the probe until it times out, as a server too slow to start would.
  const slowProbe = decorate(inner, {
    exchange: (ex) =>
      ex.message.method === "server/discover"
        ? new Promise((resolve) =>
            ex.signal.addEventListener("abort", () => resolve({ kind: "failure", failure: { source: "timeout" } }), {
              once: true,
            }),
          )
        : inner.exchange(ex),
  });
  const bridged = bridgeEras(slowProbe, { log: silentLogger, probeTimeoutMs: 50 });
  const echo = result(
    await bridged.exchange(exchangeOf(modern(1, "tools/call", { name: "echo", arguments: { message: "hi" } }))),
  );
  assert.deepEqual(echo.content, [{ type: "text", text: "Echo: hi" }]);
  assert.equal((bridged.health() as EraHealth).era, "modern");
  const again = result(
    await bridged.exchange(exchangeOf(modern(2, "tools/call", { name: "add", arguments: { a: 1, b: 2 } }))),
  );
  assert.deepEqual(again.content, [{ type: "text", text: "3" }]);
});

test("a legacy client of a modern-only stdio server: initialize from server/discover, requests made stateless", async (t) => {
  const bridged = bridgeEras(stdio(t, modernStdioCommand(true)), { log: silentLogger });
  const answer = await bridged.exchange(exchangeOf(rpc.initialize(1)));
  const initialize = result(answer);
  assert.equal(initialize.protocolVersion, "2025-06-18", "the version the client asked for");
  assert.equal((initialize.serverInfo as { name: string }).name, "airlock-modern-fixture");
  assert.equal(initialize.instructions, "A 2026-07-28 fixture.");
  const session = answer.kind === "response" ? headerValue(answer.headers, "mcp-session-id") : undefined;
  assert.match(session ?? "", /^airlock-eras-/);
  const headers = { "Mcp-Session-Id": [session!] };

  assert.equal(
    (await bridged.exchange(exchangeOf({ jsonrpc: "2.0", method: "notifications/initialized" }, { headers }))).kind,
    "ack",
  );
  const echo = result(
    await bridged.exchange(
      exchangeOf(
        { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: { message: "ünï" } } },
        { headers },
      ),
    ),
  );
  assert.deepEqual(echo.content, [{ type: "text", text: "Echo: ünï" }]);
  assert.deepEqual(
    result(await bridged.exchange(exchangeOf({ jsonrpc: "2.0", id: 3, method: "ping" }, { headers }))),
    {},
  );
  assert.equal((bridged.health() as EraHealth).era, "modern");
  const ended = await bridged.terminateSession(headers, new AbortController().signal);
  assert.deepEqual(ended, { kind: "terminated", status: 204, headers: {} });
});

test("modern requests to a routing table (an aggregate of two legacy stdio servers) are bridged like any legacy server", async (t) => {
  const route = await startStdioRoutes(t, { everything: everythingStdioCommand(), again: everythingStdioCommand() });
  const discover = result(await route.exchange(exchangeOf(modern(1, "server/discover"))));
  assert.deepEqual(discover.supportedVersions, ["2026-07-28"]);
  const names = (
    result(await route.exchange(exchangeOf(modern(2, "tools/list")))).tools as Array<{ name: string }>
  ).map((tool) => tool.name);
  assert.ok(names.includes("everything__echo") && names.includes("again__echo"), names.join(","));
  const echo = result(
    await route.exchange(
      exchangeOf(modern(3, "tools/call", { name: "again__echo", arguments: { message: "routed" } })),
    ),
  );
  assert.deepEqual(echo.content, [{ type: "text", text: "Echo: routed" }]);
  assert.equal(echo.resultType, "complete");
  assert.equal((route.health() as EraHealth).era, "legacy");
});

test("a modern request's log level becomes logging/setLevel on the legacy session, once per change", async (t) => {
  const spy = spyBackend(stdio(t, everythingStdioCommand()));
  const bridged = bridgeEras(spy, { log: silentLogger });
  const withLevel = (id: number, level: string) => {
    const message = modern(id, "tools/list");
    const params = message.params as { _meta: Record<string, unknown> };
    params._meta["io.modelcontextprotocol/logLevel"] = level;
    return message;
  };
  for (const [id, level] of [
    [1, "error"],
    [2, "error"],
    [3, "debug"],
  ] as const)
    result(await bridged.exchange(exchangeOf(withLevel(id, level))));
  const levels = spy.calls
    .filter((call) => call.message.method === "logging/setLevel")
    .map((call) => (call.message.params as { level: string }).level);
  assert.deepEqual(levels, ["error", "debug"]);
  const forwarded = spy.calls.filter((call) => call.message.method === "tools/list");
  assert.equal(forwarded.length, 3);
  for (const call of forwarded)
    assert.equal(
      (call.message.params as { _meta?: unknown })._meta,
      undefined,
      "the envelope does not reach the legacy server",
    );
});

test("a modern request without its header mirrors (as the OpenAI path may carry it) reaches a modern HTTP server with them", async (t) => {
  const server = await startModernHttp(true);
  t.after(() => server.close());
  const http = createHttpBackend({ name: "modern-http", url: server.url, log: silentLogger });
  t.after(() => http.close());
  const bridged = bridgeEras(http, { log: silentLogger });
  const echo = result(
    await bridged.exchange(
      exchangeOf(modern(1, "tools/call", { name: "echo", arguments: { message: "ünï" } }), {
        headers: { Accept: ["application/json, text/event-stream"] },
      }),
    ),
  );
  assert.deepEqual(echo.content, [{ type: "text", text: "Echo: ünï" }]);
  assert.equal((bridged.health() as EraHealth).era, "modern");
});

test("a routing table with a 2026-only member: the member's bridge answers the aggregate's initialize, so its tools are there", async (t) => {
  const route = await startStdioRoutes(t, { everything: everythingStdioCommand(), modern: modernStdioCommand(true) });
  const init = await route.exchange(exchangeOf(rpc.initialize(1)));
  result(init);
  const session = init.kind === "response" ? headerValue(init.headers, "mcp-session-id") : undefined;
  const headers: HeaderMap = session ? { "Mcp-Session-Id": [session] } : {};
  await route.exchange(exchangeOf({ jsonrpc: "2.0", method: "notifications/initialized" }, { headers }));
  const names = (
    result(await route.exchange(exchangeOf({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} }, { headers })))
      .tools as Array<{ name: string }>
  ).map((tool) => tool.name);
  assert.ok(names.includes("modern__echo") && names.includes("everything__echo"), names.join(","));
  const echo = result(
    await route.exchange(
      exchangeOf(
        { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "modern__add", arguments: { a: 20, b: 22 } } },
        { headers },
      ),
    ),
  );
  assert.deepEqual(echo.content, [{ type: "text", text: "42" }]);
});
