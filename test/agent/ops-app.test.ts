import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { BackendHealth } from "../../agent/backends/types.ts";
import { loadConfig } from "../../agent/config/load.ts";
import { assessReadiness, createOpsApp, type Readiness } from "../../agent/ops/app.ts";
import { createMetrics } from "../../agent/ops/metrics.ts";
import { VERSION } from "../../agent/version.ts";

const SECRET = "sk-live-0123456789secret";

function backend(name: string, state: BackendHealth["state"], extra: Partial<BackendHealth> = {}): BackendHealth {
  return { name, transport: "stdio", state, restarts: 0, inflight: 0, ...extra };
}

/** An ops app on a fake clock whose readiness comes from `status`. */
function setup(status: () => Omit<Parameters<typeof assessReadiness>[0], "now" | "maxPollAgeMs">) {
  let clock = 1_000_000;
  const metrics = createMetrics({ processMetrics: false, backends: () => status().backends });
  const app = createOpsApp({
    registry: metrics.registry,
    now: () => clock,
    startedAt: clock - 90_000,
    secrets: () => [SECRET],
    readiness: (options) =>
      assessReadiness({
        ...status(),
        now: clock,
        maxPollAgeMs: 70_000,
        ...(options?.strict === undefined ? {} : { strict: options.strict }),
      }),
  });
  return {
    app,
    metrics,
    advance: (ms: number) => {
      clock += ms;
    },
    now: () => clock,
  };
}

describe("/healthz", () => {
  test("answers 200 text/plain `live`, as tunnel-client", async () => {
    const { app } = setup(() => ({ controlPlane: {}, backends: [] }));
    const response = await app.request("/healthz");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(await response.text(), "live");
  });

  test("?verbose=1 answers JSON with version and uptime", async () => {
    const { app } = setup(() => ({ controlPlane: {}, backends: [] }));
    const response = await app.request("/healthz?verbose=1");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /application\/json/);
    const body = (await response.json()) as {
      status: string;
      version: string;
      uptimeSeconds: number;
      runtime: { name: string };
    };
    assert.equal(body.status, "live");
    assert.equal(body.version, VERSION);
    assert.equal(body.uptimeSeconds, 90);
    assert.ok(["node", "deno", "bun"].includes(body.runtime.name));
  });
});

describe("/", () => {
  test("redirects to the admin UI at /ui, where tunnel-client's UI bookmarks should land", async () => {
    const { app } = setup(() => ({ controlPlane: {}, backends: [] }));
    const response = await app.request("/");
    assert.equal(response.status, 302);
    assert.equal(response.headers.get("location"), "/ui");
  });
});

describe("/readyz (tunnel-client's rule: backends only, plain text)", () => {
  test("200 `ready` with the control plane unreachable or refusing the key; backends decide", async () => {
    let backends = [backend("main", "starting")];
    const { app } = setup(() => ({ controlPlane: { unauthorized: true, lastError: "HTTP 401" }, backends }));
    let response = await app.request("/readyz");
    assert.equal(response.status, 503);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(await response.text(), "mcp startup probe pending");

    backends = [backend("main", "up")];
    response = await app.request("/readyz");
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "ready");

    backends = [backend("main", "failed", { reason: `exited with code 1 (token ${SECRET})` })];
    response = await app.request("/readyz?strict=0");
    assert.equal(response.status, 503);
    assert.equal(
      await response.text(),
      "mcp probe failed: backend main is failed: exited with code 1 (token [REDACTED])",
    );
  });
});

