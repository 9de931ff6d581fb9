/**
 * `airlock run` refuses to start on a bad setting — exit 1 (tunnel-client's code) and a sentence naming the key
 * and the fix — instead of crashing or running half-configured.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { airlockCommand, REPO } from "../support/agent-process.ts";

const KEY = "sk-startup-errors-0123456789";

function run(extra: string[]) {
  const [cmd, ...args] = airlockCommand("node", [
    "run",
    "--control-plane.tunnel-id",
    "tunnel_0123456789abcdef0123456789abcdef",
    "--control-plane.api-key",
    "env:KEY",
    "--mcp.command",
    "true",
    "--health.listen-addr",
    "127.0.0.1:0",
    ...extra,
  ]);
  return spawnSync(cmd!, args, { cwd: REPO, env: { ...process.env, KEY }, encoding: "utf8", timeout: 30_000 });
}

test("a policy that does not parse: exit 1 and the reason", () => {
  const path = join(mkdtempSync(join(tmpdir(), "airlock-bad-policy-")), "policy.yaml");
  writeFileSync(path, "policy_version: 1\ndefault: perhaps\n");
  const result = run(["--policy", path]);
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /policy/);
  assert.match(result.stderr, /default/);
  assert.ok(!result.stderr.includes(KEY));
});

test("a log file that cannot be written: exit 1 naming log.file, no stack trace", () => {
  const result = run(["--log.file", "/nonexistent-airlock-dir/agent.log"]);
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /log\.file: \/nonexistent-airlock-dir\/agent\.log cannot be written \(ENOENT\)/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
});
