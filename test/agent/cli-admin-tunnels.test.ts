/**
 * `airlock admin tunnels` before any request: the command line read as cobra/pflag read
 * tunnel-client's, the target and key resolved as its `LoadAdminConfig`, the error
 * envelope and texts of the management API, all in-process (the child-process runs against
 * the fake admin API and a real hub are in test/e2e/admin-tunnels.test.ts).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { adminUrl, parseErrorBody, AdminRequestError } from "../../agent/cli/admin-client.ts";
import { loadAdminConfig, loadReadOnlyConfig, normalizeUrlPath } from "../../agent/cli/admin-target.ts";
import { checkTunnelsArgs, parseTunnelsArgs } from "../../agent/cli/admin-tunnels-args.ts";
import { tunnelsMain } from "../../agent/cli/admin-tunnels.ts";
import { goJson } from "../../agent/cli/go-json.ts";
import { HUB_FLAGS, hubBanner, readHubCommand } from "../../agent/cli/hub.ts";
import { parseFlags, UsageError, type CliIo } from "../../agent/cli/options.ts";
import { hubBindings } from "../../agent/hub-local/run.ts";
import { sha256Hex } from "../../shared/audit/digest.ts";

function io(env: Record<string, string> = {}): CliIo & { out: string; err: string } {
  const sink = {
    out: "",
    err: "",
    env,
    cwd: process.cwd(),
    homeDir: mkdtempSync(join(tmpdir(), "airlock-admin-home-")),
    stdout: (text: string) => {
      sink.out += text;
    },
    stderr: (text: string) => {
      sink.err += text;
    },
  };
  return sink;
}

const usage = (argv: string[]) => () => checkTunnelsArgs(parseTunnelsArgs(argv));

describe("the command line, as pflag and cobra read it", () => {
  test("admin flags stand anywhere, the last value wins, ids repeat and split on commas", () => {
    const parsed = parseTunnelsArgs([
      "--json",
      "tunnels",
      "update",
      "tunnel_x",
      "--name=a",
      "--name",
      "b",
      "--organization-id",
      "o1, o2",
      "--organization-id=o3",
      "--workspace-id",
      "",
    ]);
    assert.equal(parsed.action, "update");
    assert.deepEqual(parsed.args, ["tunnel_x"]);
    assert.equal(parsed.strings.get("name"), "b");
    assert.deepEqual(parsed.lists.get("organization-id"), ["o1", "o2", "o3"]);
    assert.deepEqual(parsed.lists.get("workspace-id"), [], "given but empty: replace with none");
    assert.equal(parsed.bools.get("json"), true);
  });

  test("cobra's refusals, word for word", () => {
    assert.throws(usage(["tunnels", "get", "x", "--confirm"]), { message: "unknown flag: --confirm" });
    assert.throws(usage(["tunnels", "list", "-x"]), { message: "unknown shorthand flag: 'x' in -x" });
    assert.throws(usage(["tunnels", "create", "--name"]), { message: "flag needs an argument: --name" });
    assert.throws(usage(["tunnels", "delete", "a", "b", "--confirm"]), { message: "accepts 1 arg(s), received 2" });
    assert.throws(usage(["tunnels", "create"]), { message: 'required flag(s) "description", "name" not set' });
    assert.throws(usage(["tunnels", "delete", "a", "--confirm=maybe"]), {
      message: 'invalid argument "maybe" for "--confirm" flag: strconv.ParseBool: parsing "maybe": invalid syntax',
    });
    assert.doesNotThrow(usage(["tunnels", "create", "--name", "n", "--description", "d", "extra"]));
  });

  test("no action or an unknown one prints help and exits 0, as tunnel-client", async () => {
    const bare = io();
    assert.equal(await tunnelsMain(["tunnels"], bare), 0);
    assert.match(bare.out, /airlock admin tunnels delete <tunnel_id> --confirm/);
    const typo = io();
    assert.equal(await tunnelsMain(["tunnels", "lsit"], typo), 0);
    assert.match(typo.err, /unknown command "lsit" for "airlock admin tunnels"/);
  });

  test("admin <unknown>: help and exit 0, as tunnel-client; AIRLOCK_STRICT_CONFIG makes it exit 1", async () => {
    const lenient = io();
    assert.equal(await tunnelsMain(["tunels", "list"], lenient), 0);
    assert.match(lenient.err, /unknown command "tunels" for "airlock admin" \(it has: tunnels, grants\)/);
    assert.match(lenient.out, /airlock admin tunnels delete <tunnel_id> --confirm/);
    const strict = io({ AIRLOCK_STRICT_CONFIG: "true" });
    assert.equal(await tunnelsMain(["tunels", "list"], strict), 1);
    assert.match(strict.err, /unknown command "tunels" for "airlock admin"/);
    assert.equal(strict.out, "");
  });
});

describe("target and key, as tunnel-client's LoadAdminConfig", () => {
  const flags = (...argv: string[]) => parseTunnelsArgs(["tunnels", "list", ...argv]);
  const cwd = process.cwd();

  test("flag over environment over the default; the URL path is normalized", async () => {
    const byDefault = await loadAdminConfig(flags(), { OPENAI_ADMIN_KEY: " k " }, cwd);
    assert.equal(byDefault.base.href, "https://api.openai.com/");
    assert.equal(byDefault.key, "k");
    const env = { OPENAI_ADMIN_KEY: "k", CONTROL_PLANE_BASE_URL: "https://env.example", CONTROL_PLANE_URL_PATH: "/e" };
    const fromEnv = await loadAdminConfig(flags(), env, cwd);
    assert.deepEqual([fromEnv.base.origin, fromEnv.urlPath], ["https://env.example", "/e"]);
    const fromFlags = await loadAdminConfig(
      flags("--control-plane.base-url", "https://flag.example/x", "--control-plane.url-path", "/f/"),
      env,
      cwd,
    );
    assert.equal(adminUrl({ ...fromFlags, fetch }, "/tunnel_a").href, "https://flag.example/f/v1/tunnels/tunnel_a");
    assert.equal(normalizeUrlPath("/"), "");
    assert.throws(() => normalizeUrlPath("relay"), { message: "invalid control-plane.url-path: must start with '/'" });
    assert.throws(() => normalizeUrlPath("https://x/y"), /without scheme, host, query, or fragment/);
    await assert.rejects(loadAdminConfig(flags("--control-plane.base-url", "api.openai.com"), env, cwd), {
      message: "invalid control-plane.base-url: must include scheme and host",
    });
  });

  test("--admin-key takes env: and file: references only, with tunnel-client's messages", async () => {
    const dir = mkdtempSync(join(tmpdir(), "airlock-admin-key-"));
    writeFileSync(join(dir, "key"), "  sk-file\n");
    writeFileSync(join(dir, "empty"), "\n");
    assert.equal((await loadAdminConfig(flags("--admin-key", `file:${dir}/key`), {}, cwd)).key, "sk-file");
    assert.equal((await loadAdminConfig(flags("--admin-key", "env:K"), { K: "sk-env" }, cwd)).key, "sk-env");
    const refused: Array<[string[], Record<string, string>, string]> = [
      [["--admin-key", "sk-literal"], {}, "admin-key must use env: or file: prefixes"],
      [["--admin-key", "env:"], {}, "invalid admin-key: environment variable name is required after env:"],
      [["--admin-key", "env:NOPE"], {}, "environment variable NOPE referenced by --admin-key is not set"],
      [["--admin-key", "env:K"], { K: " " }, "environment variable K referenced by --admin-key is empty"],
      [["--admin-key", `file:${dir}/empty`], {}, `file ${dir}/empty referenced by --admin-key is empty`],
      [[], { OPENAI_ADMIN_KEY: "" }, "OPENAI_ADMIN_KEY must be non-empty"],
      [[], {}, "admin key is required; set --admin-key or OPENAI_ADMIN_KEY"],
      [["--organization-id", "a,b,a"], { OPENAI_ADMIN_KEY: "k" }, "duplicate organization-id values: a"],
    ];
    for (const [argv, env, message] of refused)
      await assert.rejects(loadAdminConfig(flags(...argv), env, cwd), { message });
  });

  test("get falls back to the runtime key only without an admin key", async () => {
    const get = (...argv: string[]) => parseTunnelsArgs(["tunnels", "get", "tunnel_a", ...argv]);
    assert.equal((await loadReadOnlyConfig(get(), { CONTROL_PLANE_API_KEY: "rt" }, cwd)).key, "rt");
    assert.equal((await loadReadOnlyConfig(get(), { OPENAI_API_KEY: "oa" }, cwd)).key, "oa");
    assert.equal(
      (await loadReadOnlyConfig(get("--admin-key", "env:OPENAI_ADMIN_KEY"), { CONTROL_PLANE_API_KEY: "rt" }, cwd)).key,
      "rt",
    );
    assert.equal(
      (await loadReadOnlyConfig(get(), { OPENAI_ADMIN_KEY: "adm", CONTROL_PLANE_API_KEY: "rt" }, cwd)).key,
      "adm",
    );
    await assert.rejects(loadReadOnlyConfig(get("--admin-key", "env:OTHER"), { CONTROL_PLANE_API_KEY: "rt" }, cwd), {
      message: "environment variable OTHER referenced by --admin-key is not set",
    });
  });

  test("--hub takes --token and never an OpenAI key or OPENAI_ADMIN_KEY", async () => {
    const hub = await loadAdminConfig(flags("--hub", "http://127.0.0.1:8787", "--token", "env:T"), { T: "t" }, cwd);
    assert.equal(adminUrl({ ...hub, fetch }).href, "http://127.0.0.1:8787/v1/admin/tunnels");
    assert.equal(hub.key, "t");
    await assert.rejects(
      loadAdminConfig(flags("--hub", "http://h"), { OPENAI_ADMIN_KEY: "k" }, cwd),
      /--hub needs the hub's admin token/,
    );
    await assert.rejects(
      loadAdminConfig(flags("--hub", "http://h", "--token", "t"), {}, cwd),
      /--token must use env: or file:/,
    );
    await assert.rejects(loadAdminConfig(flags("--token", "env:T"), { T: "t" }, cwd), /needs --hub URL/);
  });
});

describe("answers and errors of the management API", () => {
  test("the error envelope, top-level fields, detail and plain text are read as tunnel-client reads them", () => {
    const envelope = parseErrorBody(
      '{"error":{"message":"m","type":"t","code":"tunnel_management_permission_required"}}',
    );
    assert.deepEqual(
      [envelope.code, envelope.type, envelope.message],
      ["tunnel_management_permission_required", "t", "m"],
    );
    assert.match(envelope.mitigation, /Tunnels Read and Manage/);
    assert.equal(parseErrorBody('{"detail":{"x":1}}').message, '{"x":1}');
    assert.equal(parseErrorBody("  Bad Gateway \n").body, "Bad Gateway");
    const error = new AdminRequestError("DELETE", "/v1/tunnels/t", 404, "", parseErrorBody("404 page: Invalid URL"));
    assert.match(
      error.message,
      /^request DELETE \/v1\/tunnels\/t failed: 404 delete is not exposed on this control-plane base URL yet/,
    );
    const plain = new AdminRequestError("GET", "/v1/tunnels", 502, "req_1", parseErrorBody("Bad Gateway"));
    assert.equal(plain.message, "request GET /v1/tunnels failed: 502 Bad Gateway (x-request-id: req_1)");
  });

  test('--json errors before any request are {"error":{"message"}} on stdout, exit 1', async () => {
    const sink = io({ OPENAI_ADMIN_KEY: "k" });
    assert.equal(await tunnelsMain(["tunnels", "list", "--json"], sink), 1);
    assert.equal(sink.err, "");
    assert.equal(
      sink.out,
      '{\n  "error": {\n    "message": "provide exactly one of --organization-id, --workspace-id, or --tenant-id"\n  }\n}\n',
    );
  });

  test("JSON is written as Go writes it: two-space indent, HTML characters escaped", () => {
    assert.equal(goJson({ name: "a<b>&c" }), '{\n  "name": "a\\u003cb\\u003e\\u0026c"\n}\n');
  });
});

describe("airlock hub --admin-token", () => {
  const hubArgs = (...extra: string[]) =>
    parseFlags(
      "hub",
      ["--tunnel-id", `tunnel_${"0".repeat(32)}`, "--agent-key", "env:A", "--client-token", "env:A", ...extra],
      HUB_FLAGS,
    );

  test("takes a reference, hands the Worker only its digest, and the banner names the management URL", async () => {
    const command = await readHubCommand(hubArgs("--admin-token", "env:T"), io({ A: "a", T: "admin-secret" }));
    assert.equal(command.adminToken, "admin-secret");
    const vars = await hubBindings([], {}, { adminToken: "admin-secret" });
    assert.equal(vars.AIRLOCK_ADMIN_TOKEN_SHA256, await sha256Hex("admin-secret"));
    const banner = hubBanner(new URL("http://127.0.0.1:8787/"), command);
    assert.match(banner, /admin {5}http:\/\/127\.0\.0\.1:8787\/v1\/admin\/tunnels/);
    assert.doesNotMatch(banner, /admin-secret/);
    await assert.rejects(
      readHubCommand(hubArgs("--admin-token", "admin-secret"), io({ A: "a" })),
      (error: unknown) => error instanceof UsageError && /--admin-token takes a reference/.test(error.message),
    );
  });
});