describe("/readyz?strict=1 (Airlock's rule: control plane and backends, JSON)", () => {
  test("503 with a reason before the first answered poll, 200 after, 503 again when polls go stale", async () => {
    let lastPollOkAt: number | undefined;
    const { app, advance, now } = setup(() => ({
      controlPlane: {
        ...(lastPollOkAt !== undefined ? { lastPollOkAt } : {}),
        lastError: "connect ECONNREFUSED 127.0.0.1:9",
      },
      backends: [backend("main", "up")],
    }));

    let response = await app.request("/readyz?strict=1");
    assert.equal(response.status, 503);
    let body = (await response.json()) as Readiness;
    assert.equal(body.ready, false);
    assert.deepEqual(body.reasons, ["the control plane has not answered a poll yet: connect ECONNREFUSED 127.0.0.1:9"]);

    lastPollOkAt = now();
    advance(5_000);
    response = await app.request("/readyz?strict=1");
    assert.equal(response.status, 200);
    body = (await response.json()) as Readiness & { controlPlane: { lastPollOkAgoSeconds: number } };
    assert.equal(body.ready, true);
    assert.deepEqual(body.reasons, []);
    assert.equal((body.controlPlane as { lastPollOkAgoSeconds?: number }).lastPollOkAgoSeconds, 5);
    assert.equal(body.backends[0]?.state, "up");

    advance(80_000);
    response = await app.request("/readyz?strict=1");
    assert.equal(response.status, 503);
    body = (await response.json()) as Readiness;
    assert.match(body.reasons[0] ?? "", /^no poll answered for 85s; last error: connect ECONNREFUSED/);
  });

  test("failed and starting backends make it 503 with their reasons; a supervised restart does not", async () => {
    let backends = [
      backend("github", "failed", { reason: "exited with code 1; check GITHUB_TOKEN" }),
      backend("wiki", "starting"),
      backend("files", "restarting"),
    ];
    const { app, now } = setup(() => ({ controlPlane: { lastPollOkAt: now() }, backends }));
    const response = await app.request("/readyz?strict=1");
    assert.equal(response.status, 503);
    const body = (await response.json()) as Readiness;
    assert.deepEqual(body.reasons, [
      "backend github is failed: exited with code 1; check GITHUB_TOKEN",
      "backend wiki is starting",
    ]);

    backends = [backend("files", "restarting"), backend("wiki", "up")];
    assert.equal((await app.request("/readyz?strict=1")).status, 200);
  });

  test("a rejected key is reported as an operator problem", async () => {
    const { app, now } = setup(() => ({ controlPlane: { lastPollOkAt: now(), unauthorized: true }, backends: [] }));
    const response = await app.request("/readyz?strict=1");
    assert.equal(response.status, 503);
    assert.match(((await response.json()) as Readiness).reasons[0] ?? "", /rejected the API key/);
  });

  test("a throwing readiness check is a 503, not a crash", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const app = createOpsApp({
      registry: metrics.registry,
      readiness: () => {
        throw new Error("poller not started");
      },
    });
    const response = await app.request("/readyz?strict=1");
    assert.equal(response.status, 503);
    assert.deepEqual(((await response.json()) as Readiness).reasons, [
      "the readiness check failed: poller not started",
    ]);
  });

  test("bodies hide stderr tails and scrub secrets quoted by backends", async () => {
    const { app, now } = setup(() => ({
      controlPlane: { lastPollOkAt: now() },
      backends: [
        backend("github", "failed", {
          lastError: `401 for token ${SECRET}`,
          stderrTail: ["boot", `using ${SECRET}`],
          members: [backend("inner", "up", { stderrTail: ["x"] })],
        }),
      ],
    }));
    const text = await (await app.request("/readyz?strict=1")).text();
    assert.ok(!text.includes(SECRET), text);
    assert.match(text, /401 for token \[REDACTED\]/);
    assert.ok(!text.includes("stderrTail"));
    assert.match(text, /"inner"/);
  });
});

