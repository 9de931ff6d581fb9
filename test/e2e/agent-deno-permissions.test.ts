/**
 * `deno run agent/main.ts`, as the project is known: without permission flags it prints one
 * message naming the least-privilege flags and exits 2 (no stack trace); with exactly the
 * documented flags (README, deno.json) plus a write grant scoped to the health url file's
 * directory, it serves a call from the contract-checking fake control plane.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DENO_FLAGS } from "../../agent/runtime/permissions.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { everythingStdioCommand } from "../support/everything.ts";
import { REPO, startAgentProcess, type AgentProcess } from "../support/agent-process.ts";

const DENO = join(REPO, "node_modules/.bin/deno");

function runDeno(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(DENO, args, {
      cwd: REPO,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("deno run agent/main.ts", { concurrency: false }, () => {
  test("the documented flags are the ones the README and deno.json use, and none is -A", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const tasks = (JSON.parse(readFileSync(join(REPO, "deno.json"), "utf8")) as { tasks: Record<string, string> })
      .tasks;
    const documented = `deno run ${DENO_FLAGS.join(" ")} agent/main.ts`;
    assert.ok(readme.includes(documented), `README shows ${documented}`);
    assert.ok(tasks.agent?.startsWith(`deno run ${DENO_FLAGS.join(" ")} `), `deno.json's agent task: ${tasks.agent}`);
    for (const command of [
      ...Object.values(tasks),
      ...readme.split("\n").filter((line) => line.includes("deno run")),
    ]) {
      assert.doesNotMatch(command, /\s(-A|--allow-all)\b/, command);
    }
  });

  test("without flags: one message naming the least-privilege flags, exit 2, no stack trace", async () => {
    const { code, stdout, stderr } = await runDeno([
      "run",
      join(REPO, "agent/main.ts"),
      "run",
      "--control-plane.tunnel-id",
      `tunnel_${"a".repeat(32)}`,
    ]);
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    for (const flag of [...DENO_FLAGS, "--allow-write=PATH"])
      assert.ok(stderr.includes(flag), `names ${flag}:\n${stderr}`);
    assert.match(stderr, /^airlock: Deno has not granted --allow-net, --allow-env, --allow-read, --allow-run\./);
    assert.doesNotMatch(stderr, /NotCapable|Uncaught|\n\s+at /, "no stack trace");
  });

  describe("with exactly the documented flags", () => {
    let cp: FakeControlPlane;
    let agent: AgentProcess;
    const secret = "sk-deno-least-privilege-0001";

    before(async () => {
      cp = await startFakeControlPlane({ apiKey: secret });
      agent = await startAgentProcess(
        "deno",
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
        ],
        { E2E_KEY: secret },
        (dir) => [...DENO_FLAGS, `--allow-write=${dir}`],
      );
    });
    after(async () => {
      await agent?.stop("SIGKILL");
      await cp?.close();
    });

    test("it serves a tools/call over stdio and stays within the contract", async () => {
      const [call] = cp.enqueue({
        jsonrpc: {
          jsonrpc: "2.0",
          id: 3,
          method: "tools/call",
          params: { name: "echo", arguments: { message: "least privilege" } },
        },
      });
      const answer = await cp.waitForFinal(call!.request_id, 30_000);
      const message = answer.payload.resp_json as { id: unknown; result?: { content: unknown } };
      assert.equal(message.id, 3);
      assert.deepEqual(message.result?.content, [{ type: "text", text: "Echo: least privilege" }]);
      assert.equal((await fetch(`${agent.opsUrl}/readyz`)).status, 200);
      assert.doesNotMatch(agent.stderr(), /NotCapable/);
      assert.equal(await agent.stop("SIGTERM"), 0, agent.stderr());
      cp.assertNoViolations();
    });
  });
});
