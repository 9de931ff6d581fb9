/**
 * Attacks through a real `airlock run` and the stdio server it starts (server-everything):
 *
 * - read the agent's secrets from inside the child: `get-env` prints the child's whole
 *   environment, and the agent's own is stuffed with credentials in every shape an operator
 *   uses (the key with a trailing newline, headers, proxy userinfo, Harpoon target URLs, an
 *   unrelated variable). The child must see the allowlist and its declared `env:`, nothing else;
 * - make the child fetch the admin UI (`gzip-file-as-resource` fetches any URL): it is a
 *   loopback peer, so only the UI's own credential can stop it.
 */
import { after, before, describe, test } from "node:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { everythingStdioCommand } from "../support/everything.ts";
import { startAgentProcess, type AgentProcess } from "../support/agent-process.ts";

const KEY = "sk-child-env-key-0123456789";
/** Values that must never reach the child, each planted in a different place. */
const PLANTED = {
  E2E_KEY: `${KEY}\n`,
  CONTROL_PLANE_EXTRA_HEADERS: "X-Cp-Auth: cp-header-secret-111",
  MCP_EXTRA_HEADERS: "X-Mcp-Auth: mcp-header-secret-222",
  MCP_HTTP_PROXY: "http://proxyuser:proxy-secret-333@127.0.0.1:9",
  HARPOON_TARGETS: "label=intranet,url=https://hu:harpoon-secret-444@intranet.invalid/api",
  UNRELATED_DEPLOY_TOKEN: "unrelated-secret-555",
};
const NEEDLES = [
  KEY,
  "cp-header-secret-111",
  "mcp-header-secret-222",
  "proxy-secret-333",
  "harpoon-secret-444",
  "unrelated-secret-555",
];
/** The allowlist (agent/backends/child-env.ts) as a test states it, independently of the code. */
const ALLOWED = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "TERM",
  "TZ",
  "LANG",
  "LANGUAGE",
  "TMPDIR",
  "TMP",
  "TEMP",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
]);

describe("attacks from a stdio server on its own agent", { concurrency: false }, () => {
  let cp: FakeControlPlane;
  let agent: AgentProcess;

  before(async () => {
    cp = await startFakeControlPlane({ apiKey: KEY });
    const dir = mkdtempSync(join(tmpdir(), "airlock-child-env-"));
    const config = join(dir, "airlock.yaml");
    writeFileSync(
      config,
      [
        "mcp:",
        "  commands:",
        "    - channel: main",
        `      command: ${JSON.stringify(everythingStdioCommand().join(" "))}`,
        "      env:",
        "        DECLARED_TOKEN: env:SOURCE_FOR_CHILD",
        '        PLAIN_SETTING: "on"',
        "",
      ].join("\n"),
    );
    agent = await startAgentProcess(
      "node",
      [
        "--config",
        config,
        "--control-plane.base-url",
        cp.baseUrl,
        "--control-plane.tunnel-id",
        cp.tunnelId,
        "--control-plane.api-key",
        "env:E2E_KEY",
        "--control-plane.poll-channel",
        "main",
        "--control-plane.poll-timeout",
        "2s",
      ],
      { ...PLANTED, SOURCE_FOR_CHILD: "declared-value-666", LC_ALL: "C.UTF-8" },
    );
  });
  after(async () => {
    await agent?.stop("SIGKILL");
    await cp?.close();
  });

  test("the child sees only the allowlist and its declared env: (get-env)", async () => {
    const [call] = cp.enqueue({
      channel: "main",
      jsonrpc: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "get-env", arguments: {} } },
    });
    const answer = await cp.waitForFinal(call!.request_id, 20_000);
    const message = answer.payload.resp_json as { result?: { content: Array<{ text: string }> } };
    assert.ok(message.result, JSON.stringify(answer.payload));
    const childEnv = JSON.parse(message.result.content[0]!.text) as Record<string, string>;
    for (const needle of NEEDLES)
      assert.ok(!JSON.stringify(childEnv).includes(needle), `the child's environment holds ${needle}`);
    const unexpected = Object.keys(childEnv).filter(
      (name) =>
        !ALLOWED.has(name) && !/^LC_[A-Z]+$/.test(name) && name !== "DECLARED_TOKEN" && name !== "PLAIN_SETTING",
    );
    assert.deepEqual(unexpected, [], "variables outside the allowlist and the declared env: reached the child");
    assert.equal(childEnv.DECLARED_TOKEN, "declared-value-666", "a declared env: reference reaches the child");
    assert.equal(childEnv.PLAIN_SETTING, "on");
    assert.equal(childEnv.LC_ALL, "C.UTF-8", "locale variables pass");
    assert.ok(childEnv.PATH, "PATH passes, so the child can find programs");
  });

  /** Call a tool on channel main and return its result (or fail with the answer). */
  async function callTool(id: number, name: string, args: Record<string, unknown>) {
    const [call] = cp.enqueue({
      channel: "main",
      jsonrpc: { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } },
    });
    const answer = await cp.waitForFinal(call!.request_id, 20_000);
    const message = answer.payload.resp_json as {
      result?: { content: Array<{ type: string; resource?: { blob: string } }> };
    };
    assert.ok(message.result, JSON.stringify(answer.payload));
    return message.result;
  }

  test("the child cannot fetch the admin UI or its support bundle (gzip-file-as-resource)", async () => {
    for (const [index, path] of ["/ui/support-bundle", "/ui/api/status", "/ui"].entries()) {
      const result = await callTool(10 + index, "gzip-file-as-resource", {
        name: "x.gz",
        data: `${agent.opsUrl}${path}`,
        outputType: "resource",
      });
      const fetched = gunzipSync(
        Buffer.from(result.content.find((item) => item.type === "resource")!.resource!.blob, "base64"),
      ).toString("utf8");
      assert.match(
        fetched,
        /^401 Unauthorized: the Airlock admin UI needs its credential/,
        `${path} answered the child: ${fetched.slice(0, 200)}`,
      );
      assert.ok(!fetched.includes(cp.tunnelId), `${path} leaked the tunnel id`);
    }
    // The probes stay open, as tunnel-client's.
    assert.equal((await fetch(`${agent.opsUrl}/healthz`)).status, 200);
    assert.ok([200, 503].includes((await fetch(`${agent.opsUrl}/readyz`)).status));
  });

  test("the operator gets in: the token on stderr works as a bearer, the logged one-time link sets a cookie once", async () => {
    const token = agent.uiHeaders().Authorization!.replace("Bearer ", "");
    const logged = agent
      .logs()
      .map((record) => String(record.msg))
      .find((msg) => msg.startsWith("admin UI at "));
    assert.ok(logged && !logged.includes(token), "the log names the UI and never the token");
    const link = /sign in once with (\S+)/.exec(logged)?.[1];
    assert.ok(link, logged);
    const bundle = await fetch(`${agent.opsUrl}/ui/support-bundle`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(bundle.status, 200);
    assert.ok(
      !(await bundle.text()).includes(link.split("code=")[1]!),
      "the support bundle does not carry the sign-in code",
    );
    const signIn = await fetch(link, { redirect: "manual" });
    assert.equal(signIn.status, 303);
    const cookie = signIn.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^airlock_ui=[^;]+; .*HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const page = await fetch(`${agent.opsUrl}/ui`, { headers: { Cookie: cookie.split(";")[0]! } });
    assert.equal(page.status, 200);
    assert.equal((await fetch(link, { redirect: "manual" })).status, 401, "the link works once");
  });
});
