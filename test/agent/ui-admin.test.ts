import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { loadConfig } from "../../agent/config/load.ts";
import { createOpsApp, assessReadiness } from "../../agent/ops/app.ts";
import type { ControlPlaneStatus } from "../../agent/ops/app.ts";
import { createMetrics } from "../../agent/ops/metrics.ts";
import { createLogTail, createRecentCalls } from "../../agent/ops/recent.ts";
import { createAdminUi } from "../../agent/ops/ui.tsx";
import { isLoopbackAddress } from "../../agent/ops/access.ts";
import type { AdminUiDeps } from "../../agent/ops/ui.tsx";
import { createUiCredential } from "../../agent/ops/ui-auth.ts";
import { redactUrl } from "../../agent/ops/support-bundle.ts";
import { REDACTED } from "../../shared/audit/redact.ts";
import { serve } from "../../agent/runtime/serve.ts";
import type { BackendHealth } from "../../agent/backends/types.ts";
import { createLogger } from "../../shared/log.ts";
import { detectRuntime } from "../../agent/version.ts";

const KEY = "sk-ui-secret-key-777";
const TOKEN = "wiki-token-secret-555";
const UI_TOKEN = "admin-ui-token-for-tests-0123456789";

async function setup(
  options: {
    allowRemote?: boolean;
    remoteAddress?: string | null;
    backends?: BackendHealth[];
    controlPlane?: ControlPlaneStatus;
  } = {},
) {
  const { config, secrets, warnings } = await loadConfig({
    argv: [
      "--control-plane.tunnel-id",
      "tunnel_abcdefghijklmnopqrstuvwxyz012345",
      "--mcp.server-url",
      "channel=main,url=https://user:pw@wiki.test/mcp?token=abc",
      "--mcp.extra-headers",
      "Authorization: env:WIKI_TOKEN",
      ...(options.allowRemote ? ["--allow-remote-ui", "--admin-ui.allowed-host", "agent.internal"] : []),
    ],
    env: { CONTROL_PLANE_API_KEY: KEY, WIKI_TOKEN: TOKEN },
    cwd: "/",
  });
  const tail = createLogTail(100);
  const logger = createLogger({ level: "info", sink: tail.sink, secrets: () => secrets });
  const calls = createRecentCalls({ capacity: 3, now: () => Date.parse("2026-01-01T10:00:00Z") });
  const metrics = createMetrics({ processMetrics: false });
  const backends = options.backends ?? [
    { name: "main", transport: "http", state: "up", restarts: 0, inflight: 0 } satisfies BackendHealth,
  ];
  const controlPlane = options.controlPlane ?? { lastPollOkAt: Date.now() - 3000 };
  const readiness = () => assessReadiness({ controlPlane, backends, now: Date.now(), maxPollAgeMs: 60_000 });
  const deps: AdminUiDeps = {
    readiness,
    metrics: () => metrics.registry.metrics(),
    config,
    warnings,
    secrets: () => secrets,
    calls,
    logs: tail,
    logger,
    instanceId: "inst-42",
    tools: () => ({ main: ["echo", "get-sum"] }),
    credential: await createUiCredential(UI_TOKEN),
    ...(options.remoteAddress !== undefined ? { remoteAddress: () => options.remoteAddress ?? undefined } : {}),
  };
  const app: Hono = createOpsApp({ readiness, registry: metrics.registry, secrets: () => secrets });
  app.route("/ui", createAdminUi(deps));
  return { app, logger, calls, tail, config, credential: deps.credential };
}

const bearer = { Authorization: `Bearer ${UI_TOKEN}` };
const local = { headers: { Host: "127.0.0.1:8080", ...bearer } };

