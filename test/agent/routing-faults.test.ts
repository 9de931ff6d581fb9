/**
 * An aggregated channel when backends misbehave, with real servers: a stdio backend that
 * crashes, an HTTP backend that is down when the session opens (behind a switchable
 * proxy) or forgets its session, and slow backends under a per-backend timeout and
 * concurrency limit. The healthy backends keep serving throughout.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn as nodeSpawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAggregateBackend } from "../../agent/routing/aggregate.ts";
import { createHttpBackend } from "../../agent/backends/http.ts";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import type { SpawnFn } from "../../agent/backends/stdio.ts";
import type { Backend } from "../../agent/backends/types.ts";
import { serve, type ServedApp } from "../../agent/runtime/serve.ts";
import { silentLogger } from "../../shared/log.ts";
import {
  everythingStdioCommand,
  fixtureServerCommand,
  processAlive,
  startEverythingHttp,
  type RunningServer,
} from "../support/everything.ts";
import { createManualClock } from "../support/manual-clock.ts";
import { memoryCommand, spyBackend, testClient } from "../support/routing.ts";

let dir: string;
let http: RunningServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-routing-faults-"));
  http = await startEverythingHttp();
});

after(async () => {
  await http?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The first text content of a tool result. */
function textOf(result: Record<string, unknown>): string | undefined {
  return (result.content as Array<{ type: string; text?: string }> | undefined)?.find((c) => c.type === "text")?.text;
}

/** Wait (bounded) for a condition on real asynchronous work: a child dying, a restart. */
async function until(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A proxy to `upstream` that answers 503 while `down`. */
async function switchableProxy(
  upstream: string,
): Promise<{ url: string; down: boolean; hits: number; close(): Promise<void> }> {
  const state = { down: true, hits: 0 };
  const served: ServedApp = await serve(
    async (request) => {
      state.hits++;
      if (state.down) return new Response("backend down for maintenance", { status: 503 });
      const headers = new Headers(request.headers);
      headers.delete("host");
      const body = request.method === "GET" || request.method === "DELETE" ? undefined : await request.arrayBuffer();
      return fetch(upstream, { method: request.method, headers, body });
    },
    { hostname: "127.0.0.1", port: 0 },
  );
  return {
    url: `${served.url}/mcp`,
    get down() {
      return state.down;
    },
    set down(value: boolean) {
      state.down = value;
    },
    get hits() {
      return state.hits;
    },
    close: () => served.close(),
  };
}

describe("a crashing stdio backend", () => {
  let aggregate: Backend;
  const children: ChildProcess[] = [];
  const recordSpawn: SpawnFn = (command, args, options) => {
    const child = nodeSpawn(command, args, options);
    children.push(child);
    return child;
  };

  before(async () => {
    aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [
        {
          backend: createStdioBackend({
            name: "everything",
            command: everythingStdioCommand(),
            spawn: recordSpawn,
            log: silentLogger,
            restart: { initialDelayMs: 300 },
          }),
        },
        {
          backend: createStdioBackend({
            name: "memory",
            command: memoryCommand(),
            env: { MEMORY_FILE_PATH: join(dir, "memory.jsonl") },
            log: silentLogger,
          }),
        },
      ],
    });
    await aggregate.start();
  });
  after(() => aggregate?.close());

  test("leaves the others serving, is reported, and comes back in the same session", async () => {
    const client = testClient(aggregate);
    await client.initialize();
    assert.equal(textOf(await client.call("everything__echo", { message: "before" })), "Echo: before");

    const first = children[0]!;
    first.kill("SIGKILL");
    const member = () => aggregate.health().members!.find((m) => m.name === "everything")!;
    await until("the crash to be noticed", () => member().state !== "up");
    assert.equal(aggregate.health().state, "up", "one backend down does not take the channel down");
    assert.match(aggregate.health().reason ?? "", /everything is (restarting|starting)/);

    // The healthy backend answers while the other restarts.
    assert.match(JSON.stringify(await client.call("memory__read_graph")), /entities/);

    // A call to the crashed backend waits for the restart and succeeds.
    assert.equal(textOf(await client.call("everything__echo", { message: "after" })), "Echo: after");
    assert.equal(member().state, "up");
    assert.equal(member().restarts, 1);
    assert.equal(children.length, 2);
    assert.equal(processAlive(first.pid!), false);
    const tools = (await client.listAll("tools/list", "tools")).items.map((t) => String(t.name));
    assert.ok(tools.includes("everything__echo") && tools.includes("memory__read_graph"));
  });
});

