/**
 * What users run, built fresh and run for real against the contract-checking fake control
 * plane, with server-everything over stdio as the backend:
 *
 *   bundle      `npm run build` → dist/airlock.js, started the way `airlock` / `npx airlock`
 *               start it (bin/airlock.js on plain Node, which loads the bundle in-process)
 *   bun         the single-file executable for this machine (`npm run build:bun`)
 *   deno        dist/standalone/airlock.mjs under `deno run`: the program `deno compile` embeds.
 *               `deno compile` itself needs denort, which it downloads from Deno's release
 *               server (no npm package carries it), so it cannot be built offline here.
 *
 * Every step is bounded by the test timeouts; nothing is timed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { arch, tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { everythingStdioCommand, resultText, rpc } from "../support/everything.ts";
import { startAirlockProcess, type AgentProcess } from "../support/agent-process.ts";
import { ROOT, run } from "../support/run.ts";
import { eventually } from "../support/manual-clock.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";

const STANDALONE = join(ROOT, "dist/standalone/airlock.mjs");
const BUN_EXECUTABLE = join(ROOT, `dist/bin/airlock-bun-linux-${arch() === "arm64" ? "arm64" : "x64"}`);
const DENO = join(ROOT, "node_modules/.bin/deno");
const INIT = { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "build", version: "1" } };

/** Each way of running `airlock`, as argv for given arguments. */
const BUILDS: Record<string, (args: string[]) => string[]> = {
  bundle: (args) => [process.execPath, join(ROOT, "bin/airlock.js"), ...args],
  bun: (args) => [BUN_EXECUTABLE, ...args],
  deno: (args) => [DENO, "run", "-A", STANDALONE, ...args],
};

before(
  async () => {
    for (const script of [[], ["bun"]]) {
      const { code, output } = await run(process.execPath, ["scripts/build.mjs", ...script]);
      assert.equal(code, 0, output);
    }
  },
  { timeout: 240_000 },
);

for (const [name, command] of Object.entries(BUILDS)) {
  describe(`airlock as built: ${name}`, { concurrency: false, timeout: 120_000 }, () => {
    let cp: FakeControlPlane;
    let agent: AgentProcess;
    const secret = "sk-build-secret-value-123456";
    const pidFile = join(mkdtempSync(join(tmpdir(), "airlock-build-")), "agent.pid");

    before(async () => {
      cp = await startFakeControlPlane({ apiKey: secret });
      agent = await startAirlockProcess(
        name,
        command,
        [
          "--control-plane.base-url",
          cp.baseUrl,
          "--control-plane.tunnel-id",
          cp.tunnelId,
          "--control-plane.api-key",
          "env:BUILD_KEY",
          "--control-plane.poll-timeout",
          "2s",
          "--mcp.command",
          everythingStdioCommand().join(" "),
          "--pid.file",
          pidFile,
        ],
        { BUILD_KEY: secret, AIRLOCK_FROM_SOURCE: "" },
      );
    });
    after(async () => {
      await agent?.stop("SIGKILL");
      await cp?.close();
    });

    test("runs as one process: the pid file holds the pid that was started (no loader re-spawning it)", async () => {
      // The pid file is written once the agent serves, a moment after /healthz answers.
      await eventually(() => existsSync(pidFile), 10_000, "the pid file");
      assert.equal(readFileSync(pidFile, "utf8").trim(), String(agent.child.pid));
    });

    test("serves initialize and an echo call through the fake control plane", async () => {
      const [init] = cp.enqueue({
        channel: "main",
        jsonrpc: { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT },
      });
      const initAnswer = await cp.waitForFinal(init!.request_id, 20_000);
      assert.equal(initAnswer.payload.resp_type, "jsonrpc_response");
      const [echo] = cp.enqueue({
        channel: "main",
        jsonrpc: {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: { name: "echo", arguments: { message: `built ${name}` } },
        },
      });
      const echoed = (await cp.waitForFinal(echo!.request_id, 20_000)).payload.resp_json as {
        result?: { content: unknown };
      };
      assert.deepEqual(echoed.result?.content, [{ type: "text", text: `Echo: built ${name}` }]);
      const health = (await (await fetch(`${agent.opsUrl}/healthz?verbose=1`)).json()) as { runtime: { name: string } };
      assert.equal(health.runtime.name, name === "bundle" ? "node" : name);
      assert.ok(!agent.stderr().includes(secret));
      cp.assertNoViolations();
    });

    test("the built-in samples are inside the build (`profiles samples show`)", async () => {
      const [cmd, ...argv] = command(["profiles", "samples", "show", "sample_mcp_stdio_local"]);
      const { code, output } = await run(cmd!, argv);
      assert.equal(code, 0, output);
      assert.match(output, /^# sample_mcp_stdio_local:/);
    });

    test("a YAML config file is parsed (the parser loads lazily, only when a file is given)", async () => {
      const file = join(mkdtempSync(join(tmpdir(), "airlock-build-")), "airlock.yaml");
      writeFileSync(file, "config_version: 2\ncontrol_plane:\n  tunnel_id: not-a-tunnel\n");
      const [cmd, ...argv] = command(["run", "--config", file]);
      const { code, output } = await run(cmd!, argv);
      assert.notEqual(code, 0, output);
      assert.match(output, /control_plane\.tunnel_id \(from .*airlock\.yaml\): "not-a-tunnel" is not a tunnel id/);
    });

    test("SIGTERM exits 0 and removes the pid file", async () => {
      assert.equal(await agent.stop("SIGTERM"), 0, agent.stderr());
      assert.equal(existsSync(pidFile), false);
    });
  });
}

test("the bundle's `run --embedded-mcp-stub` loads the stub's chunk when asked and serves a call", {
  timeout: 60_000,
}, async () => {
  const key = "sk-build-stub-value-123456";
  const cp = await startFakeControlPlane({ apiKey: key });
  const agent = await startAirlockProcess(
    "bundle",
    BUILDS.bundle!,
    ["--embedded-mcp-stub", "--control-plane.base-url", cp.baseUrl, "--control-plane.tunnel-id", cp.tunnelId],
    { CONTROL_PLANE_API_KEY: key, AIRLOCK_FROM_SOURCE: "" },
  );
  try {
    const [call] = cp.enqueue({ channel: "main", jsonrpc: rpc.call(1, "uppercase", { text: "lazy stub" }) });
    const answer = (await cp.waitForFinal(call!.request_id, 20_000)).payload.resp_json as JsonRpcMessage;
    assert.equal(resultText(answer), "LAZY STUB");
  } finally {
    await agent.stop("SIGKILL");
    await cp.close();
  }
});

test("the Bun executable says `hub` and `dev proxy` are not in it, and where to run them (exit 2)", {
  timeout: 30_000,
}, async () => {
  for (const args of [["hub"], ["dev", "proxy", "--print-json"]]) {
    const { code, output } = await run(BUN_EXECUTABLE, args);
    assert.equal(code, 2, output);
    assert.match(output, /`hub`, `demo` and `dev proxy` are not part of this single-file executable/);
    assert.match(output, /npx airlock hub/);
  }
  // `dev mcp-stub` stays in it: only the hub needs workerd.
  const { output } = await run(BUN_EXECUTABLE, ["dev", "--help"]);
  assert.match(output, /dev mcp-stub/);
});
