import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOpsApp } from "../../agent/ops/app.ts";
import type { Readiness } from "../../agent/ops/app.ts";
import { createMetrics } from "../../agent/ops/metrics.ts";
import { serve } from "../../agent/runtime/serve.ts";
import type { ServedApp } from "../../agent/runtime/serve.ts";
import { main as healthMain, type HealthReport } from "../../agent/cli/health.ts";

function capture(cwd: string) {
  const io = {
    out: "",
    err: "",
    env: {},
    cwd,
    stdout(t: string) {
      io.out += t;
    },
    stderr(t: string) {
      io.err += t;
    },
  };
  return io;
}

describe("airlock health (tunnel-client's command)", () => {
  let dir: string;
  let served: ServedApp;
  let urlFile: string;
  let lastPoll: number | undefined;
  const up: Readiness = {
    ready: true,
    reasons: [],
    controlPlane: {},
    backends: [{ name: "main", transport: "stdio", state: "up", restarts: 0, inflight: 0 }],
  };
  let lenient: Readiness = up;
  let strict: Readiness = up;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "airlock-health-"));
    urlFile = join(dir, "health.url");
    const metrics = createMetrics({
      processMetrics: false,
      tunnelClient: { tunnelId: "tunnel_x", queueCapacity: 20, workerCapacity: 10, lastPollOkAt: () => lastPoll },
    });
    const app = createOpsApp({
      readiness: (options) => (options?.strict ? strict : lenient),
      registry: metrics.registry,
    });
    served = await serve(app.fetch, { hostname: "127.0.0.1", port: 0, urlFile });
  });
  after(async () => {
    await served.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("ok: exit 0 through --url-file, --port and --url, in tunnel-client's layout", async () => {
    for (const argv of [
      ["--url-file", "health.url"],
      ["--port", String(served.port)],
      ["--url", `${served.url}/readyz`],
    ]) {
      const io = capture(dir);
      assert.equal(await healthMain(argv, io), 0, `${argv.join(" ")}: ${io.out}${io.err}`);
      assert.match(
        io.out,
        new RegExp(`^Locator: (url_file=${dir}/health.url|port=${served.port}|url=${served.url}/readyz)\\n`),
      );
      assert.ok(
        io.out.endsWith(
          `Base URL: ${served.url}\nUI URL: ${served.url}/ui\nHealthz: PASS | ${served.url}/healthz | HTTP 200 | live\nReadyz: PASS | ${served.url}/readyz | HTTP 200 | ready\nResult: OK\n`,
        ),
        io.out,
      );
    }
  });

  test("not ready: exit 2; --json has tunnel-client's shape; --strict asks Airlock's readiness", async () => {
    lenient = {
      ...up,
      ready: false,
      reasons: ["backend main is starting"],
      backends: [{ ...up.backends[0]!, state: "starting" }],
    };
    try {
      const json = capture(dir);
      assert.equal(await healthMain(["--url-file", urlFile, "--json"], json), 2);
      const report = JSON.parse(json.out) as HealthReport;
      assert.deepEqual(report, {
        locator: { kind: "url_file", url_file: urlFile, resolved_base_url: served.url },
        base_url: served.url,
        ui_url: `${served.url}/ui`,
        healthz: { url: `${served.url}/healthz`, ok: true, status: 200, body: "live" },
        readyz: { url: `${served.url}/readyz`, ok: false, status: 503, body: "mcp startup probe pending" },
        result: "fail",
      });
      // Liveness is a different question: the process is fine, so a liveness probe must not restart it.
      const live = capture(dir);
      assert.equal(await healthMain(["--port", String(served.port), "--live"], live), 0, live.out);
    } finally {
      lenient = up;
    }
    strict = { ...up, ready: false, reasons: ["the control plane has not answered a poll yet"] };
    try {
      assert.equal(
        await healthMain(["--port", String(served.port)], capture(dir)),
        0,
        "the control plane is not part of tunnel-client's readiness",
      );
      const io = capture(dir);
      assert.equal(await healthMain(["--port", String(served.port), "--strict"], io), 2);
      assert.match(io.out, /Readyz: FAIL \| http:\/\/127\.0\.0\.1:\d+\/readyz\?strict=1 \| HTTP 503 \| \{/);
      assert.match(io.out, /the control plane has not answered a poll yet/);
    } finally {
      strict = up;
    }
  });

  test("--require-control-plane-poll reads commands_poll_last_successful_timestamp_seconds", async () => {
    lastPoll = undefined;
    let io = capture(dir);
    assert.equal(await healthMain(["--port", String(served.port), "--require-control-plane-poll"], io), 2);
    assert.match(io.out, /Control-plane poll: FAIL \| .*\/metrics \| no successful control-plane poll observed/);
    lastPoll = Date.parse("2026-01-01T00:00:00Z");
    io = capture(dir);
    assert.equal(
      await healthMain(["--port", String(served.port), "--require-control-plane-poll", "--json"], io),
      0,
      io.out,
    );
    assert.deepEqual((JSON.parse(io.out) as HealthReport).control_plane_poll, {
      url: `${served.url}/metrics`,
      value: 1767225600,
      ok: true,
    });
  });

  test("--pid and --pid-file cross-check the process", async () => {
    let io = capture(dir);
    assert.equal(await healthMain(["--port", String(served.port), "--pid", String(process.pid)], io), 0, io.out);
    assert.match(io.out, new RegExp(`Process: PASS \\| pid=${process.pid}\\n`));
    const pidFile = join(dir, "agent.pid");
    await writeFile(pidFile, "999999999\n");
    io = capture(dir);
    assert.equal(await healthMain(["--port", String(served.port), "--pid-file", pidFile, "--json"], io), 2);
    assert.deepEqual((JSON.parse(io.out) as HealthReport).process, {
      pid: 999999999,
      pid_file: pidFile,
      running: false,
    });
    await writeFile(pidFile, "nope\n");
    io = capture(dir);
    assert.equal(await healthMain(["--port", String(served.port), "--pid-file", pidFile], io), 2);
    assert.match(io.out, /Process: FAIL \| pid_file=.*agent\.pid \| parse .* as pid: "nope"/);
  });

  test("no agent there: exit 2 saying so", async () => {
    const stopped = await serve(() => new Response("x"), { hostname: "127.0.0.1", port: 0 });
    await stopped.close();
    const io = capture(dir);
    assert.equal(await healthMain(["--port", String(stopped.port), "--timeout", "2s"], io), 2);
    assert.match(
      io.out,
      /Healthz: FAIL \| http:\/\/127\.0\.0\.1:\d+\/healthz \| cannot reach the agent: .*is `airlock run` running/,
    );
    const missing = capture(dir);
    assert.equal(await healthMain(["--url-file", "nope.url"], missing), 2);
    assert.match(missing.out, /Locator error: .*nope\.url does not exist: the agent is not running/);
  });

  test("usage errors: exit 1, as tunnel-client (2 means a failed check)", async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /choose exactly one of --url-file FILE, --port N or --url URL/],
      [["--port", "1", "--url", "http://x.test"], /choose exactly one/],
      [["--port", "http"], /--port http is not a port/],
      [["--url", "not a url"], /"not a url" is not a URL/],
      [["--port", "8080", "--timeout", "soon"], /--timeout takes a duration/],
      [["--prot", "8080"], /unknown flag --prot; did you mean --port\?/],
      [["--port", "8080", "--pid", "1", "--pid-file", "x"], /at most one of --pid or --pid-file/],
    ];
    for (const [argv, expected] of cases) {
      const io = capture(dir);
      assert.equal(await healthMain(argv, io), 1, argv.join(" "));
      assert.match(io.err, expected);
    }
  });
});