describe("an HTTP backend that is down when the session opens", () => {
  let proxy: Awaited<ReturnType<typeof switchableProxy>>;
  let aggregate: Backend;
  const clock = createManualClock();

  before(async () => {
    proxy = await switchableProxy(http.url);
    aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      now: clock.now,
      retry: { initialMs: 5_000 },
      members: [
        {
          backend: createStdioBackend({
            name: "memory",
            command: memoryCommand(),
            env: { MEMORY_FILE_PATH: join(dir, "memory2.jsonl") },
            log: silentLogger,
          }),
        },
        { backend: createHttpBackend({ name: "flaky", url: proxy.url, log: silentLogger, failureThreshold: 100 }) },
      ],
    });
    await aggregate.start();
  });
  after(async () => {
    await aggregate?.close();
    await proxy?.close();
  });

  test("is left out and reported, retried after its backoff, and joins with a list_changed", async () => {
    const client = testClient(aggregate);
    const init = await client.initialize();
    assert.ok(init.message.result, "the session opens without the failing backend");
    assert.match((init.message.result as { serverInfo: { title: string } }).serverInfo.title, /memory$/);

    const health = aggregate.health();
    const flaky = health.members!.find((m) => m.name === "flaky")!;
    assert.equal(flaky.state, "failed");
    assert.match(flaky.reason ?? "", /initialize failed: target_http.*HTTP 503/);
    assert.equal(health.state, "up");
    assert.match(health.reason ?? "", /flaky is failed/);

    const names = async () => (await client.listAll("tools/list", "tools")).items.map((t) => String(t.name));
    assert.ok((await names()).every((name) => name.startsWith("memory__")));
    const page = (await client.request("tools/list")).message.result as { _meta?: Record<string, unknown> };
    assert.deepEqual(page._meta, { "airlock/unavailable": [{ backend: "flaky", failure: "target_http" }] });
    const blocked = await client.request("tools/call", { name: "flaky__echo", arguments: { message: "x" } });
    assert.equal(blocked.result.kind, "failure", "a call to a backend outside the session fails without reaching it");

    const hits = proxy.hits;
    proxy.down = false;
    await client.request("ping");
    assert.equal(proxy.hits, hits, "not retried before its backoff is over");

    await clock.advance(5_000);
    const list = await client.request("tools/list");
    assert.ok(
      list.notified.some((n) => n.method === "notifications/tools/list_changed"),
      JSON.stringify(list.notified),
    );
    assert.ok((list.message.result as { tools: Array<{ name: string }> }).tools.some((t) => t.name === "flaky__echo"));
    assert.equal((list.message.result as { _meta?: unknown })._meta, undefined, "no note once every backend joined");
    assert.equal(textOf(await client.call("flaky__echo", { message: "joined" })), "Echo: joined");
    assert.equal(aggregate.health().members!.find((m) => m.name === "flaky")!.state, "up");
  });

  test("a new session tries every backend at once, whatever the backoff", async () => {
    proxy.down = true;
    const failing = testClient(aggregate);
    await failing.initialize();
    proxy.down = false;
    const hits = proxy.hits;
    const fresh = testClient(aggregate);
    await fresh.initialize();
    assert.ok(proxy.hits > hits);
    assert.ok((await fresh.listAll("tools/list", "tools")).items.some((t) => t.name === "flaky__echo"));
  });
});

describe("when no backend can be initialised", () => {
  test("initialize fails with a synthesised error and health says failed", async () => {
    const proxy = await switchableProxy(http.url);
    const aggregate = createAggregateBackend({
      channel: "solo",
      log: silentLogger,
      members: [
        { backend: createHttpBackend({ name: "a", url: proxy.url, log: silentLogger }) },
        { backend: createStdioBackend({ name: "b", command: [join(dir, "no-such-program")], log: silentLogger }) },
      ],
    });
    try {
      await aggregate.start();
      const client = testClient(aggregate);
      const { result } = await client.initialize();
      assert.equal(result.kind, "failure");
      assert.equal(client.session, undefined);
      assert.equal(aggregate.health().state, "failed");
      assert.deepEqual(
        aggregate.health().members!.map((m) => m.state),
        ["failed", "failed"],
      );
    } finally {
      await aggregate.close();
      await proxy.close();
    }
  });
});

