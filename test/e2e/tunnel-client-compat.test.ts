/**
 * A migrating operator's view: the agent started with tunnel-client's four sample profiles and
 * with README invocations, as a real process against the fake control plane, must present
 * tunnel-client's operator contracts — every metric name, type and label set on `/metrics`
 * (the list below is tunnel-client's, kept here on purpose), `/healthz` `live`, `/readyz`
 * `ready` without the control plane, the log record shape and the startup lines scripts wait
 * for, and `health --require-control-plane-poll`.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { everythingStdioCommand, startEverythingHttp, type RunningServer } from "../support/everything.ts";
import { airlockCommand, startAgentProcess, type AgentProcess, type RuntimeName } from "../support/agent-process.ts";
import { startForwardProxy, type ForwardProxy } from "../support/forward-proxy.ts";
import { findSample, readSample, renderSample } from "../../agent/samples/catalog.ts";
import { main as healthMain, type HealthReport } from "../../agent/cli/health.ts";

const KEY = "sk-compat-e2e-0123456789";

const HTTP_CLIENT_LABELS = [
  "http_request_method",
  "server_address",
  "server_port",
  "url_scheme",
  "network_protocol_name",
  "network_protocol_version",
  "http_response_status_code",
  "http_route",
];

/** An outbound request to the fake control plane (loopback, its own port), as otelhttp labels it. */
const controlPlaneCall = (method: string, route: RegExp) => ({
  http_request_method: method,
  server_address: "127.0.0.1",
  server_port: /^\d+$/,
  url_scheme: "http",
  network_protocol_name: "http",
  network_protocol_version: "1.1",
  http_response_status_code: "200",
  http_route: route,
});

/** tunnel-client's metrics as its OTel Prometheus exporter names them: type, and every label a series may carry. */
const TUNNEL_CLIENT_METRICS: Record<string, { type: "counter" | "gauge" | "histogram"; labels: string[] }> = {
  commands_polled_total: { type: "counter", labels: [] },
  commands_enqueued_total: { type: "counter", labels: [] },
  commands_poll_cycles_total: { type: "counter", labels: [] },
  commands_poll_latency_seconds: { type: "histogram", labels: ["error"] },
  commands_poll_errors_total: { type: "counter", labels: ["error_kind"] },
  commands_queue_drops_total: { type: "counter", labels: ["drop_reason"] },
  commands_age_seconds: { type: "histogram", labels: [] },
  commands_poll_last_successful_timestamp_seconds: { type: "gauge", labels: [] },
  commands_queue_capacity: { type: "gauge", labels: [] },
  commands_queue_length: { type: "gauge", labels: [] },
  dispatcher_worker_pool_capacity: { type: "gauge", labels: [] },
  dispatcher_worker_pool_occupancy: { type: "gauge", labels: [] },
  command_end_to_end_latency_milliseconds: {
    type: "histogram",
    labels: ["latency_type", "tunnel_id", "tunnel_service_status", "request_kind", "request_method", "channel"],
  },
  command_unsupported_channel_total: { type: "counter", labels: ["tunnel_id", "channel", "command_type"] },
  liveness: { type: "gauge", labels: [] },
  readiness: { type: "gauge", labels: [] },
  harpoon_call_total: { type: "counter", labels: ["label", "status_class", "outcome"] },
  harpoon_call_latency_milliseconds: { type: "histogram", labels: ["label", "status_class", "outcome"] },
  harpoon_response_size_bytes: { type: "histogram", labels: ["label", "status_class", "outcome"] },
  proxy_health_state: { type: "gauge", labels: ["proxy_id"] },
  proxy_last_check_timestamp: { type: "gauge", labels: ["proxy_id"] },
  proxy_last_success_timestamp: { type: "gauge", labels: ["proxy_id"] },
  proxy_check_phase_duration_seconds: { type: "histogram", labels: ["proxy_id", "phase"] },
  proxy_check_failures_total: { type: "counter", labels: ["proxy_id", "phase", "reason"] },
  // otelhttp v0.63 on the control-plane and MCP clients, `http_route` from tunnel-client's labeler.
  http_client_request_duration_seconds: { type: "histogram", labels: HTTP_CLIENT_LABELS },
  http_client_request_body_size_bytes: { type: "histogram", labels: HTTP_CLIENT_LABELS },
};