describe("/metrics", () => {
  test("exposes polls, commands, queue, posts and backend health after events", async () => {
    let restarts = 2;
    const backends = [
      backend("github", "restarting", { restarts: 0 }),
      {
        ...backend("main", "up", { transport: "aggregate", inflight: 3 }),
        members: [
          backend("wiki", "failed", {
            transport: "http",
            lastError: SECRET,
            reason: `url https://user:${SECRET}@wiki`,
          }),
        ],
      },
    ];
    const { app, metrics } = setup(() => ({
      controlPlane: {},
      backends: backends.map((b) => (b.name === "github" ? { ...b, restarts } : b)),
    }));
    const { events } = metrics;
    events.pollFinished("empty", 30_000, 0);
    events.pollFinished("empty", 30_010, 0);
    events.pollFinished("commands", 12, 3);
    events.pollFinished("error", 5, 0);
    events.commandFinished({
      requestId: "r1",
      channel: "main",
      backend: "github",
      method: "tools/call",
      target: SECRET,
      outcome: "ok",
      respCode: 200,
      durationMs: 40,
    });
    events.commandFinished({ requestId: "r2", channel: "main", backend: "github", outcome: "ok", durationMs: 60 });
    events.commandFinished({
      requestId: "r3",
      channel: `Evil ${SECRET}`,
      outcome: "unroutable",
      respCode: 400,
      durationMs: 1,
    });
    // A standalone stream counts as a command, but its hour-long life is no call latency.
    events.commandFinished({
      requestId: "r4",
      channel: "main",
      backend: "github",
      method: "airlock_stream_open",
      outcome: "ok",
      durationMs: 3_600_000,
    });
    events.queueChanged(4, 2);
    events.responsePosted("jsonrpc_response", "ok", 3);
    events.responsePosted("jsonrpc_notify", "failed", 1);

    const response = await app.request("/metrics");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const expect = [
      'airlock_polls_total{outcome="empty"} 2',
      'airlock_polls_total{outcome="commands"} 1',
      'airlock_polls_total{outcome="error"} 1',
      "airlock_polled_commands_total 3",
      'airlock_poll_duration_seconds_count{outcome="empty"} 2',
      'airlock_commands_total{channel="main",backend="github",outcome="ok"} 3',
      'airlock_commands_total{channel="invalid",backend="",outcome="unroutable"} 1',
      'airlock_command_duration_seconds_bucket{le="0.05",channel="main",outcome="ok"} 1',
      'airlock_command_duration_seconds_sum{channel="main",outcome="ok"} 0.1',
      "airlock_queue_pending 4",
      "airlock_queue_running 2",
      'airlock_responses_posted_total{type="jsonrpc_response",outcome="ok"} 1',
      'airlock_responses_posted_total{type="jsonrpc_notify",outcome="failed"} 1',
      'airlock_response_post_retries_total{type="jsonrpc_response"} 2',
      'airlock_backend_up{backend="github",transport="stdio"} 0',
      'airlock_backend_up{backend="main",transport="aggregate"} 1',
      'airlock_backend_up{backend="main/wiki",transport="http"} 0',
      'airlock_backend_state{backend="github",state="restarting"} 1',
      'airlock_backend_state{backend="github",state="up"} 0',
      'airlock_backend_state{backend="main/wiki",state="failed"} 1',
      'airlock_backend_restarts_total{backend="github"} 2',
      'airlock_backend_inflight{backend="main"} 3',
      `airlock_build_info{version="${VERSION}"`,
    ];
    for (const line of expect) assert.ok(text.includes(line), `missing ${line}\n${text}`);
    assert.ok(!text.includes(SECRET), "a secret reached /metrics");
    assert.ok(!text.includes("tools/call"), "methods are not labels");

    restarts = 5;
    assert.match(await (await app.request("/metrics")).text(), /airlock_backend_restarts_total\{backend="github"\} 5/);
  });

  test("every agent gets its own registry", async () => {
    const first = createMetrics({ processMetrics: false });
    const second = createMetrics({ processMetrics: false });
    first.events.pollFinished("empty", 1, 0);
    assert.match(await first.registry.metrics(), /airlock_polls_total\{outcome="empty"\} 1/);
    assert.doesNotMatch(await second.registry.metrics(), /airlock_polls_total\{/);
  });

  test("process metrics are included by default", async () => {
    const { registry } = createMetrics();
    assert.match(await registry.metrics(), /process_cpu_user_seconds_total/);
  });

  test("nothing from a loaded configuration's secrets, URLs or commands reaches /metrics or /readyz", async () => {
    const env = {
      CONTROL_PLANE_API_KEY: "sk-config-secret-0001",
      GITHUB_TOKEN: "ghp_config_secret_0002",
      WIKI_TOKEN: "Bearer config-secret-0003",
    };
    const { config, secrets } = await loadConfig({
      argv: ["--config", fileURLToPath(new URL("../fixtures/profiles/airlock-routes.yaml", import.meta.url))],
      env,
      cwd: "/",
    });
    const health: BackendHealth[] = config.routes.map((route) => ({
      name: route.channel,
      transport: "aggregate",
      state: "up",
      restarts: 1,
      inflight: 0,
      members: route.backends.map((b) => ({
        name: b.name,
        transport: b.transport,
        state: "failed",
        restarts: 3,
        inflight: 1,
        lastError: `${b.transport === "http" ? b.url : b.command.join(" ")} failed with ${secrets.join(",")}`,
      })),
    }));
    const metrics = createMetrics({ processMetrics: false, backends: () => health });
    for (const route of config.routes) {
      for (const b of route.backends)
        metrics.events.commandFinished({
          requestId: "r",
          channel: route.channel,
          backend: b.name,
          target: secrets[0],
          outcome: "failure",
          durationMs: 3,
        });
    }
    const app = createOpsApp({
      registry: metrics.registry,
      secrets: () => secrets,
      readiness: () =>
        assessReadiness({ controlPlane: { lastError: secrets.join(" ") }, backends: health, now: 0, maxPollAgeMs: 1 }),
    });
    const scraped = await (await app.request("/metrics")).text();
    const ready =
      (await (await app.request("/readyz")).text()) + (await (await app.request("/readyz?strict=1")).text());
    assert.match(scraped, /airlock_backend_restarts_total\{backend="main\/github"\} 3/);
    assert.deepEqual(new Set(secrets), new Set(Object.values(env)));
    for (const secret of secrets) {
      assert.ok(!scraped.includes(secret), `${secret} in /metrics`);
      assert.ok(!ready.includes(secret), `${secret} in /readyz`);
    }
    for (const route of config.routes)
      for (const b of route.backends) {
        assert.ok(
          !scraped.includes(b.transport === "http" ? b.url : b.command.join(" ")),
          "a URL or command in /metrics",
        );
      }
  });
});
