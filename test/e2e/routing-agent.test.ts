/**
 * The routing table end to end: `airlock run --config routes.yaml` as a real process, with
 * three npm servers (server-everything, server-memory, server-filesystem) plus
 * server-everything over HTTP aggregated on `main`, and a second channel `notes` with one
 * backend (a pass-through). Driven first through the contract-checking fake control plane,
 * then through the hub (workerd) with the real MCP SDK client.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { stringify } from "yaml";
import { startFakeControlPlane, type FakeControlPlane, type RecordedResponse } from "../support/fake-control-plane.ts";
import { everythingStdioCommand, startEverythingHttp, type RunningServer } from "../support/everything.ts";
import { startAgentProcess, type AgentProcess } from "../support/agent-process.ts";
import { AGENT_KEY, CLIENT_TOKEN, startTestHub, type TestHub } from "../support/hub.ts";
import { filesystemCommand, memoryCommand } from "../support/routing.ts";

const INIT = { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e-routing", version: "1" } };

let dir: string;
let http: RunningServer;

/** The YAML a user would write: three npm servers and an HTTP one on `main`, one server on `notes`. */
function writeConfig(name: string, controlPlane: Record<string, unknown>): string {
  const config = {
    config_version: 1,
    control_plane: { poll_timeout: "2s", ...controlPlane },
    routes: [
      {
        channel: "main",
        backends: [
          { name: "everything", command: everythingStdioCommand() },
          { name: "memory", command: memoryCommand(), env: { MEMORY_FILE_PATH: join(dir, `${name}-memory.jsonl`) } },
          {
            name: "files",
            command: filesystemCommand(dir),
            tools: { deny: ["write_*", "edit_*", "move_*", "create_*"] },
            timeout: "30s",
          },
          { name: "web", url: http.url, max_concurrent_requests: 4 },
        ],
      },
      {
        channel: "notes",
        backends: [
          { name: "notes", command: memoryCommand(), env: { MEMORY_FILE_PATH: join(dir, `${name}-notes.jsonl`) } },
        ],
      },
    ],
  };
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(config));
  return path;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-e2e-routing-"));
  writeFileSync(join(dir, "readme.txt"), "routed through the tunnel\n");
  http = await startEverythingHttp();
});