describe("admin UI: who may see it", () => {
  test("loopback clients only, with an explanation for everyone else", async () => {
    const remote = await setup({ remoteAddress: "10.0.0.5" });
    const refused = await remote.app.request("/ui", local);
    assert.equal(refused.status, 403);
    const text = await refused.text();
    assert.match(text, /refused this request; this request came from 10\.0\.0\.5, not from this host/);
    assert.match(
      text,
      /--allow-remote-ui \(admin_ui\.allow_remote: true\) and name the host it is reached by in admin_ui\.allowed_hosts/,
    );
    // The probes are not the UI: they stay reachable.
    assert.equal((await remote.app.request("/healthz")).status, 200);

    const unknown = await setup({ remoteAddress: null });
    assert.equal((await unknown.app.request("/ui", local)).status, 403);

    const rebinding = await setup({ remoteAddress: "127.0.0.1" });
    const evil = await rebinding.app.request("/ui", { headers: { Host: "attacker.example:8080", ...bearer } });
    assert.equal(evil.status, 403);
    assert.match(
      await evil.text(),
      /names host "attacker\.example:8080", which is neither a loopback name nor in admin_ui\.allowed_hosts/,
    );

    for (const address of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
      const ok = await setup({ remoteAddress: address });
      assert.equal((await ok.app.request("/ui", local)).status, 200, address);
    }
    const allowed = await setup({ allowRemote: true, remoteAddress: "10.0.0.5" });
    assert.equal(
      (await allowed.app.request("/ui", { headers: { Host: "agent.internal:8080", ...bearer } })).status,
      200,
    );
  });

  test("loopback addresses", () => {
    for (const yes of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1"])
      assert.ok(isLoopbackAddress(yes), yes);
    for (const no of ["10.0.0.1", "::", "0.0.0.0", "::ffff:10.0.0.1", "128.0.0.1", "localhost"])
      assert.ok(!isLoopbackAddress(no), no);
  });

  test(`the connecting address comes from the runtime (${detectRuntime().name})`, async (t: TestContext) => {
    const { app } = await setup();
    const served = await serve(app.fetch, { hostname: "127.0.0.1", port: 0 });
    t.after(() => served.close());
    const response = await fetch(`${served.url}/ui`, { headers: bearer });
    assert.equal(response.status, 200, await response.clone().text());
    assert.match(await response.text(), /<title>Airlock admin<\/title>/);
  });
});

describe("admin UI: what it shows", () => {
  test("overview, backends with tools, recent calls; secrets never rendered", async () => {
    const failing: BackendHealth = {
      name: "files",
      transport: "stdio",
      state: "failed",
      restarts: 5,
      inflight: 0,
      reason: `crash loop; token ${TOKEN} rejected`,
      stderrTail: [`auth with ${KEY} failed`],
    };
    const { app, calls } = await setup({
      remoteAddress: "127.0.0.1",
      backends: [{ name: "main", transport: "http", state: "up", restarts: 0, inflight: 1, era: "legacy" }, failing],
    });
    calls.events.commandFinished!({
      requestId: "req_1",
      channel: "main",
      method: "tools/call",
      target: "echo",
      backend: "main",
      outcome: "ok",
      respCode: 200,
      durationMs: 12.4,
    });
    const response = await app.request("/ui", local);
    const html = await response.text();
    const nonce = /<script nonce="([0-9a-f]{32})"/.exec(html)?.[1];
    assert.ok(nonce, "the inline script carries a nonce");
    assert.match(response.headers.get("content-security-policy") ?? "", new RegExp(`script-src 'nonce-${nonce}'`));
    assert.equal(response.headers.get("x-frame-options"), "DENY");
    assert.match(html, /tunnel_abcdefghijklmnopqrstuvwxyz012345/);
    assert.match(html, /id="ready" data-ready="false">not ready</);
    assert.match(html, /backend files is failed/);
    assert.match(html, /<tr data-backend="main" data-state="up">/);
    assert.match(html, /<tr data-backend="files" data-state="failed">/);
    assert.match(html, /http · <span data-era="legacy">MCP 2025<\/span>/, "the era the bridge found");
    assert.match(html, /echo, get-sum/);
    assert.match(html, /<td>tools\/call<\/td><td>echo<\/td><td>main<\/td>.*12 ms/s);
    assert.doesNotMatch(html, new RegExp(`${KEY}|${TOKEN}`));
    assert.match(html, /\[REDACTED\]/);
    // The live fragment is the same rendering.
    const fragment = await (await app.request("/ui/fragment", local)).text();
    assert.match(fragment, /data-backend="files" data-state="failed"/);
    assert.doesNotMatch(fragment, new RegExp(`${KEY}|${TOKEN}`));
  });

  test("the control-plane state says when the key was refused", async () => {
    const { app } = await setup({
      remoteAddress: "127.0.0.1",
      controlPlane: { unauthorized: true, lastError: "HTTP 401 invalid_api_key" },
    });
    const status = (await (await app.request("/ui/api/status", local)).json()) as {
      readiness: { ready: boolean; reasons: string[] };
    };
    assert.equal(status.readiness.ready, false);
    assert.match(status.readiness.reasons[0]!, /rejected the API key/);
    assert.match(await (await app.request("/ui", local)).text(), /id="cp-state">key refused \(401\/403\)</);
  });

  test("log tail and level switch", async () => {
    const { app, logger } = await setup({ remoteAddress: "127.0.0.1" });
    logger.info("first line", { backend: "main" });
    logger.debug("hidden at info");
    logger.warn(`secret ${KEY} in a message`);
    const body = (await (await app.request("/ui/api/logs?after=0", local)).json()) as {
      level: string;
      entries: Array<{ seq: number; msg: string; fields: Record<string, unknown> }>;
    };
    assert.equal(body.level, "info");
    assert.deepEqual(
      body.entries.map((e) => e.msg),
      ["first line", "secret [REDACTED] in a message"],
    );
    assert.deepEqual(body.entries[0]!.fields, { backend: "main" });
    const later = (await (await app.request(`/ui/api/logs?after=${body.entries[0]!.seq}`, local)).json()) as {
      entries: unknown[];
    };
    assert.equal(later.entries.length, 1);

    const switched = await app.request("/ui/api/log-level", {
      method: "POST",
      headers: { ...local.headers, "Content-Type": "application/json", Origin: "http://127.0.0.1:8080" },
      body: JSON.stringify({ level: "debug" }),
    });
    assert.equal(switched.status, 200);
    assert.equal(logger.level, "debug");
    const bad = await app.request("/ui/api/log-level", {
      method: "POST",
      headers: { ...local.headers, "Content-Type": "application/json" },
      body: JSON.stringify({ level: "loud" }),
    });
    assert.equal(bad.status, 400);
    // A form posted from another site is refused before it reaches the handler.
    const forged = await app.request("http://127.0.0.1:8080/ui/api/log-level", {
      method: "POST",
      headers: { ...local.headers, "Content-Type": "text/plain", Origin: "https://evil.example" },
      body: JSON.stringify({ level: "error" }),
    });
    assert.equal(forged.status, 403);
    assert.equal(logger.level, "debug");
  });

  test("support bundle: everything an engineer needs, every secret redacted", async () => {
    const { app, logger, calls } = await setup({ remoteAddress: "127.0.0.1" });
    logger.error(`backend said ${TOKEN}`);
    calls.events.commandFinished!({
      requestId: "req_9",
      channel: "main",
      method: "initialize",
      backend: "main",
      outcome: "failure",
      respCode: 502,
      durationMs: 30,
    });
    const response = await app.request("/ui/support-bundle", local);
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("content-disposition") ?? "",
      /^attachment; filename="airlock-support-\d{8}T\d{6}Z\.json"$/,
    );
    const text = await response.text();
    assert.doesNotMatch(text, new RegExp(`${KEY}|${TOKEN}|user:pw|token=abc`));
    const bundle = JSON.parse(text) as {
      kind: string;
      airlock: { instanceId: string };
      metrics: string;
      readiness: { ready: boolean };
      config: {
        controlPlane: { apiKey: string; tunnelId: string };
        mcp: { extraHeaders: Record<string, string> };
        routes: Array<{ backends: Array<{ url: string }> }>;
      };
      recentCalls: Array<{ requestId: string }>;
      logs: Array<{ msg: string }>;
    };
    assert.equal(bundle.kind, "airlock-support-bundle");
    assert.equal(bundle.airlock.instanceId, "inst-42");
    assert.equal(bundle.config.controlPlane.apiKey, REDACTED);
    assert.equal(bundle.config.controlPlane.tunnelId, "tunnel_abcdefghijklmnopqrstuvwxyz012345");
    assert.deepEqual(bundle.config.mcp.extraHeaders, { Authorization: REDACTED });
    assert.equal(bundle.config.routes[0]!.backends[0]!.url, `https://${REDACTED}@wiki.test/mcp?${REDACTED}`);
    assert.equal(bundle.readiness.ready, true);
    assert.equal(bundle.recentCalls[0]!.requestId, "req_9");
    assert.equal(bundle.logs.at(-1)!.msg, "backend said [REDACTED]");
    assert.match(bundle.metrics, /airlock_build_info/);
  });

  test("URL redaction keeps host and path only", () => {
    assert.equal(redactUrl("http://a:b@h.test:81/p?q=1#f"), `http://${REDACTED}@h.test:81/p?${REDACTED}`);
    assert.equal(redactUrl("https://h.test/mcp"), "https://h.test/mcp");
    assert.equal(redactUrl("not a url"), "not a url");
  });

  test("recent calls and log tail are bounded rings", () => {
    const calls = createRecentCalls({ capacity: 2 });
    for (const id of ["a", "b", "c"])
      calls.events.commandFinished!({ requestId: id, channel: "main", outcome: "ok", durationMs: 1 });
    assert.deepEqual(
      calls.list().map((c) => c.requestId),
      ["c", "b"],
    );
    const tail = createLogTail(2);
    const logger = createLogger({ sink: tail.sink });
    for (const msg of ["1", "2", "3"]) logger.info(msg);
    assert.deepEqual(
      tail.since(0).map((e) => [e.seq, e.msg]),
      [
        [2, "2"],
        [3, "3"],
      ],
    );
    assert.deepEqual(
      tail.since(0, 1).map((e) => e.msg),
      ["3"],
    );
  });
});

