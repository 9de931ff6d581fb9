/**
 * `airlock admin tunnels …` as a child process, as tunnel-client's `admin tunnels` is used:
 * against a fake of OpenAI's admin API that checks every request against what
 * tunnel-client sends, and against a real hub in workerd, where a tunnel made at runtime is
 * polled by a real agent and called by an MCP client, then deleted and refused.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { airlockCommand, REPO } from "../support/agent-process.ts";
import { fixtureServerCommand } from "../support/everything.ts";
import { FAKE_ADMIN_KEY, FAKE_RUNTIME_KEY, startFakeAdminApi, type FakeAdminApi } from "../support/fake-admin-api.ts";
import { AGENT_KEY, startTestHub, type TestHub } from "../support/hub.ts";
import { connectClient, startHubAgent } from "../support/hub-stack.ts";

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `airlock admin …` with only `env` (plus PATH/HOME) as its environment. */
function admin(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const [cmd, ...argv] = airlockCommand("node", ["admin", ...args]);
  return new Promise((resolve) => {
    const child = execFile(
      cmd!,
      argv,
      { cwd: REPO, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env }, timeout: 60_000 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

const HUB_ADMIN_TOKEN = "test-hub-admin-token-0123456789";

describe("admin tunnels against OpenAI's admin API (fake)", () => {
  let api: FakeAdminApi;
  let env: Record<string, string>;
  before(async () => {
    api = await startFakeAdminApi();
    env = { OPENAI_ADMIN_KEY: FAKE_ADMIN_KEY, CONTROL_PLANE_BASE_URL: api.baseUrl };
  });
  after(() => api.close());

  test("create, get, list, update and delete: tunnel-client's requests, text and JSON", async () => {
    const created = await admin(
      ["tunnels", "create", "--name", "Prod MCP", "--description", "Routes to prod", "--workspace-id", "ws_1,ws_2"],
      { ...env, ORG: "unused" },
    );
    assert.equal(created.code, 0, created.stderr);
    const id = [...api.tunnels.keys()][0]!;
    assert.equal(
      created.stdout,
      `Tunnel ${id}\n  Name: Prod MCP\n  Description: Routes to prod\n  Creator: user-fake-admin\n  Organizations: \n  Workspaces: ws_1, ws_2\nNote: wait 25-30 seconds before expecting a newly created tunnel to be active and ready.\n`,
    );
    const request = api.seen.at(-1)!;
    assert.deepEqual([request.method, request.path], ["POST", "/v1/tunnels"]);
    assert.deepEqual(request.body, {
      name: "Prod MCP",
      description: "Routes to prod",
      workspace_ids: ["ws_1", "ws_2"],
    });
    assert.equal(request.headers.authorization, `Bearer ${FAKE_ADMIN_KEY}`);

    const got = await admin(["--json", "tunnels", "get", id], env);
    assert.equal(got.code, 0, got.stderr);
    const json = JSON.parse(got.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), ["id", "name", "description", "creator", "workspace_ids", "request_id"]);
    assert.match(String(json.request_id), /^req_[0-9a-f]{16}$/);

    const listed = await admin(["tunnels", "list", "--workspace-id", "ws_2", "--json"], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { tunnels: Array<{ id: string }> }).tunnels.map((t) => t.id),
      [id],
    );
    assert.deepEqual(api.seen.at(-1)!.query, { workspace_id: "ws_2" });

    const updated = await admin(["tunnels", "update", id, "--name", "  Renamed  ", "--organization-id", "org_9"], env);
    assert.equal(updated.code, 0, updated.stderr);
    assert.match(updated.stdout, /^ {2}Name: Renamed$/m);
    assert.match(updated.stdout, /^ {2}Organizations: org_9$/m);
    assert.deepEqual(api.seen.at(-1)!.body, { name: "Renamed", organization_ids: ["org_9"] });

    const refused = await admin(["tunnels", "delete", id], env);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, "refusing to delete without --confirm\n");
    assert.equal(api.tunnels.has(id), true);
    const deleted = await admin(["tunnels", "delete", id, "--confirm"], env);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, new RegExp(`^Tunnel ${id}$`, "m"));
    assert.equal(api.tunnels.has(id), false);
    assert.deepEqual([api.seen.at(-1)!.method, api.seen.at(-1)!.path], ["DELETE", `/v1/tunnels/${id}`]);
    api.assertNoViolations();
  });

  test("get takes the runtime key; management with it is 403 naming the permission", async () => {
    const made = await admin(
      ["tunnels", "create", "--name", "R", "--description", "d", "--organization-id", "org_1"],
      env,
    );
    assert.equal(made.code, 0, made.stderr);
    const id = /^Tunnel (\S+)$/m.exec(made.stdout)![1]!;
    const runtimeEnv = { CONTROL_PLANE_API_KEY: FAKE_RUNTIME_KEY, CONTROL_PLANE_BASE_URL: api.baseUrl };
    const got = await admin(["tunnels", "get", id], runtimeEnv);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(api.seen.at(-1)!.headers.authorization, `Bearer ${FAKE_RUNTIME_KEY}`);
    const listed = await admin(["tunnels", "list", "--organization-id", "org_1"], runtimeEnv);
    assert.equal(listed.code, 1);
    assert.equal(listed.stderr, "admin key is required; set --admin-key or OPENAI_ADMIN_KEY\n");
    const forbidden = await admin(["tunnels", "list", "--organization-id", "org_1", "--admin-key", "env:RUNTIME"], {
      ...runtimeEnv,
      RUNTIME: FAKE_RUNTIME_KEY,
    });
    assert.equal(forbidden.code, 1);
    assert.match(
      forbidden.stderr,
      /^request GET \/v1\/tunnels failed: 403 tunnel_management_permission_required: .* mitigation: use an admin key or account with Tunnels Read and Manage for the target org\/workspace \(x-request-id: req_[0-9a-f]+\)\n$/,
    );
    api.assertNoViolations();
  });

  test("a wrong key is 401 naming the permission; an unknown tunnel is 404; --json puts the error on stdout", async () => {
    const wrong = await admin(["tunnels", "get", "tunnel_0123456789abcdef0123456789abcdef"], {
      ...env,
      OPENAI_ADMIN_KEY: "sk-wrong-key-000",
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /failed: 401 invalid_api_key: Incorrect API key provided/);
    assert.match(
      wrong.stderr,
      /mitigation: use an admin key \(OPENAI_ADMIN_KEY \/ --admin-key.*Tunnels Read and Manage/,
    );

    const missing = await admin(["tunnels", "get", "tunnel_0123456789abcdef0123456789abcdef", "--json"], env);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "");
    const error = (JSON.parse(missing.stdout) as { error: Record<string, unknown> }).error;
    assert.deepEqual(Object.keys(error), ["message", "method", "path", "request_id", "status_code", "type"]);
    assert.equal(error.status_code, 404);
    assert.equal(error.method, "GET");
    assert.equal(error.path, "/v1/tunnels/tunnel_0123456789abcdef0123456789abcdef");
    assert.match(
      String(error.message),
      /^request GET \/v1\/tunnels\/tunnel_0123456789abcdef0123456789abcdef failed: 404 No tunnel found/,
    );
    api.assertNoViolations();
  });

  test("bad command lines exit 1 with cobra's words and send nothing", async () => {
    const before = api.seen.length;
    const cases: Array<[string[], string]> = [
      [["tunnels", "get", "x", "--bogus"], "unknown flag: --bogus\n"],
      [["tunnels", "get"], "accepts 1 arg(s), received 0\n"],
      [["tunnels", "create", "--name", "x"], 'required flag(s) "description" not set\n'],
      [
        ["tunnels", "create", "--name", "x", "--description", "y"],
        "at least one of --organization-id or --workspace-id is required\n",
      ],
      [
        ["tunnels", "list", "--organization-id", "a", "--workspace-id", "b"],
        "provide exactly one of --organization-id, --workspace-id, or --tenant-id\n",
      ],
      [["tunnels", "list", "--workspace-id", "a,a"], "duplicate workspace-id values: a\n"],
      [["tunnels", "update", "tunnel_x"], "provide at least one field to update\n"],
      [["tunnels", "get", "x", "--admin-key", FAKE_ADMIN_KEY], "admin-key must use env: or file: prefixes\n"],
    ];
    for (const [args, stderr] of cases) {
      const result = await admin(args, env);
      assert.equal(result.code, 1, args.join(" "));
      assert.equal(result.stderr, stderr, args.join(" "));
    }
    const help = await admin(["tunnels"], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /airlock admin tunnels create --name NAME/);
    assert.equal(api.seen.length, before);
  });

  test("--control-plane.url-path prefixes every route, as tunnel-client", async (t) => {
    const prefixed = await startFakeAdminApi({ urlPath: "/gateway" });
    t.after(() => prefixed.close());
    const result = await admin(
      [
        "tunnels",
        "list",
        "--tenant-id",
        "ten_1",
        "--control-plane.url-path",
        "/gateway/",
        "--control-plane.base-url",
        `${prefixed.baseUrl}/ignored`,
      ],
      { OPENAI_ADMIN_KEY: FAKE_ADMIN_KEY },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "");
    assert.deepEqual(
      [prefixed.seen[0]!.path, prefixed.seen[0]!.query],
      ["/gateway/v1/tunnels", { tenant_id: "ten_1" }],
    );
    prefixed.assertNoViolations();
  });
});

describe("admin tunnels against an Airlock hub", () => {
  let hub: TestHub;
  let env: Record<string, string>;
  before(async () => {
    hub = await startTestHub({ tunnels: 1, adminToken: HUB_ADMIN_TOKEN });
    env = { HUB_ADMIN: HUB_ADMIN_TOKEN };
  });
  after(() => hub.close());
  const target = () => ["--hub", hub.url.origin, "--token", "env:HUB_ADMIN"];

  test("a tunnel made at runtime is polled by a real agent and called by an MCP client, until it is deleted", async () => {
    const created = await admin(
      ["tunnels", "create", "--name", "Runtime", "--description", "made by the CLI", "--json", ...target()],
      env,
    );
    assert.equal(created.code, 0, created.stderr);
    const tunnel = JSON.parse(created.stdout) as {
      id: string;
      agent_key: string;
      client_token: string;
      source: string;
    };
    assert.match(tunnel.id, /^tunnel_[0-9a-f]{32}$/);
    assert.equal(tunnel.source, "registry");
    assert.notEqual(tunnel.agent_key, tunnel.client_token);

    const agent = await startHubAgent(hub.url, tunnel.id, ["--mcp.command", fixtureServerCommand().join(" ")], {
      key: tunnel.agent_key,
    });
    try {
      const { client } = await connectClient(hub.mcpUrl(tunnel.id), { token: tunnel.client_token });
      const answer = await client.callTool({ name: "echo", arguments: { message: "through a runtime tunnel" } });
      assert.deepEqual(answer.content, [{ type: "text", text: "Echo: through a runtime tunnel" }]);
      await client.close();
      const wrongToken = await fetch(hub.mcpUrl(tunnel.id), {
        method: "POST",
        headers: { Authorization: `Bearer ${tunnel.agent_key}`, "Content-Type": "application/json" },
        body: "{}",
      });
      assert.equal(wrongToken.status, 401, "the agent key is no client token");

      const renamed = await admin(["tunnels", "update", tunnel.id, "--name", "Renamed", ...target()], env);
      assert.equal(renamed.code, 0, renamed.stderr);
      const metadata = await fetch(new URL(`v1/tunnels/${tunnel.id}`, hub.url), {
        headers: { Authorization: `Bearer ${tunnel.agent_key}` },
      });
      assert.equal(((await metadata.json()) as { name: string }).name, "Renamed", "agents see the new name");

      const deleted = await admin(["tunnels", "delete", tunnel.id, "--confirm", ...target()], env);
      assert.equal(deleted.code, 0, deleted.stderr);
      const afterDelete = await fetch(new URL(`v1/tunnels/${tunnel.id}/poll?timeout_ms=1`, hub.url), {
        headers: { Authorization: `Bearer ${tunnel.agent_key}` },
      });
      assert.equal(afterDelete.status, 401);
      const gone = await admin(["tunnels", "get", tunnel.id, ...target()], env);
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, new RegExp(`failed: 404 No tunnel ${tunnel.id} on this hub`));
    } finally {
      await agent.stop("SIGTERM");
    }
  });

  test("static tunnels are listed read-only; a wrong token is 401 naming the hub admin token", async () => {
    const staticId = hub.tunnel();
    const listed = await admin(["tunnels", "list", ...target()], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^Tunnel ${staticId}\\n(.*\\n)*? {2}Source: static`, "m"));
    const update = await admin(["tunnels", "update", staticId, "--name", "x", ...target()], env);
    assert.equal(update.code, 1);
    assert.match(
      update.stderr,
      /failed: 409 tunnel_read_only: Tunnel .* is configured in the hub's AIRLOCK_TUNNELS and is read-only here/,
    );
    const remove = await admin(["tunnels", "delete", staticId, "--confirm", ...target()], env);
    assert.equal(remove.code, 1);
    assert.match(remove.stderr, /409 tunnel_read_only/);
    const metadata = await fetch(new URL(`v1/tunnels/${staticId}`, hub.url), {
      headers: { Authorization: `Bearer ${AGENT_KEY}` },
    });
    assert.equal(metadata.status, 200, "the static tunnel still serves");
    await metadata.body?.cancel();

    const long = await admin(["tunnels", "create", "--name", "x".repeat(300), "--description", "d", ...target()], env);
    assert.equal(long.code, 1);
    assert.match(long.stderr, /failed: 400 name is longer than 256 characters\./);
    const huge = await fetch(new URL("v1/admin/tunnels", hub.url), {
      method: "POST",
      headers: { Authorization: `Bearer ${HUB_ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "huge", description: "d".repeat(1024 * 1024) }),
    });
    assert.equal(huge.status, 413, "a body over the bound is refused before it is parsed");
    assert.equal(((await huge.json()) as { error: { code: string } }).error.code, "request_body_too_large");

    const wrong = await admin(["tunnels", "list", ...target()], { HUB_ADMIN: "not-the-admin-token" });
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.stderr,
      /failed: 401 invalid_api_key: Missing or invalid hub admin token: .*AIRLOCK_ADMIN_TOKEN_SHA256/,
    );
    const openAiKey = await admin(["tunnels", "list", "--hub", hub.url.origin, "--admin-key", "env:HUB_ADMIN"], env);
    assert.equal(openAiKey.code, 1);
    assert.match(
      openAiKey.stderr,
      /--admin-key is for OpenAI's admin API; with --hub, pass the hub's admin token as --token/,
    );
  });

  test("runtime tunnels survive a hub restart over the same state dir", async (t) => {
    const stateDir = mkdtempSync(join(tmpdir(), "airlock-admin-state-"));
    t.after(() => rmSync(stateDir, { recursive: true, force: true }));
    const first = await startTestHub({ tunnels: 1, adminToken: HUB_ADMIN_TOKEN, stateDir });
    let made: { id: string; agent_key: string };
    try {
      const created = await admin(
        [
          "tunnels",
          "create",
          "--name",
          "Durable",
          "--description",
          "d",
          "--hub",
          first.url.origin,
          "--token",
          "env:HUB_ADMIN",
        ],
        env,
      );
      assert.equal(created.code, 0, created.stderr);
      // The text form shows the credentials once, with where each goes.
      assert.match(created.stdout, /^Shown once: the hub keeps only their SHA-256\. The tunnel is ready now\.$/m);
      made = {
        id: /^Tunnel (tunnel_[0-9a-f]{32})$/m.exec(created.stdout)![1]!,
        agent_key: /^ {2}Agent key: (airlock_ak_\S+)$/m.exec(created.stdout)![1]!,
      };
    } finally {
      await first.close();
    }
    const second = await startTestHub({ tunnels: 1, adminToken: HUB_ADMIN_TOKEN, stateDir });
    t.after(() => second.close());
    const got = await admin(["tunnels", "get", made.id, "--hub", second.url.origin, "--token", "env:HUB_ADMIN"], env);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^ {2}Name: Durable$/m);
    const metadata = await fetch(new URL(`v1/tunnels/${made.id}`, second.url), {
      headers: { Authorization: `Bearer ${made.agent_key}` },
    });
    assert.equal(metadata.status, 200, "the agent key still opens the tunnel");
    await metadata.body?.cancel();
  });
});
