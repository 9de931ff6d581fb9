/**
 * `airlock hub` in relay mode: `--upstream URL --upstream-key env:NAME --policy FILE
 * --auditor-token env:NAME` are validated as usage errors, and the hub they start relays
 * to the upstream with the policy and the audit export in place.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HUB_FLAGS, hubBanner, readHubCommand, startHub } from "../../agent/cli/hub.ts";
import { parseFlags, UsageError, type CliIo } from "../../agent/cli/options.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { hubBindings } from "../../agent/hub-local/run.ts";
import { AUDITOR_TOKEN, CapturingAgent, RELAY_AGENT_KEY, RELAY_POLICY, UPSTREAM_KEY } from "./support.ts";

let dir: string;
let cp: FakeControlPlane;
let policyFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-hub-relay-"));
  policyFile = join(dir, "policy.yaml");
  writeFileSync(policyFile, RELAY_POLICY);
  cp = await startFakeControlPlane({ apiKey: UPSTREAM_KEY, maxHoldMs: 1000 });
});
after(async () => {
  await cp.close();
  rmSync(dir, { recursive: true, force: true });
});

const io = (): CliIo => ({
  stdout: () => {},
  stderr: () => {},
  cwd: dir,
  env: { AGENT: RELAY_AGENT_KEY, UPSTREAM: UPSTREAM_KEY, AUDITOR: AUDITOR_TOKEN },
});

function read(extra: string[]) {
  const argv = [
    "--tunnel-id",
    cp.tunnelId,
    "--agent-key",
    "env:AGENT",
    "--listen",
    "127.0.0.1:0",
    "--state-dir",
    join(dir, "state"),
    ...extra,
  ];
  return readHubCommand(parseFlags("hub", argv, HUB_FLAGS), io());
}

describe("airlock hub relay flags", () => {
  test("usage errors say what to write", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--upstream", cp.baseUrl], /--upstream needs --upstream-key env:NAME/],
      [["--upstream-key", "env:UPSTREAM"], /--upstream-key is for relay mode: give --upstream URL too/],
      [["--upstream", "ftp://x", "--upstream-key", "env:UPSTREAM"], /--upstream "ftp:\/\/x" is not an http\(s\) URL/],
      [["--upstream", cp.baseUrl, "--upstream-key", UPSTREAM_KEY], /--upstream-key takes a reference/],
      [["--client-token", "env:AGENT", "--policy", "missing.yaml"], /--policy: cannot read .*missing\.yaml \(ENOENT\)/],
      [["--client-token", "env:AGENT", "--auditor-token", AUDITOR_TOKEN], /--auditor-token takes a reference/],
      [
        ["--client-token", "env:AGENT", "--otlp-endpoint", "grpc://collector:4317"],
        /--otlp-endpoint: "grpc:\/\/collector:4317" must be an http:\/\/ or https:\/\/ URL/,
      ],
      [["--client-token", "env:AGENT", "--otlp-headers", "env:AUDITOR"], /--otlp-headers needs --otlp-endpoint/],
    ];
    for (const [argv, expected] of cases) {
      await assert.rejects(
        read(argv),
        (error: unknown) => error instanceof UsageError && expected.test(error.message),
        argv.join(" "),
      );
    }
    writeFileSync(join(dir, "bad.yaml"), "policy_version: 1\ndefault: deny\nrules:\n  - allow: { tool: [echo] }\n");
    await assert.rejects(
      read(["--client-token", "env:AGENT", "--policy", "bad.yaml"]),
      /--policy: the policy is invalid:\n {2}.*bad\.yaml: rules\[0\]\.allow: unknown key "tool"; did you mean "tools"\?/,
    );
  });

  test("--otlp-endpoint and --otlp-headers reach the Worker as AIRLOCK_OTLP_ENDPOINT and AIRLOCK_OTLP_HEADERS; the banner names the endpoint, never the headers", async () => {
    const command = await read([
      "--client-token",
      "env:AGENT",
      "--otlp-endpoint",
      "http://127.0.0.1:4318",
      "--otlp-headers",
      "env:AUDITOR",
    ]);
    assert.deepEqual(command.otlp, { endpoint: "http://127.0.0.1:4318", headers: AUDITOR_TOKEN });
    const banner = hubBanner(new URL("http://127.0.0.1:8787/"), command);
    assert.match(banner, /traces {4}http:\/\/127\.0\.0\.1:4318/);
    assert.ok(!banner.includes(AUDITOR_TOKEN));
    const vars = await hubBindings(
      [{ id: cp.tunnelId, agentKeys: ["k"], clientTokens: ["t"] }],
      {},
      { otlpEndpoint: command.otlp!.endpoint, otlpHeaders: command.otlp!.headers! },
    );
    assert.equal(vars.AIRLOCK_OTLP_ENDPOINT, "http://127.0.0.1:4318");
    assert.equal(vars.AIRLOCK_OTLP_HEADERS, AUDITOR_TOKEN);
  });

  test("relay mode needs no client token; the banner names the upstream, the policy and the audit URL", async () => {
    const command = await read([
      "--upstream",
      cp.baseUrl,
      "--upstream-key",
      "env:UPSTREAM",
      "--policy",
      "policy.yaml",
      "--auditor-token",
      "env:AUDITOR",
    ]);
    assert.deepEqual(command.upstream, { url: cp.baseUrl, key: UPSTREAM_KEY });
    const banner = hubBanner(new URL("http://127.0.0.1:8787/"), command);
    assert.match(banner, new RegExp(`relay {5}to ${cp.baseUrl.replace(/[.]/g, "\\.")}`));
    assert.match(banner, /policy {4}.*policy\.yaml/);
    assert.match(banner, new RegExp(`audit {5}http://127\\.0\\.0\\.1:8787/v1/audit/${cp.tunnelId}`));
    assert.ok(!banner.includes(UPSTREAM_KEY) && !banner.includes(AUDITOR_TOKEN));
  });

  test("the hub it starts relays to the upstream under the policy and exports the audit log", async () => {
    const command = await read([
      "--upstream",
      cp.baseUrl,
      "--upstream-key",
      "env:UPSTREAM",
      "--policy",
      "policy.yaml",
      "--auditor-token",
      "env:AUDITOR",
    ]);
    const hub = await startHub(command);
    try {
      const agent = new CapturingAgent(hub.url, cp.tunnelId);
      const [denied] = cp.enqueue({
        jsonrpc: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "get-env" } },
      });
      assert.equal((await agent.poll()).status, 204);
      const answer = await cp.waitForFinal(denied!.request_id);
      assert.match(JSON.stringify(answer.payload.resp_json), /Refused by policy \(default\)/);
      const exported = await fetch(new URL(`v1/audit/${cp.tunnelId}`, hub.url), {
        headers: { Authorization: `Bearer ${AUDITOR_TOKEN}` },
      });
      assert.equal(exported.status, 200);
      assert.equal((await exported.text()).trim().split("\n").length, 2);
    } finally {
      await hub.close();
    }
  });
});

describe("airlock hub limit flags", () => {
  test("bad values are usage errors naming the flag", async () => {
    await assert.rejects(
      read(["--client-token", "env:AGENT", "--response-timeout", "soon"]),
      /--response-timeout "soon" is not a duration such as 90s or 10m/,
    );
    await assert.rejects(
      read(["--client-token", "env:AGENT", "--max-response-bytes", "16MB"]),
      /--max-response-bytes "16MB" is not a positive number of bytes/,
    );
  });

  test("--response-timeout and --max-response-bytes reach the Worker: the deadline agents get, the limit it advertises, the 504", async () => {
    const hub = await startHub(
      await read(["--client-token", "env:AGENT", "--response-timeout", "1500ms", "--max-response-bytes", "65536"]),
    );
    try {
      const agent = new CapturingAgent(hub.url, cp.tunnelId);
      const hello = await agent.poll("limit=1&timeout_ms=1");
      assert.equal(hello.headers.get("x-airlock-max-response-bytes"), "65536");
      const call = fetch(new URL(`v1/mcp/${cp.tunnelId}`, hub.url), {
        method: "POST",
        headers: {
          Authorization: `Bearer ${RELAY_AGENT_KEY}`,
          "Content-Type": "application/json",
          Accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      const polled = await agent.poll("limit=1&timeout_ms=5000");
      const [command] = (JSON.parse(polled.text) as { commands: Array<{ response_timeout: string }> }).commands;
      const left = Number(/^(\d+)ms$/.exec(command!.response_timeout)?.[1]);
      assert.ok(
        left > 0 && left <= 1500,
        `response_timeout ${command!.response_timeout} is within the 1500 ms deadline`,
      );
      const answer = await call;
      assert.equal(answer.status, 504);
      assert.match(await answer.text(), /tunnel_response_timeout/);
    } finally {
      await hub.close();
    }
  });
});