describe("admin UI: its own credential (attack: a loopback peer reads the UI)", () => {
  const PAGES = ["/ui", "/ui/fragment", "/ui/api/status", "/ui/api/logs?after=0", "/ui/support-bundle"];
  const loopbackOnly = { Host: "127.0.0.1:8080" };

  test("every page, API call and the support bundle answer 401 without it; the probes stay open", async () => {
    const { app } = await setup({ remoteAddress: "127.0.0.1" });
    for (const path of PAGES) {
      const response = await app.request(path, { headers: loopbackOnly });
      assert.equal(response.status, 401, path);
      const text = await response.text();
      assert.match(text, /needs its credential/, path);
      assert.doesNotMatch(text, /tunnel_abcdefghijklmnopqrstuvwxyz012345|airlock-support-bundle/, path);
    }
    const level = await app.request("/ui/api/log-level", {
      method: "POST",
      headers: { ...loopbackOnly, "Content-Type": "application/json" },
      body: JSON.stringify({ level: "debug" }),
    });
    assert.equal(level.status, 401);
    for (const wrong of ["Bearer nope", `Bearer ${UI_TOKEN}x`, `Basic ${UI_TOKEN}`, UI_TOKEN]) {
      assert.equal(
        (await app.request("/ui/support-bundle", { headers: { ...loopbackOnly, Authorization: wrong } })).status,
        401,
        wrong,
      );
    }
    assert.equal((await app.request("/healthz")).status, 200);
    assert.equal((await app.request("/readyz")).status, 200);
    assert.equal((await app.request("/metrics")).status, 200);
  });

  test("a one-time link sets an HttpOnly SameSite=Strict cookie, and works once", async () => {
    const { app, credential } = await setup({ remoteAddress: "127.0.0.1" });
    const code = await credential.issueLoginCode();
    const signIn = await app.request(`/ui/login?code=${code}`, { headers: loopbackOnly });
    assert.equal(signIn.status, 303);
    assert.equal(signIn.headers.get("location"), "/ui");
    const cookie = signIn.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^airlock_ui=[A-Za-z0-9_-]{43}; Path=\/ui; HttpOnly; SameSite=Strict$/);
    const session = cookie.split(";")[0]!;
    for (const path of PAGES)
      assert.equal((await app.request(path, { headers: { ...loopbackOnly, Cookie: session } })).status, 200, path);
    assert.equal((await app.request(`/ui/login?code=${code}`, { headers: loopbackOnly })).status, 401, "a spent code");
    assert.equal((await app.request("/ui", { headers: { ...loopbackOnly, Cookie: "airlock_ui=forged" } })).status, 401);
  });

  test("the sign-in form takes the token; a cross-site form cannot sign a browser in", async () => {
    const { app } = await setup({ remoteAddress: "127.0.0.1" });
    const form = (token: string, origin = "http://127.0.0.1:8080") =>
      app.request("http://127.0.0.1:8080/ui/login", {
        method: "POST",
        headers: { ...loopbackOnly, Origin: origin, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token }).toString(),
      });
    const ok = await form(UI_TOKEN);
    assert.equal(ok.status, 303);
    assert.match(ok.headers.get("set-cookie") ?? "", /HttpOnly; SameSite=Strict/);
    assert.equal((await form("wrong")).status, 401);
    assert.equal((await form(UI_TOKEN, "https://evil.example")).status, 403);
    assert.equal((await app.request("/ui/login", { headers: loopbackOnly })).status, 200, "the form itself is open");
  });

  test("--allow-remote-ui widens the peer only: Host and Origin checks and the credential stay", async () => {
    const { app } = await setup({ allowRemote: true, remoteAddress: "10.0.0.5" });
    assert.equal((await app.request("/ui", { headers: { Host: "agent.internal:8080" } })).status, 401);
    assert.equal((await app.request("/ui", { headers: { Host: "rebound.attacker.example", ...bearer } })).status, 403);
    assert.equal(
      (await app.request("/ui", { headers: { Host: "agent.internal", Origin: "https://attacker.example", ...bearer } }))
        .status,
      403,
    );
    assert.equal(
      (
        await app.request("/ui", {
          headers: { Host: "agent.internal", Origin: "http://agent.internal:8080", ...bearer },
        })
      ).status,
      200,
    );
  });

  test("--allow-remote-ui without allowed hosts is a config error that says what to set", async () => {
    await assert.rejects(
      loadConfig({
        argv: [
          "--control-plane.tunnel-id",
          "tunnel_abcdefghijklmnopqrstuvwxyz012345",
          "--mcp.command",
          "x",
          "--allow-remote-ui",
        ],
        env: { CONTROL_PLANE_API_KEY: KEY },
        cwd: "/",
      }),
      /admin_ui\.allowed_hosts/,
    );
  });
});
