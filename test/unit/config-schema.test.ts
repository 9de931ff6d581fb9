import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { closestMatch, formatPath, validateConfigFile } from "../../shared/config/schema.ts";

function issues(document: unknown) {
  const result = validateConfigFile(document);
  assert.ok(!result.ok, "expected the document to be rejected");
  return result.issues;
}

function config(document: unknown) {
  const result = validateConfigFile(document);
  assert.ok(result.ok, result.ok ? "" : JSON.stringify(result.issues));
  return result.config;
}

describe("config file schema", () => {
  test("empty documents and null sections mean nothing is set", () => {
    assert.deepEqual(config(null), {});
    assert.deepEqual(config({ health: null, log: { level: null, format: "json" } }), { log: { format: "json" } });
  });

  test("scalars read like Go's yaml.v3: numbers into strings, YAML 1.1 booleans into bools", () => {
    const parsed = config({
      control_plane: { extra_headers: { "X-Debug-Mode": 1 } },
      admin_ui: { open_browser: "no", allow_remote: "on" },
      mcp: { stdio_send_initialized_notification: "yes" },
    });
    assert.deepEqual(parsed.control_plane?.extra_headers, { "X-Debug-Mode": "1" });
    assert.deepEqual(parsed.admin_ui, { open_browser: false, allow_remote: true });
    assert.equal(parsed.mcp?.stdio_send_initialized_notification, true);
  });

  test("durations are Go-style and become milliseconds", () => {
    assert.equal(config({ control_plane: { poll_timeout: "1m30s" } }).control_plane?.poll_timeout, 90_000);
    assert.equal(config({ mcp: { connection_max_ttl: "250ms" } }).mcp?.connection_max_ttl, 250);
    assert.match(issues({ proxy: { check_interval: "soon" } })[0]!.message, /"soon" is not a duration/);
  });

  test("unknown keys are named with the nearest known key at that depth", () => {
    assert.deepEqual(issues({ control_plane: { tunel_id: "x" } }), [
      { path: "control_plane.tunel_id", message: "unknown key; did you mean tunnel_id?" },
    ]);
    assert.deepEqual(
      issues({ routes: [{ channel: "main", backends: [{ name: "a", url: "http://h", header: {} }] }] }),
      [{ path: "routes[0].backends[0].header", message: "unknown key; did you mean headers?" }],
    );
    assert.deepEqual(issues({ zzzz_unrelated: 1 }), [{ path: "zzzz_unrelated", message: "unknown key" }]);
  });

  test("wrong types are errors at their path", () => {
    const found = issues({
      control_plane: { max_inflight_requests: "20" },
      mcp: { commands: "npx" },
      harpoon: { targets: [{ url: "https://x" }] },
    });
    assert.deepEqual(found.map((i) => i.path).sort(), [
      "control_plane.max_inflight_requests",
      "harpoon.targets[0].label",
      "mcp.commands",
    ]);
    assert.match(issues({ config_version: 3 })[0]!.message, /config_version must be 1/);
    assert.match(issues({ policy: 5 })[0]!.message, /policy is a file path or an inline policy object/);
    assert.equal(config({ policy: { rules: [] } }).policy !== undefined, true);
  });

  test("a backend is exactly one of command or url, with fields that fit its kind", () => {
    const route = (backends: unknown[]) => ({ routes: [{ channel: "main", backends }] });
    assert.match(issues(route([{ name: "a" }]))[0]!.message, /set command .* or url/);
    assert.deepEqual(issues(route([{ name: "a", command: "x", headers: { A: "b" } }])), [
      { path: "routes[0].backends[0].headers", message: "only applies to url backends" },
    ]);
    assert.deepEqual(issues(route([{ name: "a", url: "http://h", cwd: "/" }])), [
      { path: "routes[0].backends[0].cwd", message: "only applies to command backends" },
    ]);
    assert.match(issues(route([{ name: "a", command: [] }]))[0]!.message, /argv list needs at least the program/);
    assert.deepEqual(
      issues(route([{ name: "a", url: "http://h", share: true, idle_timeout: "1m" }])).map((i) => i.path),
      ["routes[0].backends[0].share", "routes[0].backends[0].idle_timeout"],
    );
    assert.deepEqual(issues(route([{ name: "a", command: "x", max_sessions: 0 }])), [
      { path: "routes[0].backends[0].max_sessions", message: "must be greater than zero" },
    ]);
    const stdio = config(
      route([{ name: "a", command: "x", share: "yes", max_sessions: 4, idle_timeout: "90s", pool_size: 2 }]),
    ).routes?.[0]?.backends[0];
    assert.deepEqual([stdio?.share, stdio?.max_sessions, stdio?.idle_timeout, stdio?.pool_size], [true, 4, 90_000, 2]);
    assert.deepEqual(
      config({ mcp: { commands: [{ command: "x", share: true, idle_timeout: "5m" }] } }).mcp?.commands?.[0],
      { command: "x", share: true, idle_timeout: 300_000 },
    );
    assert.deepEqual(config(route([{ name: "a", command: ["node", "s.js"] }])).routes?.[0]?.backends[0]?.command, [
      "node",
      "s.js",
    ]);
  });

  test("backend names are namespace-safe and unique per channel; channels are unique", () => {
    const route = (channel: string, names: string[]) => ({
      channel,
      backends: names.map((name) => ({ name, command: "x" })),
    });
    for (const bad of ["Git", "a__b", "-a", "a_", "a b"]) {
      assert.equal(issues({ routes: [route("main", [bad])] })[0]?.path, "routes[0].backends[0].name", bad);
    }
    assert.deepEqual(
      config({ routes: [route("main", ["git-hub", "wiki_2"])] }).routes?.[0]?.backends.map((b) => b.name),
      ["git-hub", "wiki_2"],
    );
    assert.deepEqual(
      issues({ routes: [route("main", ["a", "a"])] }).map((i) => i.path),
      ["routes[0].backends[1].name"],
    );
    assert.deepEqual(
      issues({ routes: [route("main", ["a"]), route("main", ["b"])] }).map((i) => i.path),
      ["routes[1].channel"],
    );
    assert.equal(issues({ routes: [route("Main", ["a"])] })[0]?.path, "routes[0].channel");
    assert.match(issues({ routes: [{ channel: "main", backends: [] }] })[0]!.message, /at least one backend/);
  });
});

describe("helpers", () => {
  test("formatPath writes dotted keys and [index]", () => {
    assert.equal(formatPath(["routes", 0, "backends", 2, "url"]), "routes[0].backends[2].url");
    assert.equal(formatPath([]), "");
  });

  test("closestMatch suggests near misses only", () => {
    assert.equal(closestMatch("tunel_id", ["tunnel_id", "api_key"]), "tunnel_id");
    assert.equal(
      closestMatch("control-plane.tunel-id", ["control-plane.tunnel-id", "log.level"]),
      "control-plane.tunnel-id",
    );
    assert.equal(closestMatch("wholly_different", ["tunnel_id", "api_key"]), undefined);
  });
});
