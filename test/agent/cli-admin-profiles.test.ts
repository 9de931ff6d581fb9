/**
 * `airlock admin-profiles` in-process over a temporary state dir: tunnel-client's file
 * (place, format, 0600), its outputs and refusals, and `admin tunnels --admin-profile`
 * taking the saved target and key reference.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../agent/cli/admin-profiles.ts";
import { stateRoot } from "../../agent/cli/admin-profiles-store.ts";
import { loadAdminConfig } from "../../agent/cli/admin-target.ts";
import { parseTunnelsArgs } from "../../agent/cli/admin-tunnels-args.ts";

function sandbox(extra: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "airlock-admin-profiles-"));
  const env = { TUNNEL_CLIENT_STATE_DIR: dir, ...extra };
  const run = async (...argv: string[]) => {
    const out = { code: 0, stdout: "", stderr: "" };
    out.code = await main(argv, {
      env,
      cwd: dir,
      homeDir: dir,
      stdout: (text) => {
        out.stdout += text;
      },
      stderr: (text) => {
        out.stderr += text;
      },
    });
    return out;
  };
  return { dir, env, run, file: join(dir, "admin_profiles.yaml") };
}

describe("admin-profiles, as tunnel-client's", () => {
  test("set, list, activate and delete keep tunnel-client's file and words", async () => {
    const { dir, run, file } = sandbox({ CONTROL_PLANE_BASE_URL: "https://env.example" });
    assert.deepEqual(await run("list"), { code: 0, stdout: `No admin profiles found in ${file}\n`, stderr: "" });
    const saved = await run("set", "Prod_Admin", "--admin-key", "env:PROD_ADMIN_KEY");
    assert.deepEqual(saved, { code: 0, stdout: "Saved admin profile prod-admin (https://env.example)\n", stderr: "" });
    assert.equal(statSync(file).mode & 0o777, 0o600);
    for (const sub of ["configs", "health", "logs"]) assert.ok(statSync(join(dir, sub)).isDirectory(), sub);
    await run("set", "staging", "--control-plane-base-url", "https://staging.example", "--activate=false");
    const stored = JSON.parse(readFileSync(file, "utf8")) as {
      active_profile: string;
      profiles: Record<string, unknown>;
    };
    assert.equal(stored.active_profile, "prod-admin");
    assert.deepEqual(Object.keys(stored.profiles), ["prod-admin", "staging"]);
    assert.deepEqual((stored.profiles.staging as { admin_key: string }).admin_key, "env:OPENAI_ADMIN_KEY");

    assert.equal(
      (await run("list")).stdout,
      "prod-admin\thttps://env.example\t(active)\nstaging\thttps://staging.example\n",
    );
    const listed = JSON.parse((await run("list", "--json")).stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(listed), ["active_profile", "path", "profiles", "state_root"]);
    const first = (listed.profiles as Array<Record<string, unknown>>)[0]!;
    assert.deepEqual(Object.keys(first), [
      "name",
      "control_plane_base_url",
      "admin_key",
      "updated_at",
      "path",
      "active",
    ]);
    assert.match(String(first.updated_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    assert.equal((await run("activate", "STAGING")).stdout, "Activated admin profile staging\n");
    const deleted = await run("delete", "staging", "--json");
    assert.deepEqual(Object.keys(JSON.parse(deleted.stdout) as object), [
      "active_profile",
      "deleted_profile",
      "path",
      "state_root",
    ]);
    assert.equal((JSON.parse(readFileSync(file, "utf8")) as { active_profile: string }).active_profile, "prod-admin");
  });

  test("refusals: a literal key, an unknown profile, one a tunnel-client alias uses, bad arguments", async () => {
    const { dir, run } = sandbox();
    const literal = await run("set", "p", "--admin-key", "sk-secret-value");
    assert.deepEqual(literal, {
      code: 1,
      stdout: "",
      stderr: "admin profile p admin_key must be an env:NAME or file:/path reference\n",
    });
    assert.equal((await run("activate", "nope")).stderr, "admin profile nope is not known\n");
    await run("set", "used");
    writeFileSync(join(dir, "aliases.yaml"), JSON.stringify({ demo: { alias: "demo", admin_profile: "used" } }));
    assert.deepEqual(await run("delete", "used"), {
      code: 1,
      stdout: "",
      stderr: "admin profile used is still referenced by alias demo\n",
    });
    assert.equal((await run("set")).stderr, "accepts 1 arg(s), received 0\n");
    assert.equal((await run("list", "--admin-key", "env:X")).stderr, "unknown flag: --admin-key\n");
    assert.equal((await run("set", "__")).stderr, "alias must contain at least one ASCII letter or number\n");
    const help = await run();
    assert.equal(help.code, 0);
    assert.match(help.stdout, /airlock admin-profiles set <name>/);
  });

  test("the state dir is tunnel-client's: explicit, then an existing legacy dir, then XDG, then ~/.local/state", () => {
    const home = mkdtempSync(join(tmpdir(), "airlock-admin-home-"));
    assert.equal(stateRoot({ TUNNEL_CLIENT_STATE_DIR: "/s" }, home), "/s");
    assert.equal(stateRoot({ HOME: home }, undefined, "linux"), join(home, ".local", "state", "tunnel-client"));
    assert.equal(
      stateRoot({ HOME: home }, undefined, "darwin"),
      join(home, "Library", "Application Support", "tunnel-client"),
    );
    assert.equal(stateRoot({ HOME: home, XDG_STATE_HOME: "/x" }, undefined), "/x/tunnel-client");
    mkdirSync(join(home, ".tunnel-client"));
    assert.equal(stateRoot({ HOME: home, XDG_STATE_HOME: "/x" }, undefined), join(home, ".tunnel-client"));
  });

  test("admin tunnels --admin-profile takes the saved target and key reference; flags still win", async () => {
    const { env, run } = sandbox({ SAVED_KEY: "sk-saved" });
    await run(
      "set",
      "ops",
      "--control-plane-base-url",
      "https://saved.example",
      "--control-plane-url-path",
      "/p",
      "--admin-key",
      "env:SAVED_KEY",
    );
    const flags = (...argv: string[]) => parseTunnelsArgs(["tunnels", "list", "--admin-profile", "ops", ...argv]);
    const config = await loadAdminConfig(flags(), env, process.cwd());
    assert.deepEqual([config.base.origin, config.urlPath, config.key], ["https://saved.example", "/p", "sk-saved"]);
    const overridden = await loadAdminConfig(
      flags("--control-plane.base-url", "https://flag.example"),
      env,
      process.cwd(),
    );
    assert.equal(overridden.base.origin, "https://flag.example");
    await assert.rejects(loadAdminConfig(parseTunnelsArgs(["tunnels", "list", "--admin-profile", "nope"]), env, "/"), {
      message: "admin profile nope is not known; save it with airlock admin-profiles set nope",
    });
  });
});
