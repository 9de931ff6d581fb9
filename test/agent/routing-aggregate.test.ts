/**
 * One aggregated channel over four real MCP servers from npm — server-everything (stdio),
 * server-memory (stdio, graph in a temp file), server-filesystem (stdio, on a temp dir, write
 * tools denied) and server-everything over Streamable HTTP — driven exchange by exchange
 * the way the dispatcher drives it, and compared with calling each backend directly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAggregateBackend } from "../../agent/routing/aggregate.ts";
import { createHttpBackend } from "../../agent/backends/http.ts";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import type { Backend } from "../../agent/backends/types.ts";
import type { BackendCallReport } from "../../agent/events.ts";
import { mapUri, namespaced } from "../../agent/routing/names.ts";
import { silentLogger } from "../../shared/log.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { everythingStdioCommand, startEverythingHttp, type RunningServer } from "../support/everything.ts";
import {
  filesystemCommand,
  memoryCommand,
  spyBackend,
  testClient,
  type SpyBackend,
  type TestMcpClient,
} from "../support/routing.ts";

const PAGE_SIZE = 7;
const DENIED = ["write_file", "edit_file", "create_directory", "move_file"];

let dir: string;
let http: RunningServer;
let members: Record<"everything" | "memory" | "files" | "web", Backend>;
let web: SpyBackend;
let aggregate: Backend;
let client: TestMcpClient;
let direct: Record<keyof typeof members, TestMcpClient>;
const reports: BackendCallReport[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-routing-"));
  writeFileSync(join(dir, "hello.txt"), "hello from the filesystem backend\n");
  http = await startEverythingHttp();
  web = spyBackend(createHttpBackend({ name: "web", url: http.url, log: silentLogger }));
  members = {
    everything: createStdioBackend({ name: "everything", command: everythingStdioCommand(), log: silentLogger }),
    memory: createStdioBackend({
      name: "memory",
      command: memoryCommand(),
      env: { MEMORY_FILE_PATH: join(dir, "memory.jsonl") },
      log: silentLogger,
    }),
    files: createStdioBackend({ name: "files", command: filesystemCommand(dir), log: silentLogger }),
    web,
  };
  aggregate = createAggregateBackend({
    channel: "main",
    log: silentLogger,
    pageSize: PAGE_SIZE,
    events: { backendCallFinished: (report) => reports.push(report) },
    members: [
      { backend: members.everything },
      { backend: members.memory },
      { backend: members.files, settings: { tools: { deny: DENIED } } },
      { backend: members.web },
    ],
  });
  await aggregate.start();
  client = testClient(aggregate);
  direct = {
    everything: testClient(members.everything),
    memory: testClient(members.memory),
    files: testClient(members.files),
    web: testClient(members.web),
  };
  // Sampling is a client capability; server-everything only offers its sampling tool to clients that have it.
  await client.initialize({ sampling: {} });
  await Promise.all(Object.values(direct).map((c) => c.initialize({ sampling: {} })));
});

after(async () => {
  await aggregate?.close();
  await http?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function resultOf(message: JsonRpcMessage): Record<string, unknown> {
  assert.ok(message.result, `expected a result, got ${JSON.stringify(message)}`);
  return message.result as Record<string, unknown>;
}

function errorOf(message: JsonRpcMessage): { code: number; message: string } {
  assert.ok(message.error, `expected an error, got ${JSON.stringify(message).slice(0, 300)}`);
  return message.error as { code: number; message: string };
}

describe("one channel, four backends", () => {
  test("initialize answers as one server with the union of the capabilities and a session id", async () => {
    const other = testClient(aggregate);
    const { result, message } = await other.initialize();
    assert.equal(result.kind, "response");
    assert.match(other.session ?? "", /^[0-9a-f-]{36}$/);
    assert.notEqual(other.session, client.session);
    const init = resultOf(message);
    assert.equal(init.protocolVersion, "2025-06-18");
    assert.deepEqual((init.serverInfo as { name: string }).name, "airlock/main");
    assert.deepEqual(init.capabilities, {
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      logging: {},
      completions: {},
    });
    assert.match(String(init.instructions), /^## everything \(tools and prompts prefixed everything__\)/);
    assert.match(String(init.instructions), /## web /);
  });

  test("merged lists are the namespaced union of what each backend lists, across pages, each item once", async () => {
    const lists = [
      [
        "tools/list",
        "tools",
        (b: string, item: Record<string, unknown>) => ({ ...item, name: namespaced(b, String(item.name)) }),
      ],
      [
        "prompts/list",
        "prompts",
        (b: string, item: Record<string, unknown>) => ({ ...item, name: namespaced(b, String(item.name)) }),
      ],
      [
        "resources/list",
        "resources",
        (b: string, item: Record<string, unknown>) => ({ ...item, uri: mapUri(b, String(item.uri)) }),
      ],
      [
        "resources/templates/list",
        "resourceTemplates",
        (b: string, item: Record<string, unknown>) => ({ ...item, uriTemplate: mapUri(b, String(item.uriTemplate)) }),
      ],
    ] as const;
    for (const [method, field, expose] of lists) {
      const expected: Array<Record<string, unknown>> = [];
      for (const [name, c] of Object.entries(direct)) {
        const { message } = await c.request(method);
        if (message.error) continue; // the backend does not offer this list
        for (const item of resultOf(message)[field] as Array<Record<string, unknown>>) {
          if (name === "files" && DENIED.includes(String(item.name))) continue;
          expected.push(expose(name, item));
        }
      }
      const { items, pages } = await client.listAll(method, field);
      assert.deepEqual(items, expected, method);
      assert.equal(pages, Math.max(1, Math.ceil(expected.length / PAGE_SIZE)), `${method}: pages of ${PAGE_SIZE}`);
      const key = field === "tools" || field === "prompts" ? "name" : field === "resources" ? "uri" : "uriTemplate";
      assert.equal(new Set(items.map((item) => item[key])).size, items.length, `${method}: no duplicates`);
    }
    const tools = (await client.listAll("tools/list", "tools")).items.map((t) => t.name);
    for (const name of [
      "everything__echo",
      "memory__read_graph",
      "files__read_text_file",
      "web__get-sum",
      "web__trigger-sampling-request",
    ]) {
      assert.ok(tools.includes(name), name);
    }
  });

  test("every call lands on its backend and returns what that backend returns directly", async () => {
    assert.deepEqual(
      await client.call("everything__echo", { message: "routed" }),
      await direct.everything.call("echo", { message: "routed" }),
    );
    assert.deepEqual(
      await client.call("web__get-sum", { a: 2, b: 40 }),
      await direct.web.call("get-sum", { a: 2, b: 40 }),
    );
    const path = join(dir, "hello.txt");
    assert.deepEqual(
      await client.call("files__read_text_file", { path }),
      await direct.files.call("read_text_file", { path }),
    );

    await client.call("memory__create_entities", {
      entities: [{ name: "airlock", entityType: "project", observations: ["routes"] }],
    });
    const graph = await client.call("memory__read_graph");
    assert.deepEqual(graph, await direct.memory.call("read_graph"));
    assert.match(JSON.stringify(graph), /"airlock"/, "the entity was created on the memory backend");

    const prompt = await client.request("prompts/get", {
      name: "everything__args-prompt",
      arguments: { city: "Oslo" },
    });
    assert.deepEqual(
      resultOf(prompt.message),
      resultOf(
        (await direct.everything.request("prompts/get", { name: "args-prompt", arguments: { city: "Oslo" } })).message,
      ),
    );

    const completion = await client.request("completion/complete", {
      ref: { type: "ref/prompt", name: "web__completable-prompt" },
      argument: { name: "department", value: "S" },
    });
    assert.deepEqual(
      resultOf(completion.message),
      resultOf(
        (
          await direct.web.request("completion/complete", {
            ref: { type: "ref/prompt", name: "completable-prompt" },
            argument: { name: "department", value: "S" },
          })
        ).message,
      ),
    );
    assert.deepEqual((resultOf(completion.message).completion as { values: string[] }).values, ["Sales", "Support"]);
  });

  test("resources are read through their mapped URIs, templates included, and resource links stay readable", async () => {
    const static1 = "demo://resource/static/document/architecture.md";
    const read = await client.request("resources/read", { uri: mapUri("web", static1) });
    const expected = resultOf((await direct.web.request("resources/read", { uri: static1 })).message);
    assert.deepEqual(resultOf(read.message), {
      ...expected,
      contents: (expected.contents as Array<Record<string, unknown>>).map((c) => ({
        ...c,
        uri: mapUri("web", String(c.uri)),
      })),
    });

    const dynamic = await client.request("resources/read", {
      uri: mapUri("everything", "demo://resource/dynamic/text/3"),
    });
    const contents = resultOf(dynamic.message).contents as Array<{ uri: string; text: string }>;
    assert.equal(contents[0]!.uri, "airlock://everything/demo://resource/dynamic/text/3");
    assert.match(contents[0]!.text, /3/);

    const links = await client.call("everything__get-resource-links", { count: 2 });
    const link = (links.content as Array<{ type: string; uri?: string }>).find((c) => c.type === "resource_link");
    const linked = link?.uri ?? "";
    assert.ok(linked.startsWith("airlock://everything/demo://"), JSON.stringify(links));
    const followed = await client.request("resources/read", { uri: linked });
    assert.equal((resultOf(followed.message).contents as Array<{ uri: string }>)[0]!.uri, linked);

    const memory = await client.request("resources/read", { uri: "airlock://memory/memory://knowledge-graph" });
    assert.ok(resultOf(memory.message).contents, "the memory backend's resource");
  });

  test("filters hide and block; unknown names and methods are JSON-RPC errors that name them", async () => {
    const tools = (await client.listAll("tools/list", "tools")).items.map((t) => String(t.name));
    for (const denied of DENIED) assert.ok(!tools.includes(`files__${denied}`), denied);
    assert.ok(tools.includes("files__list_directory"));

    const target = join(dir, "should-not-exist.txt");
    const blocked = await client.request("tools/call", {
      name: "files__write_file",
      arguments: { path: target, content: "x" },
    });
    assert.equal(errorOf(blocked.message).code, -32602);
    assert.match(errorOf(blocked.message).message, /files__write_file/);
    assert.equal(existsSync(target), false, "the hidden tool never ran");

    for (const name of ["nobody__echo", "echo", "everything__"]) {
      const unknown = await client.request("tools/call", { name, arguments: {} });
      assert.equal(errorOf(unknown.message).code, -32602, name);
      assert.ok(errorOf(unknown.message).message.includes(name), errorOf(unknown.message).message);
    }
    const prompt = await client.request("prompts/get", { name: "everything__nothing" });
    assert.match(errorOf(prompt.message).message, /nothing/, "the backend's own error comes back");
    const resource = await client.request("resources/read", { uri: "demo://resource/static/document/architecture.md" });
    assert.equal(errorOf(resource.message).code, -32602);
    assert.match(errorOf(resource.message).message, /demo:\/\/resource/);
    const method = await client.request("tasks/list");
    assert.equal(errorOf(method.message).code, -32601);
    assert.match(errorOf(method.message).message, /tasks\/list/);
  });

  test("progress from two backends at once reaches each caller under its own token, never crossed", async () => {
    const call = (name: string) =>
      client.request(
        "tools/call",
        {
          name,
          arguments: { duration: 0.4, steps: 4 },
          _meta: { progressToken: "same-token" },
        },
        { id: `progress-${name}` },
      );
    const [stdio, remote] = await Promise.all([
      call("everything__trigger-long-running-operation"),
      call("web__trigger-long-running-operation"),
    ]);
    for (const answer of [stdio, remote]) {
      assert.match(JSON.stringify(resultOf(answer.message)), /Long running operation completed/);
      const progress = answer.notified
        .filter((n) => n.method === "notifications/progress")
        .map((n) => n.params as { progressToken: unknown; progress: number });
      assert.deepEqual(
        progress.map((p) => p.progress),
        [1, 2, 3, 4],
        "exactly this call's progress, in order",
      );
      assert.ok(progress.every((p) => p.progressToken === "same-token"));
    }
    assert.equal(stdio.message.id, "progress-everything__trigger-long-running-operation");
    assert.equal(remote.message.id, "progress-web__trigger-long-running-operation");
  });

  test("sampling requests from two backends at once get distinct ids, and each answer reaches its backend", async () => {
    const seen: Array<{ backend: string; id: unknown }> = [];
    const answers: Array<Promise<unknown>> = [];
    const call = (backend: string) =>
      client.request(
        "tools/call",
        { name: `${backend}__trigger-sampling-request`, arguments: { prompt: `from ${backend}`, maxTokens: 5 } },
        {
          onNotify: (message) => {
            if (message.method !== "sampling/createMessage") return;
            seen.push({ backend, id: message.id });
            answers.push(
              client.respond(message.id, {
                model: "test-model",
                role: "assistant",
                content: { type: "text", text: `sampled for ${backend}` },
              }),
            );
          },
        },
      );
    const [stdio, remote] = await Promise.all([call("everything"), call("web")]);
    assert.equal(seen.length, 2, JSON.stringify(seen));
    assert.notEqual(seen[0]!.id, seen[1]!.id);
    for (const ack of await Promise.all(answers)) assert.deepEqual(ack, { kind: "ack", status: 202, headers: {} });
    assert.match(JSON.stringify(resultOf(stdio.message)), /sampled for everything/);
    assert.match(JSON.stringify(resultOf(remote.message)), /sampled for web/);
  });

  test("notifications/cancelled reaches the backend running the request, under the id it knows; the request is not answered", async () => {
    for (const backend of ["everything", "web"]) {
      const id = `cancel-${backend}`;
      const started = Date.now();
      const running = client.request(
        "tools/call",
        {
          name: `${backend}__trigger-long-running-operation`,
          arguments: { duration: 30, steps: 30 },
          _meta: { progressToken: id },
        },
        {
          id,
          onNotify: (message) => {
            if (message.method === "notifications/progress")
              void client.notify("notifications/cancelled", { requestId: id, reason: "test" });
          },
        },
      );
      const { result } = await running;
      assert.deepEqual(result, { kind: "cancelled" }, backend);
      assert.ok(Date.now() - started < 15_000, `${backend}: the 30 s operation was stopped`);
    }
    const sent = web.calls
      .filter((c) => c.message.method === "notifications/cancelled")
      .map((c) => (c.message.params as { requestId: unknown }).requestId);
    const callIds = web.calls.filter((c) => c.message.method === "tools/call").map((c) => c.message.id);
    assert.equal(sent.length, 1);
    assert.ok(callIds.includes(sent[0] as number), "the backend saw the id of its own request");
  });

  test("ping and logging/setLevel fan out; session errors are 400 and 404", async () => {
    const pings = web.calls.filter((c) => c.message.method === "ping").length;
    assert.deepEqual(resultOf((await client.request("ping")).message), {});
    assert.equal(web.calls.filter((c) => c.message.method === "ping").length, pings + 1);
    assert.deepEqual(resultOf((await client.request("logging/setLevel", { level: "error" })).message), {});
    assert.ok(web.calls.some((c) => c.message.method === "logging/setLevel"));

    const noSession = await aggregate.exchange({
      message: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      headers: {},
      signal: new AbortController().signal,
      notify: () => {},
    });
    assert.equal(noSession.kind === "response" && noSession.status, 400);
    const unknown = await aggregate.exchange({
      message: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      headers: { "Mcp-Session-Id": ["nope"] },
      signal: new AbortController().signal,
      notify: () => {},
    });
    assert.equal(unknown.kind === "response" && unknown.status, 404);
    assert.equal(unknown.kind === "response" && (unknown.message.error as { code: number }).code, -32001);
  });

  test("session termination ends every backend session behind it", async () => {
    const other = testClient(aggregate);
    await other.initialize();
    const before = web.terminations.length;
    const memberSession = web.sessions().at(-1);
    const ended = await aggregate.terminateSession(other.headers(), new AbortController().signal);
    assert.deepEqual(ended, { kind: "terminated", status: 200, headers: {} });
    assert.equal(web.terminations.length, before + 1);
    assert.deepEqual(web.terminations.at(-1)!["Mcp-Session-Id"], [memberSession]);
    const after = await other.request("tools/list");
    assert.equal(after.result.kind === "response" && after.result.status, 404);
    assert.deepEqual(await aggregate.terminateSession(other.headers(), new AbortController().signal), {
      kind: "terminated",
      status: 404,
      headers: {},
    });
  });

  test("health and per-backend call reports name each backend", () => {
    const health = aggregate.health();
    assert.equal(health.transport, "aggregate");
    assert.equal(health.state, "up");
    assert.deepEqual(
      health.members?.map((m) => [m.name, m.transport, m.state]),
      [
        ["everything", "stdio", "up"],
        ["memory", "stdio", "up"],
        ["files", "stdio", "up"],
        ["web", "http", "up"],
      ],
    );
    const calls = (backend: string, method: string) =>
      reports.filter((r) => r.backend === backend && r.method === method);
    assert.ok(
      calls("memory", "tools/call").every((r) => r.channel === "main" && r.outcome === "ok" && r.durationMs >= 0),
    );
    assert.ok(calls("memory", "tools/call").length >= 2);
    assert.ok(calls("files", "tools/list").length >= 1);
    assert.ok(
      calls("everything", "prompts/get").some((r) => r.outcome === "error"),
      "a JSON-RPC error answer counts as error",
    );
  });
});