after(async () => {
  await http?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("agent with a routing table, fake control plane", { concurrency: false }, () => {
  let cp: FakeControlPlane;
  let agent: AgentProcess;
  let session: Record<string, string[]>;

  before(async () => {
    cp = await startFakeControlPlane({ apiKey: "sk-routing-e2e-0123456789" });
    const config = writeConfig("fake", { base_url: cp.baseUrl, tunnel_id: cp.tunnelId, api_key: "env:E2E_KEY" });
    agent = await startAgentProcess("node", ["--config", config], { E2E_KEY: cp.apiKey });
  });
  after(async () => {
    await agent?.stop("SIGKILL");
    await cp?.close();
  });

  async function call(channel: string, message: Record<string, unknown>, headers = session): Promise<RecordedResponse> {
    const [command] = cp.enqueue({ channel, headers, jsonrpc: { jsonrpc: "2.0", ...message } });
    return cp.waitForFinal(command!.request_id, 20_000);
  }
  const result = (response: RecordedResponse) => {
    const message = response.payload.resp_json as { result?: Record<string, unknown> };
    assert.ok(message.result, JSON.stringify(response.payload));
    return message.result;
  };

  test("initialize on main answers as one aggregated server with its own session", async () => {
    const init = await call("main", { id: 1, method: "initialize", params: INIT }, {});
    const info = result(init).serverInfo as { name: string; title: string };
    assert.equal(info.name, "airlock/main");
    assert.equal(info.title, "Airlock channel main: everything, memory, files, web");
    const id = (init.payload.resp_headers as Record<string, string[]>)["Mcp-Session-Id"]?.[0];
    assert.match(id ?? "", /^[0-9a-f-]{36}$/);
    session = { "Mcp-Session-Id": [id!] };
    const ack = await call("main", { method: "notifications/initialized" });
    assert.equal(ack.payload.resp_type, "notify_ack");
  });

  test("tools/list is the namespaced union; calls land on their backends; filtered tools are blocked", async () => {
    const tools = (result(await call("main", { id: 2, method: "tools/list" })).tools as Array<{ name: string }>).map(
      (t) => t.name,
    );
    for (const name of ["everything__echo", "memory__read_graph", "files__read_text_file", "web__get-sum"])
      assert.ok(tools.includes(name), name);
    assert.ok(!tools.includes("files__write_file"));
    assert.ok(tools.every((name) => /^(everything|memory|files|web)__/.test(name)));

    const read = await call("main", {
      id: 3,
      method: "tools/call",
      params: { name: "files__read_text_file", arguments: { path: join(dir, "readme.txt") } },
    });
    assert.deepEqual(result(read).content, [{ type: "text", text: "routed through the tunnel\n" }]);
    const sum = await call("main", {
      id: 4,
      method: "tools/call",
      params: { name: "web__get-sum", arguments: { a: 20, b: 22 } },
    });
    assert.match(JSON.stringify(result(sum).content), /42/);
    await call("main", {
      id: 5,
      method: "tools/call",
      params: {
        name: "memory__create_entities",
        arguments: { entities: [{ name: "tunnel", entityType: "thing", observations: [] }] },
      },
    });
    const graph = await call("main", {
      id: 6,
      method: "tools/call",
      params: { name: "memory__read_graph", arguments: {} },
    });
    assert.match(JSON.stringify(result(graph)), /tunnel/);

    const target = join(dir, "nope.txt");
    const blocked = await call("main", {
      id: 7,
      method: "tools/call",
      params: { name: "files__write_file", arguments: { path: target, content: "x" } },
    });
    const error = blocked.payload.resp_json as { id: unknown; error: { code: number; message: string } };
    assert.equal(error.id, 7);
    assert.equal(error.error.code, -32602);
    assert.match(error.error.message, /files__write_file/);
    assert.equal(existsSync(target), false);
  });

  test("progress streams as notifies under the client's token", async () => {
    const [command] = cp.enqueue({
      channel: "main",
      headers: session,
      jsonrpc: {
        jsonrpc: "2.0",
        id: 8,
        method: "tools/call",
        params: {
          name: "everything__trigger-long-running-operation",
          arguments: { duration: 0.3, steps: 3 },
          _meta: { progressToken: "tok" },
        },
      },
    });
    await cp.waitForFinal(command!.request_id, 20_000);
    const notifies = cp
      .responsesFor(command!.request_id)
      .filter((r) => r.respType === "jsonrpc_notify")
      .map((r) => r.payload.resp_json as { params: { progressToken: unknown } });
    assert.equal(notifies.length, 3);
    assert.ok(notifies.every((n) => n.params.progressToken === "tok"));
  });

  test("the second channel is a plain pass-through of its one backend", async () => {
    const init = await call("notes", { id: 1, method: "initialize", params: INIT }, {});
    assert.equal((result(init).serverInfo as { name: string }).name, "memory-server");
    const tools = (
      result(await call("notes", { id: 2, method: "tools/list" }, {})).tools as Array<{ name: string }>
    ).map((t) => t.name);
    assert.ok(tools.includes("read_graph") && !tools.some((name) => name.includes("__")));
  });

  test("/readyz?strict=1 shows each backend of the aggregate; /metrics counts calls per backend", async () => {
    const ready = (await (await fetch(`${agent.opsUrl}/readyz?strict=1`)).json()) as {
      ready: boolean;
      backends: Array<{ name: string; transport: string; members?: Array<{ name: string; state: string }> }>;
    };
    assert.equal(ready.ready, true);
    const main = ready.backends.find((b) => b.name === "main")!;
    assert.equal(main.transport, "aggregate");
    assert.deepEqual(
      main.members?.map((m) => [m.name, m.state]),
      [
        ["everything", "up"],
        ["memory", "up"],
        ["files", "up"],
        ["web", "up"],
      ],
    );
    const metrics = await (await fetch(`${agent.opsUrl}/metrics`)).text();
    assert.match(metrics, /airlock_backend_up\{backend="main\/files",transport="stdio"\} 1/);
    assert.match(metrics, /airlock_backend_calls_total\{backend="main\/memory",method="tools\/call",outcome="ok"\} 2/);
    assert.match(metrics, /airlock_backend_call_duration_seconds_count\{backend="main\/web"\} \d+/);
    cp.assertNoViolations();
  });
});

describe("agent with a routing table, through the hub with the MCP SDK client", { concurrency: false }, () => {
  let hub: TestHub;
  let agent: AgentProcess;
  let tunnel: string;

  before(async () => {
    hub = await startTestHub({ tunnels: 1, settings: { livenessMs: 5000 } });
    tunnel = hub.tunnel();
    const config = writeConfig("hub", { base_url: hub.url.origin, tunnel_id: tunnel, api_key: "env:HUB_AGENT_KEY" });
    agent = await startAgentProcess("node", ["--config", config], { HUB_AGENT_KEY: AGENT_KEY });
    const deadline = Date.now() + 20_000;
    // Connected to the hub: Airlock's strict readiness (tunnel-client's ignores the control plane).
    while (!(await fetch(`${agent.opsUrl}/readyz?strict=1`)).ok) {
      if (Date.now() > deadline) throw new Error(`the agent did not become ready:\n${agent.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  after(async () => {
    await agent?.stop("SIGKILL");
    await hub?.close();
  });

  async function connect(channel?: string): Promise<Client> {
    const client = new Client({ name: "e2e-sdk", version: "0.0.0" }, { capabilities: { sampling: {} } });
    await client.connect(
      new StreamableHTTPClientTransport(hub.mcpUrl(tunnel, channel), {
        requestInit: { headers: { Authorization: `Bearer ${CLIENT_TOKEN}` } },
      }),
    );
    return client;
  }

  test("one SDK client sees and uses the tools of all four backends; progress and sampling make the round trip", async () => {
    const client = await connect();
    try {
      assert.equal(client.getServerVersion()?.name, "airlock/main");
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      for (const name of [
        "everything__echo",
        "memory__search_nodes",
        "files__list_directory",
        "web__trigger-sampling-request",
      ])
        assert.ok(names.includes(name), name);
      assert.ok(!names.includes("files__edit_file"));

      const listed = await client.callTool({ name: "files__list_directory", arguments: { path: dir } });
      assert.match(JSON.stringify(listed.content), /readme\.txt/);
      const echoed = await client.callTool({ name: "everything__echo", arguments: { message: "via hub" } });
      assert.deepEqual(echoed.content, [{ type: "text", text: "Echo: via hub" }]);

      const progress: number[] = [];
      const long = await client.callTool(
        { name: "web__trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
        undefined,
        { onprogress: (p) => progress.push(p.progress) },
      );
      assert.deepEqual(progress, [1, 2, 3]);
      assert.match(JSON.stringify(long.content), /completed/);

      const asked: string[] = [];
      client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
        const prompt = JSON.stringify(request.params.messages);
        asked.push(prompt);
        return {
          model: "e2e",
          role: "assistant",
          content: { type: "text", text: prompt.includes("from web") ? "web answer" : "stdio answer" },
        };
      });
      const [web, stdio] = await Promise.all([
        client.callTool({ name: "web__trigger-sampling-request", arguments: { prompt: "from web", maxTokens: 5 } }),
        client.callTool({
          name: "everything__trigger-sampling-request",
          arguments: { prompt: "from stdio", maxTokens: 5 },
        }),
      ]);
      assert.equal(asked.length, 2);
      assert.match(JSON.stringify(web.content), /web answer/);
      assert.match(JSON.stringify(stdio.content), /stdio answer/);

      const hidden = await client
        .callTool({ name: "files__write_file", arguments: { path: join(dir, "x"), content: "x" } })
        .then(
          () => undefined,
          (error: Error) => error,
        );
      assert.match(String(hidden?.message), /files__write_file/);
    } finally {
      await client.close();
    }
  });

  test("the second channel is its one backend, unprefixed", async () => {
    const client = await connect("notes");
    try {
      assert.equal(client.getServerVersion()?.name, "memory-server");
      assert.ok((await client.listTools()).tools.some((t) => t.name === "read_graph"));
    } finally {
      await client.close();
    }
  });
});