/** Series that must carry a value after one initialize and one tools/list (label sets checked exactly). */
const EXPECTED_SERIES: Array<[string, Record<string, string | RegExp>]> = [
  ["commands_polled_total", {}],
  ["commands_poll_cycles_total", {}],
  ["commands_poll_latency_seconds_count", { error: "false" }],
  ["commands_poll_last_successful_timestamp_seconds", {}],
  ["commands_queue_capacity", {}],
  ["dispatcher_worker_pool_capacity", {}],
  ["liveness", {}],
  ["readiness", {}],
  [
    "command_end_to_end_latency_milliseconds_count",
    {
      latency_type: "poll_to_response",
      tunnel_id: /^tunnel_/,
      tunnel_service_status: "200",
      request_kind: "call",
      request_method: "tools/list",
      channel: "main",
    },
  ],
  [
    "command_end_to_end_latency_milliseconds_count",
    {
      latency_type: "enqueue_to_response",
      tunnel_id: /^tunnel_/,
      tunnel_service_status: "200",
      request_kind: "call",
      request_method: "initialize",
      channel: "main",
    },
  ],
  ["http_client_request_duration_seconds_count", controlPlaneCall("GET", /\/v1\/tunnels\/tunnel_\w+\/poll$/)],
  ["http_client_request_body_size_bytes_count", controlPlaneCall("POST", /\/v1\/tunnels\/tunnel_\w+\/response$/)],
];

interface Scrape {
  types: Map<string, string>;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

function parseMetrics(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Scrape["samples"] = [];
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) continue;
    const labels: Record<string, string> = {};
    for (const pair of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1]!] = pair[2]!;
    samples.push({ name: sample[1]!, labels, value: Number(sample[3]) });
  }
  return { types, samples };
}

/** Every tunnel-client name is exported with its type; every series' labels are tunnel-client's. */
function assertTunnelClientMetrics(scrape: Scrape) {
  for (const [name, spec] of Object.entries(TUNNEL_CLIENT_METRICS)) {
    assert.equal(scrape.types.get(name), spec.type, `${name} is a ${spec.type}`);
    const family = scrape.samples.filter(
      (s) =>
        s.name === name ||
        (spec.type === "histogram" &&
          /_(bucket|sum|count)$/.test(s.name) &&
          s.name.replace(/_(bucket|sum|count)$/, "") === name),
    );
    for (const series of family) {
      const extra = Object.keys(series.labels).filter((label) => !spec.labels.includes(label) && label !== "le");
      assert.deepEqual(
        extra,
        [],
        `${series.name} carries labels tunnel-client does not: ${JSON.stringify(series.labels)}`,
      );
    }
  }
  for (const [name, labels] of EXPECTED_SERIES) {
    const found = scrape.samples.find(
      (s) =>
        s.name === name &&
        Object.keys(s.labels).length === Object.keys(labels).length &&
        Object.entries(labels).every(([k, v]) =>
          typeof v === "string" ? s.labels[k] === v : v.test(s.labels[k] ?? ""),
        ),
    );
    assert.ok(
      found,
      `no ${name} series with ${JSON.stringify(labels, (_k, v) => (v instanceof RegExp ? String(v) : v))}; have ${JSON.stringify(scrape.samples.filter((s) => s.name === name).map((s) => s.labels))}`,
    );
  }
  assert.equal(scrape.samples.find((s) => s.name === "liveness")?.value, 1);
  assert.equal(scrape.samples.find((s) => s.name === "readiness")?.value, 1);
  assert.ok(
    scrape.samples.some((s) => s.name.startsWith("airlock_")),
    "Airlock's own metrics stay beside them",
  );
}

