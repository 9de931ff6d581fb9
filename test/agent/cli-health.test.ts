import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOpsApp } from "../../agent/ops/app.ts";
import type { Readiness } from "../../agent/ops/app.ts";
import { createMetrics } from "../../agent/ops/metrics.ts";
import { serve } from "../../agent/runtime/serve.ts";
import type { ServedApp } from "../../agent/runtime/serve.ts";
import { main as healthMain } from "../../agent/cli/health.ts";

function capture(cwd: string) {
  const io = { out: "", err: "", env: {}, cwd, stdout(t: string) { io.out += t; }, stderr(t: string) { io.err += t; } };
  return io;
}

describe("airlock health", () => {
  let dir: string;
  let served: ServedApp;
  let urlFile: string;
  let readiness: Readiness = { ready: true, reasons: [], controlPlane: { lastPollOkAt: Date.now() }, backends: [] };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "airlock-health-"));
    urlFile = join(dir, "health.url");
    const app = createOpsApp({ readiness: () => readiness, registry: createMetrics({ processMetrics: false }).registry });
    served = await serve(app.fetch, { hostname: "127.0.0.1", port: 0, urlFile });
  });
  after(async () => {
    await served.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("ready: exit 0 through --url-file, --port and --url", async () => {
    for (const argv of [["--url-file", "health.url"], ["--port", String(served.port)], ["--url", `${served.url}/readyz`]]) {
      const io = capture(dir);
      assert.equal(await healthMain(argv, io), 0, `${argv.join(" ")}: ${io.out}${io.err}`);
      assert.equal(io.out, `READY  ${served.url}/readyz\nUI     ${served.url}/ui\n`);
    }
  });

  test("not ready: exit 1 with the agent's reasons; --json carries them", async () => {
    readiness = { ready: false, reasons: ["the control plane rejected the API key (401/403)"], controlPlane: { unauthorized: true }, backends: [] };
    try {
      const io = capture(dir);
      assert.equal(await healthMain(["--port", String(served.port)], io), 1);
      assert.match(io.out, /^NOT READY {2}http:\/\/127\.0\.0\.1:\d+\/readyz \(HTTP 503\)\n {2}- the control plane rejected the API key/);
      const json = capture(dir);
      assert.equal(await healthMain(["--url-file", urlFile, "--json"], json), 1);
      assert.deepEqual(JSON.parse(json.out), { url: `${served.url}/readyz`, ready: false, status: 503, reasons: ["the control plane rejected the API key (401/403)"], uiUrl: `${served.url}/ui` });
      // Liveness is a different question: the process is fine, so a liveness probe must not restart it.
      const live = capture(dir);
      assert.equal(await healthMain(["--port", String(served.port), "--live"], live), 0);
      assert.equal(live.out, `LIVE   ${served.url}/healthz\nUI     ${served.url}/ui\n`);
    } finally {
      readiness = { ready: true, reasons: [], controlPlane: { lastPollOkAt: Date.now() }, backends: [] };
    }
  });

  test("no agent there: exit 1 saying so", async () => {
    const stopped = await serve(() => new Response("x"), { hostname: "127.0.0.1", port: 0 });
    await stopped.close();
    const io = capture(dir);
    assert.equal(await healthMain(["--port", String(stopped.port), "--timeout", "2s"], io), 1);
    assert.match(io.out, /cannot reach the agent at http:\/\/127\.0\.0\.1:\d+\/readyz: .*is `airlock run` running/);
    const missing = capture(dir);
    assert.equal(await healthMain(["--url-file", "nope.url"], missing), 1);
    assert.match(missing.out, /nope\.url does not exist: the agent is not running/);
  });

  test("usage errors: exit 2", async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /choose exactly one of --url-file FILE, --port N or --url URL/],
      [["--port", "1", "--url", "http://x.test"], /choose exactly one/],
      [["--port", "http"], /--port http is not a port/],
      [["--url", "not a url"], /"not a url" is not a URL/],
      [["--port", "8080", "--timeout", "soon"], /--timeout takes a duration/],
      [["--prot", "8080"], /unknown flag --prot; did you mean --port\?/],
    ];
    for (const [argv, expected] of cases) {
      const io = capture(dir);
      assert.equal(await healthMain(argv, io), 2, argv.join(" "));
      assert.match(io.err, expected);
    }
  });
});
