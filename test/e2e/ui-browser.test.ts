/**
 * The admin UI in a real browser (the npm-shipped Chromium, test/support/browser.ts, through
 * playwright-core): signed in by the one-time link (the page itself answers 401 before), the
 * page loads from the ops app, shows a real stdio backend (server-everything) up, shows it go
 * down when its child is killed and come back after the supervised restart, and a
 * screenshot is saved to test/artifacts/ui.png (and ui-down.png while it is down).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import type { Backend } from "../../agent/backends/types.ts";
import { loadConfig } from "../../agent/config/load.ts";
import { assessReadiness, createOpsApp } from "../../agent/ops/app.ts";
import { createMetrics } from "../../agent/ops/metrics.ts";
import { createLogTail, createRecentCalls } from "../../agent/ops/recent.ts";
import { createAdminUi } from "../../agent/ops/ui.tsx";
import { createUiCredential, type UiCredential } from "../../agent/ops/ui-auth.ts";
import { serve } from "../../agent/runtime/serve.ts";
import type { ServedApp } from "../../agent/runtime/serve.ts";
import { combineEvents } from "../../agent/events.ts";
import { createLogger } from "../../shared/log.ts";
import { everythingStdioCommand, exchangeOf, resultText, rpc } from "../support/everything.ts";
import { BROWSER_ARGS, chromiumExecutable } from "../support/browser.ts";

const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));
/** Long enough that a page refreshing every second sees the backend down. */
const RESTART_DELAY_MS = 3000;

let backend: Backend;
let served: ServedApp;
let context: BrowserContext;
let profileDir: string;
let credential: UiCredential;
const children: ChildProcess[] = [];

before(async () => {
  const { config, secrets } = await loadConfig({
    argv: [
      "--control-plane.tunnel-id",
      "tunnel_0123456789abcdef0123456789abcdef",
      "--mcp.command",
      everythingStdioCommand().join(" "),
    ],
    env: { CONTROL_PLANE_API_KEY: "sk-browser-test-key" },
    cwd: process.cwd(),
  });
  const tail = createLogTail(500);
  const log = createLogger({ level: "info", sink: tail.sink, secrets: () => secrets });
  backend = createStdioBackend({
    name: "main",
    command: everythingStdioCommand(),
    log,
    restart: { initialDelayMs: RESTART_DELAY_MS },
    spawn: (command, args, options) => {
      const child = spawn(command, args, options);
      children.push(child);
      return child;
    },
  });
  await backend.start();
  const calls = createRecentCalls();
  const metrics = createMetrics({ processMetrics: false, backends: () => [backend.health()] });
  const events = combineEvents(metrics.events, calls.events);
  // A real call through the backend, recorded the way the dispatcher reports it.
  const started = performance.now();
  const answer = await backend.exchange(exchangeOf(rpc.initialize(1)));
  assert.equal(answer.kind, "response");
  await backend.exchange(exchangeOf(rpc.initialized()));
  const echo = await backend.exchange(exchangeOf(rpc.call(2, "echo", { message: "hello from the browser test" })));
  assert.equal(echo.kind === "response" && resultText(echo.message), "Echo: hello from the browser test");
  events.commandFinished?.({
    requestId: "req_demo_1",
    channel: "main",
    method: "tools/call",
    target: "echo",
    backend: "main",
    outcome: "ok",
    respCode: 200,
    durationMs: performance.now() - started,
  });

  const readiness = () =>
    assessReadiness({
      controlPlane: { lastPollOkAt: Date.now() - 2000 },
      backends: [backend.health()],
      now: Date.now(),
      maxPollAgeMs: 60_000,
    });
  const app = createOpsApp({ readiness, registry: metrics.registry, secrets: () => secrets });
  credential = await createUiCredential();
  app.route(
    "/ui",
    createAdminUi({
      readiness,
      metrics: () => metrics.registry.metrics(),
      config,
      secrets: () => secrets,
      calls,
      logs: tail,
      logger: log,
      instanceId: "browser-test",
      credential,
      tools: () => ({ main: ["echo", "get-sum", "get-env"] }),
    }),
  );
  served = await serve(app.fetch, { hostname: "127.0.0.1", port: 0 });

  const browser = await chromiumExecutable();
  console.log(`browser: ${browser.source} at ${browser.path}`);
  profileDir = await mkdtemp(join(tmpdir(), "airlock-chromium-"));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: browser.path,
    headless: true,
    args: BROWSER_ARGS,
    viewport: { width: 1280, height: 900 },
  });
});

after(async () => {
  await context?.close();
  await served?.close();
  await backend?.close();
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  if (profileDir) await rm(profileDir, { recursive: true, force: true });
});

function backendRow(page: Page, state: string) {
  return page.waitForSelector(`tr[data-backend="main"][data-state="${state}"]`, { timeout: 20_000 });
}

test("the admin UI shows a stdio backend go down and come back", async () => {
  const page = await context.newPage();
  // Without the credential the browser gets 401; the one-time link signs it in (cookie), once.
  assert.equal((await page.goto(`${served.url}/ui`))?.status(), 401);
  const link = `${served.url}/ui/login?code=${await credential.issueLoginCode()}`;
  const response = await page.goto(link);
  assert.equal(response?.status(), 200);
  assert.equal(page.url(), `${served.url}/ui`, "the link lands on the UI");
  const cookie = (await context.cookies()).find((c) => c.name === "airlock_ui");
  assert.ok(cookie?.httpOnly && cookie.sameSite === "Strict", JSON.stringify(cookie));
  assert.equal(await page.title(), "Airlock admin");
  await backendRow(page, "up");
  assert.equal(await page.textContent("#ready"), "ready");
  assert.match((await page.textContent("#calls")) ?? "", /tools\/call\s*echo\s*main/);
  assert.match((await page.textContent("tr[data-backend=main]")) ?? "", /echo, get-sum, get-env/);
  // The live log tail shows the backend's own log lines.
  await page.waitForFunction(
    () => document.getElementById("log")?.textContent?.includes("MCP server process started"),
    undefined,
    { timeout: 10_000 },
  );

  const first = children.at(-1)!;
  first.kill("SIGKILL");
  const down = await page.waitForSelector('tr[data-backend="main"]:not([data-state="up"])', { timeout: 10_000 });
  const downState = await down.getAttribute("data-state");
  assert.ok(downState === "restarting" || downState === "starting", `state while down: ${downState}`);
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "ui-down.png"), fullPage: true });

  await backendRow(page, "up");
  assert.notEqual(children.at(-1), first, "a new child was started");
  assert.match((await page.textContent('tr[data-backend="main"] td:nth-child(4)')) ?? "", /^[1-9]/);
  await page.waitForFunction(() => document.getElementById("ready")?.textContent === "ready", undefined, {
    timeout: 10_000,
  });
  const shot = join(ARTIFACTS, "ui.png");
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok((await stat(shot)).size > 10_000);
  const reused = await (await context.newPage()).goto(link);
  assert.equal(reused?.status(), 401, "a spent sign-in link does not sign in again");
});