/** JSON records: upper-case levels, the instance and tunnel on each, components, the startup lines. */
function assertLogs(agent: AgentProcess, tunnelId: string) {
  const records = agent.logs();
  assert.ok(records.length > 3, agent.stderr());
  assert.ok(agent.stdout().includes('"level":"INFO"'), "json logs go to stdout, as tunnel-client's");
  for (const record of records) {
    assert.ok(["DEBUG", "INFO", "WARN", "ERROR"].includes(String(record.level)), `level ${String(record.level)}`);
    assert.match(String(record.client_instance_id), /^[0-9a-f]{32}$/);
    assert.equal(record.tunnel_id, tunnelId);
  }
  const components = new Set(records.map((r) => r.component).filter(Boolean));
  for (const name of ["health", "controlplane", "process"])
    assert.ok(components.has(name), `component ${name} in ${[...components].join(",")}`);
  assert.ok(
    records.some(
      (r) => String(r.msg).startsWith(`🩺 HEALTH URL: ${agent.opsUrl} (written to `) && r.url === agent.opsUrl,
    ),
    "the HEALTH URL line",
  );
  assert.ok(
    records.some(
      (r) =>
        String(r.msg).startsWith("🟢 tunnel-client started") &&
        r.tunnel_id === tunnelId &&
        typeof r.version === "string" &&
        // tunnel-client names the tunnel from its metadata, read at start.
        r.name === "Fake tunnel" &&
        r.description === "fake control plane",
    ),
    "the started line",
  );
  assert.ok(
    records.some(
      (r) => r.msg === "tunnel metadata fetched" && r.component === "controlplane" && r.name === "Fake tunnel",
    ),
    "the metadata line",
  );
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, agent: AgentProcess): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    assert.ok(Date.now() < deadline, `${what}:\n${agent.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const INIT = { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "compat", version: "1" } };

/** The operator checks every run must pass. */
async function assertOperatorSurface(agent: AgentProcess, cp: FakeControlPlane) {
  const healthz = await fetch(`${agent.opsUrl}/healthz`);
  assert.equal(healthz.status, 200);
  assert.match(healthz.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(await healthz.text(), "live");
  await waitFor(
    "/readyz to answer 200 ready",
    async () => {
      const response = await fetch(`${agent.opsUrl}/readyz`);
      const body = await response.text();
      return response.status === 200 ? body : undefined;
    },
    agent,
  ).then((body) => assert.match(body, /^ready/));

  const [init] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT } });
  const answer = await cp.waitForFinal(init!.request_id, 20_000);
  const session = (answer.payload.resp_headers as Record<string, string[]> | undefined)?.["Mcp-Session-Id"] ?? [];
  const headers: Record<string, string[]> = session.length ? { "Mcp-Session-Id": session } : {};
  const [initialized] = cp.enqueue({ headers, jsonrpc: { jsonrpc: "2.0", method: "notifications/initialized" } });
  await cp.waitForFinal(initialized!.request_id, 10_000);
  const [list] = cp.enqueue({ headers, jsonrpc: { jsonrpc: "2.0", id: 2, method: "tools/list" } });
  assert.equal((await cp.waitForFinal(list!.request_id, 10_000)).payload.resp_code, 200);

  // The agent counts a command once the control plane acknowledged its answer: scrape after that.
  const scraped = await waitFor(
    "tools/list to be counted",
    async () => {
      const text = await (await fetch(`${agent.opsUrl}/metrics`)).text();
      return text.includes('request_method="tools/list"') ? text : undefined;
    },
    agent,
  );
  assertTunnelClientMetrics(parseMetrics(scraped));
  assertLogs(agent, cp.tunnelId);

  const io = {
    out: "",
    err: "",
    env: {},
    cwd: "/",
    stdout(t: string) {
      io.out += t;
    },
    stderr(t: string) {
      io.err += t;
    },
  };
  assert.equal(
    await healthMain(
      ["--url", agent.opsUrl, "--require-control-plane-poll", "--pid", String(agent.child.pid), "--json"],
      io,
    ),
    0,
    io.out + io.err,
  );
  const report = JSON.parse(io.out) as HealthReport;
  assert.equal(report.result, "ok");
  assert.equal(report.healthz.body, "live");
  assert.equal(report.control_plane_poll?.ok, true);
  assert.equal(report.process?.running, true);
}

describe("tunnel-client's sample profiles and README invocations", { concurrency: false }, () => {
  let cp: FakeControlPlane;
  let http: RunningServer;
  let proxy: ForwardProxy;
  const dir = mkdtempSync(join(tmpdir(), "airlock-compat-"));
  const caFile = join(dir, "root.pem");

  before(async () => {
    [cp, http, proxy] = await Promise.all([
      startFakeControlPlane({ apiKey: KEY }),
      startEverythingHttp(),
      startForwardProxy(),
    ]);
    writeFileSync(caFile, rootCertificates[0]!);
  });
  after(async () => {
    await Promise.all([cp?.close(), http?.close(), proxy?.close()]);
  });

  const samples: Array<[string, { mcpServerUrl?: string; mcpCommand?: string }, Record<string, string>]> = [
    ["sample_mcp_with_dcr", { mcpServerUrl: "HTTP" }, {}],
    ["sample_mcp_remote_no_auth", { mcpServerUrl: "HTTP" }, {}],
    ["sample_mcp_stdio_local", { mcpCommand: "STDIO" }, {}],
    ["sample_mcp_enterprise_proxy", { mcpServerUrl: "HTTP" }, { HTTPS_PROXY: "PROXY", ENTERPRISE_CA_BUNDLE: "CA" }],
  ];
  // Every sample under Node; one under Deno and Bun too (logs, serving and metrics are runtime seams).
  const runs: Array<[RuntimeName, (typeof samples)[number]]> = [
    ...samples.map((sample) => ["node", sample] as [RuntimeName, (typeof samples)[number]]),
    ...(["deno", "bun"] as RuntimeName[]).map(
      (runtime) => [runtime, samples[1]!] as [RuntimeName, (typeof samples)[number]],
    ),
  ];
  for (const [runtime, [name, target, env]] of runs) {
    test(`${name} (${runtime}): metrics, probes, logs and health as tunnel-client`, async () => {
      const sample = findSample(name)!;
      const values = {
        tunnelId: cp.tunnelId,
        baseUrl: cp.baseUrl,
        ...(target.mcpServerUrl ? { mcpServerUrl: http.url } : { mcpCommand: everythingStdioCommand().join(" ") }),
      };
      const profile = join(dir, `${name}-${runtime}.yaml`);
      writeFileSync(profile, renderSample(sample, await readSample(name), values));
      const resolved = Object.fromEntries(
        Object.entries(env).map(([k, v]) => [k, v === "PROXY" ? proxy.url : v === "CA" ? caFile : v]),
      );
      const agent = await startAgentProcess(
        runtime,
        ["--profile-file", profile, "--control-plane.poll-timeout", "2s"],
        { CONTROL_PLANE_API_KEY: KEY, ...resolved },
      );
      try {
        await assertOperatorSurface(agent, cp);
        if (env.HTTPS_PROXY) {
          assert.ok(
            proxy.seen.some((line) => line.includes(new URL(http.url).host)),
            `MCP calls through the proxy: ${proxy.seen.join("; ")}`,
          );
          const scrape = parseMetrics(await (await fetch(`${agent.opsUrl}/metrics`)).text());
          assert.ok(
            scrape.samples.some(
              (s) => s.name === "proxy_health_state" && /^[0-9a-f]{64}$/.test(s.labels.proxy_id ?? ""),
            ),
            "the proxy check reports the proxy",
          );
        }
      } finally {
        assert.equal(await agent.stop(), 0);
      }
    });
  }

  test("README runtime invocation: environment only, --log.format=struct-text on stdout", async () => {
    const agent = await startAgentProcess("node", ["--log.level=info", "--log.format=struct-text"], {
      CONTROL_PLANE_API_KEY: KEY,
      CONTROL_PLANE_TUNNEL_ID: cp.tunnelId,
      CONTROL_PLANE_BASE_URL: cp.baseUrl,
      MCP_SERVER_URL: http.url,
      CONTROL_PLANE_POLL_TIMEOUT: "2s",
    });
    try {
      const line = await waitFor(
        "the started line",
        async () =>
          agent
            .stdout()
            .split("\n")
            .find((l) => l.includes("tunnel-client started")),
        agent,
      );
      assert.match(
        line,
        /^time=\S+ level=INFO msg="🟢 tunnel-client started \(airlock\)" client_instance_id=[0-9a-f]{32} tunnel_id=tunnel_\w+ component=process /,
      );
      assert.match(agent.stdout(), /level=INFO msg="🩺 HEALTH URL: http:\/\/127\.0\.0\.1:\d+ \(written to .*\)"/);
      assert.equal(await (await fetch(`${agent.opsUrl}/healthz`)).text(), "live");
    } finally {
      assert.equal(await agent.stop(), 0);
    }
  });

  test("the tunnel's metadata cannot be read: a warning, and the started line says so; the agent serves anyway", async () => {
    cp.scriptMetadata({ status: 403, code: "missing_scope", message: "no read permission" });
    const agent = await startAgentProcess(
      "node",
      ["--mcp.server-url", http.url, "--control-plane.poll-timeout", "2s", "--log.format", "json"],
      { CONTROL_PLANE_API_KEY: KEY, CONTROL_PLANE_TUNNEL_ID: cp.tunnelId, CONTROL_PLANE_BASE_URL: cp.baseUrl },
    );
    try {
      const started = await waitFor(
        "the started line",
        async () => agent.logs().find((r) => String(r.msg).startsWith("🟢 tunnel-client started")),
        agent,
      );
      assert.equal(started.name, "tunnel meta hasn't fetched");
      assert.equal(started.description, "tunnel meta hasn't fetched");
      // tunnel-client's numbered well-known metadata URLs of the main MCP server, path form first.
      const mcpUrl = new URL(http.url);
      const path = mcpUrl.pathname.replace(/^\/+|\/+$/g, "");
      const root = `${mcpUrl.origin}/.well-known/oauth-protected-resource`;
      assert.deepEqual(started.oauth_discovery_urls, path ? [`1:${root}/${path}`, `2:${root}`] : [`1:${root}`]);
      const warning = agent.logs().find((r) => r.msg === "tunnel metadata fetch failed");
      assert.ok(warning, agent.stdout());
      assert.equal(warning.level, "WARN");
      assert.equal(warning.status_code, 403);
      assert.equal(warning.error_code, "missing_scope");
      assert.equal(warning.error_message, "no read permission");
      const [init] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT } });
      assert.equal((await cp.waitForFinal(init!.request_id, 20_000)).payload.resp_code, 200);
    } finally {
      assert.equal(await agent.stop(), 0);
    }
  });

  test("--log.file: appended as struct-text, created 0600, nothing on stdout", async () => {
    const logFile = join(dir, "agent.log");
    const agent = await startAgentProcess(
      "node",
      [
        "--log.format",
        "struct-text",
        "--log.file",
        logFile,
        "--mcp.server-url",
        http.url,
        "--control-plane.poll-timeout",
        "2s",
      ],
      {
        CONTROL_PLANE_API_KEY: KEY,
        CONTROL_PLANE_TUNNEL_ID: cp.tunnelId,
        CONTROL_PLANE_BASE_URL: cp.baseUrl,
      },
    );
    try {
      const text = await waitFor(
        "the started line in the file",
        async () => {
          const content = readFileSync(logFile, "utf8");
          return content.includes("tunnel-client started") ? content : undefined;
        },
        agent,
      );
      assert.match(text, /^time=\S+ level=INFO msg=/m);
      assert.equal(statSync(logFile).mode & 0o777, 0o600);
      assert.equal(agent.stdout(), "");
    } finally {
      assert.equal(await agent.stop(), 0);
    }
  });

  test("a command with shell syntax runs without a shell, ';' and the rest are literal arguments (tunnel-client's e2e); --strict-config refuses it", async () => {
    const marker = join(dir, "shell-marker");
    const quote = (word: string) => `'${word}'`;
    const command = [...everythingStdioCommand().map(quote), ";", "touch", quote(marker)].join(" ");
    const args = ["--control-plane.tunnel-id", cp.tunnelId, "--control-plane.base-url", cp.baseUrl];
    const agent = await startAgentProcess(
      "node",
      [...args, "--mcp.command", command, "--control-plane.poll-timeout", "2s", "--log.format", "json"],
      { CONTROL_PLANE_API_KEY: KEY },
    );
    try {
      const [init] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT } });
      const answer = await cp.waitForFinal(init!.request_id, 20_000);
      assert.equal(answer.payload.resp_code, 200);
      assert.ok(
        agent
          .logs()
          .some((r) => r.level === "WARN" && /';' is passed to the program as a literal argument/.test(String(r.msg))),
        agent.stdout(),
      );
    } finally {
      assert.equal(await agent.stop(), 0);
    }
    assert.equal(existsSync(marker), false, "no shell ran the part after ';'");
    const [cmd, ...argv] = airlockCommand("node", ["run", ...args, "--mcp.command", command, "--strict-config"]);
    const strict = spawnSync(cmd!, argv, { env: { ...process.env, CONTROL_PLANE_API_KEY: KEY }, encoding: "utf8" });
    assert.equal(strict.status, 1, strict.stderr);
    assert.match(strict.stderr, /mcp\.commands\[0\]\.command.*shell operator ';'/);
    assert.equal(existsSync(marker), false);
  });

  test("configuration.md first run: --embedded-mcp-stub binds main to a built-in MCP server", async () => {
    const agent = await startAgentProcess(
      "node",
      [
        "--embedded-mcp-stub",
        "--control-plane.tunnel-id",
        cp.tunnelId,
        "--control-plane.base-url",
        cp.baseUrl,
        "--control-plane.poll-timeout",
        "2s",
      ],
      { CONTROL_PLANE_API_KEY: KEY },
    );
    try {
      const [init] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT } });
      const answer = await cp.waitForFinal(init!.request_id, 20_000);
      assert.equal(
        (answer.payload.resp_json as { result: { serverInfo: { name: string } } }).result.serverInfo.name,
        "mcp-stub",
      );
      const [call] = cp.enqueue({
        jsonrpc: {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: { name: "uppercase", arguments: { text: "through the tunnel" } },
        },
      });
      const result = (await cp.waitForFinal(call!.request_id, 10_000)).payload.resp_json as {
        result: { content: Array<{ text: string }> };
      };
      assert.equal(result.result.content[0]?.text, "THROUGH THE TUNNEL");
      assert.equal(await (await fetch(`${agent.opsUrl}/readyz`)).text(), "ready");
    } finally {
      assert.equal(await agent.stop(), 0);
    }
  });
});