describe("an HTTP backend that forgets its session", () => {
  test("gets a new session and the call is retried once, invisibly to the client", async () => {
    const web = spyBackend(createHttpBackend({ name: "web", url: http.url, log: silentLogger }));
    const aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [
        { backend: web },
        {
          backend: createStdioBackend({
            name: "memory",
            command: memoryCommand(),
            env: { MEMORY_FILE_PATH: join(dir, "memory3.jsonl") },
            log: silentLogger,
          }),
        },
      ],
    });
    try {
      await aggregate.start();
      const client = testClient(aggregate);
      await client.initialize();
      const [memberSession] = web.sessions();
      assert.ok(memberSession);
      // The server ends the session behind the aggregate's back (as a restart would).
      const ended = await web.terminateSession({ "Mcp-Session-Id": [memberSession] }, new AbortController().signal);
      assert.equal(ended.kind === "terminated" && ended.status, 200);
      assert.equal(textOf(await client.call("web__echo", { message: "again" })), "Echo: again");
      assert.equal(web.sessions().length, 2, "a second initialize opened a new session");
      assert.notEqual(web.sessions()[1], memberSession);
      // server-everything answers an unknown session with 400 (MCP says 404); both mean "gone".
      const refused = web.calls.filter(
        (c) => c.message.method === "tools/call" && c.result?.kind === "response" && c.result.message.error,
      );
      assert.equal(refused.length, 1, "exactly one call met the lost session");
      assert.ok(refused[0]!.result?.kind === "response" && [400, 404].includes(refused[0]!.result.status));
    } finally {
      await aggregate.close();
    }
  });
});

describe("per-backend limits", () => {
  let aggregate: Backend;

  before(async () => {
    aggregate = createAggregateBackend({
      channel: "main",
      log: silentLogger,
      members: [
        { backend: createStdioBackend({ name: "quick", command: everythingStdioCommand(), log: silentLogger }) },
        {
          backend: createStdioBackend({ name: "serial", command: fixtureServerCommand(), log: silentLogger }),
          settings: { maxConcurrentRequests: 1 },
        },
        {
          backend: createStdioBackend({ name: "stuck", command: fixtureServerCommand(), log: silentLogger }),
          settings: { timeoutMs: 300 },
        },
      ],
    });
    await aggregate.start();
  });
  after(() => aggregate?.close());

  test("a backend past its timeout fails alone while the others answer", async () => {
    const client = testClient(aggregate);
    await client.initialize();
    const order: string[] = [];
    const hang = client.request("tools/call", { name: "stuck__hang", arguments: {} }).then((answer) => {
      order.push("hang");
      return answer;
    });
    const echo = client.call("quick__echo", { message: "fast" }).then((result) => {
      order.push("echo");
      return result;
    });
    const [hung, echoed] = await Promise.all([hang, echo]);
    assert.deepEqual(order, ["echo", "hang"]);
    assert.equal(textOf(echoed), "Echo: fast");
    assert.equal(hung.result.kind, "failure");
    assert.equal(hung.result.kind === "failure" && hung.result.failure.source, "timeout");
    assert.match(
      hung.result.kind === "failure" ? (hung.result.detail ?? "") : "",
      /stuck did not answer tools\/call within 300 ms/,
    );
    // The stuck backend still serves calls that finish in time.
    assert.equal(textOf(await client.call("stuck__echo", { message: "ok" })), "Echo: ok");
  });

  test("a concurrency limit queues that backend's calls only", async () => {
    const client = testClient(aggregate);
    await client.initialize();
    const order: string[] = [];
    const track = <T>(label: string, work: Promise<T>) =>
      work.then((value) => {
        order.push(label);
        return value;
      });
    const slow = track("serial slow", client.call("serial__slow-echo", { message: "slow", ms: 400 }));
    const queued = track("serial queued", client.call("serial__echo", { message: "queued" }));
    const other = track("quick", client.call("quick__echo", { message: "other" }));
    await Promise.all([slow, queued, other]);
    assert.deepEqual(order, ["quick", "serial slow", "serial queued"]);
  });
});
