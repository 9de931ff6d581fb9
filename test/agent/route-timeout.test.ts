/**
 * One `timeout` for every backend kind and route: `mcp.timeout` (or a backend's own
 * `timeout:`) bounds each call of a route's only stdio backend as it does an aggregated one.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../agent/config/load.ts";
import { createRouteBackend } from "../../agent/routing/route.ts";
import { silentLogger } from "../../shared/log.ts";
import { exchangeOf, resultText, rpc } from "../support/everything.ts";

const TUNNEL = "tunnel_0123456789abcdef0123456789abcdef";
const HUB_FIXTURE = fileURLToPath(new URL("../fixtures/hub-fixture-server.ts", import.meta.url));

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-timeout-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the timeout setting", () => {
  test("mcp.timeout applies to every backend, stdio or HTTP, alone or aggregated; a backend's own timeout wins", async () => {
    const file = join(dir, "timeouts.yaml");
    await writeFile(
      file,
      [
        "mcp:",
        "  timeout: 2s",
        "  commands:",
        "    - channel: main",
        "      command: npx -y some-server",
        "routes:",
        "  - channel: tools",
        "    backends:",
        "      - { name: a, command: npx -y a }",
        "      - { name: b, url: http://127.0.0.1:1/mcp, timeout: 30s }",
        "",
      ].join("\n"),
    );
    const { config } = await loadConfig({
      argv: ["--config", file],
      env: { HOME: dir, CONTROL_PLANE_API_KEY: "sk-test", CONTROL_PLANE_TUNNEL_ID: TUNNEL },
      cwd: dir,
    });
    const timeouts = config.routes.flatMap((route) => route.backends.map((b) => [route.channel, b.name, b.timeoutMs]));
    assert.deepEqual(timeouts, [
      ["tools", "a", 2000],
      ["tools", "b", 30_000],
      ["main", "main", 2000],
    ]);
  });

  test("a route's only stdio backend: a call over its timeout fails as a timeout, and the server keeps serving", async (t) => {
    const backend = createRouteBackend(
      {
        channel: "main",
        origin: "routes",
        backends: [
          {
            name: "slowpoke",
            transport: "stdio",
            command: [process.execPath, "--import", "tsx", HUB_FIXTURE],
            env: {},
            timeoutMs: 300,
          },
        ],
      },
      { log: silentLogger },
    );
    t.after(() => backend.close());
    await backend.start();
    const init = await backend.exchange(exchangeOf(rpc.initialize("init")));
    assert.equal(init.kind, "response", "initialize is not cut short by the per-call timeout");
    await backend.exchange(exchangeOf(rpc.initialized()));
    const slow = await backend.exchange(exchangeOf(rpc.call(2, "slow", { ms: 60_000, message: "too late" })));
    assert.ok(slow.kind === "failure", `expected a failure, got ${JSON.stringify(slow)}`);
    assert.equal(slow.failure.source, "timeout");
    assert.match(slow.detail ?? "", /backend slowpoke did not answer tools\/call within 300 ms/);
    const echo = await backend.exchange(exchangeOf(rpc.call(3, "echo", { message: "still here" })));
    assert.ok(echo.kind === "response");
    assert.equal(resultText(echo.message), "Echo: still here");
  });
});
