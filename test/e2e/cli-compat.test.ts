/**
 * tunnel-client's command-line contracts, run as real processes: `help <topic>`, exit codes,
 * commands that are out of scope saying so, `dev mcp-stub`, and `mcp.startup_wait_timeout`
 * holding the first poll until the MCP server beside the agent answers (the sidecar race).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { airlockCommand, REPO, controlPlaneFlags, startAgentProcess } from "../support/agent-process.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import { startMcpStub } from "../../agent/demo/mcp-stub.ts";
import { freePort } from "../support/free-port.ts";

function airlock(args: string[], env: Record<string, string> = {}) {
  const [cmd, ...argv] = airlockCommand("node", args);
  return spawnSync(cmd!, argv, { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 });
}

describe("commands and exit codes as tunnel-client", () => {
  test("no arguments: the long help, exit 0; help <topic> prints the topic; an unknown topic exits 1 listing them", () => {
    const bare = airlock([]);
    assert.equal(bare.status, 0, bare.stderr);
    assert.match(bare.stdout, /airlock help quickstart/);
    assert.match(bare.stdout, /Codex integration \(codex, plugin\) is out of scope/);
    for (const topic of ["quickstart", "samples", "doctor", "oauth", "plugin", "troubleshooting"]) {
      const result = airlock(["help", topic]);
      assert.equal(result.status, 0, `${topic}: ${result.stderr}`);
      assert.match(
        result.stdout,
        new RegExp(`^${topic === "plugin" ? "Plugin" : topic[0]!.toUpperCase() + topic.slice(1)}`, "i"),
      );
    }
    const unknown = airlock(["help", "nope"]);
    assert.equal(unknown.status, 1);
    assert.match(
      unknown.stderr,
      /unknown help topic "nope"; available topics: doctor, oauth, plugin, quickstart, samples, troubleshooting/,
    );
    const command = airlock(["help", "health"]);
    assert.equal(command.status, 0);
    assert.match(command.stdout, /--require-control-plane-poll/);
  });

  test("Codex and other tunnel-client-only commands exit 1 saying what to do instead", () => {
    const codex = airlock(["codex", "status"]);
    assert.equal(codex.status, 1);
    assert.match(codex.stderr, /Codex integration is out of scope for Airlock/);
    // `admin tunnels` exists now (test/e2e/admin-tunnels.test.ts); a missing id is cobra's usage error, exit 1.
    const admin = airlock(["admin", "tunnels", "get"]);
    assert.equal(admin.status, 1);
    assert.match(admin.stderr, /^accepts 1 arg\(s\), received 0$/m);
  });

  test("admin <unknown>: help, exit 0 (tunnel-client); AIRLOCK_STRICT_CONFIG=1: exit 1", () => {
    const lenient = airlock(["admin", "tunnel"]);
    assert.equal(lenient.status, 0, lenient.stderr);
    assert.match(lenient.stdout, /airlock admin tunnels create --name NAME/);
    assert.match(lenient.stderr, /unknown command "tunnel" for "airlock admin"/);
    const strict = airlock(["admin", "tunnel"], { AIRLOCK_STRICT_CONFIG: "1" });
    assert.equal(strict.status, 1);
    assert.match(strict.stderr, /unknown command "tunnel" for "airlock admin"/);
  });

  test("run: a configuration error exits 1 (tunnel-client's code), naming the key", () => {
    const result = airlock(["run", "--control-plane.tunnel-id", "tunnel_ABC", "--mcp.command", "true"], {
      CONTROL_PLANE_API_KEY: "sk-x",
    });
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /control_plane\.tunnel_id/);
    const unknownFlag = airlock(["run", "--no-such-flag"]);
    assert.equal(unknownFlag.status, 1);
  });

  test("dev mcp-stub serves a demo MCP server an SDK client can use", async (t) => {
    const port = await freePort();
    const [cmd, ...argv] = airlockCommand("node", [
      "dev",
      "mcp-stub",
      "--listen-addr",
      `127.0.0.1:${port}`,
      "--server-name",
      "demo",
    ]);
    const child = spawn(cmd!, argv, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    t.after(() => {
      child.kill("SIGTERM");
    });
    let out = "";
    child.stdout!.setEncoding("utf8");
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (chunk: string) => {
        out += chunk;
        const match = /MCP stub listening: (\S+)/.exec(out);
        if (match) resolve(match[1]!);
      });
      child.once("exit", (code) => reject(new Error(`dev mcp-stub exited ${code}: ${out}`)));
    });
    assert.equal(url, `http://127.0.0.1:${port}/mcp`);
    const client = new Client({ name: "cli-compat", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    t.after(() => client.close());
    assert.equal(client.getServerVersion()?.name, "demo");
    const tools = await client.listTools();
    assert.deepEqual(tools.tools.map((tool) => tool.name).sort(), ["echo", "server_info", "uppercase"]);
    const echoed = await client.callTool({ name: "echo", arguments: { text: "hi" } });
    assert.deepEqual(echoed.content, [{ type: "text", text: "hi" }]);
  });
});

describe("mcp.startup_wait_timeout (the sidecar race)", () => {
  test("no poll before the main MCP server answers; /readyz says discovery is pending; both follow once it listens", async (t) => {
    const cp = await startFakeControlPlane({ apiKey: "sk-startup-wait-0123456789" });
    t.after(() => cp.close());
    const port = await freePort();
    const agent = await startAgentProcess(
      "node",
      [
        ...controlPlaneFlags(cp, "env:KEY"),
        "--control-plane.poll-timeout",
        "1s",
        "--mcp.server-url",
        `http://127.0.0.1:${port}/mcp`,
        "--mcp.startup-wait-timeout",
        "60s",
      ],
      { KEY: "sk-startup-wait-0123456789" },
    );
    t.after(() => agent.stop());
    const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
      const deadline = Date.now() + 20_000;
      while (!(await ok())) {
        assert.ok(Date.now() < deadline, `${what}:\n${agent.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await until("a retried startup probe", () => agent.logs().some((r) => r.msg === "retrying MCP startup probe"));
    assert.equal(cp.polls.length, 0, "no poll while the MCP server is not listening");
    const ready = await fetch(`${agent.opsUrl}/readyz`);
    assert.equal(ready.status, 503);
    // OAuth discovery runs after the probe (tunnel-client's order) and is checked first.
    assert.equal(await ready.text(), "oauth discovery pending");

    const stub = await startMcpStub({ listenAddr: `127.0.0.1:${port}` });
    t.after(() => stub.close());
    await until("the first poll", () => cp.polls.length > 0);
    await until("/readyz ready", async () => (await fetch(`${agent.opsUrl}/readyz`)).status === 200);
    assert.equal(await (await fetch(`${agent.opsUrl}/readyz`)).text(), "ready");
  });
});
