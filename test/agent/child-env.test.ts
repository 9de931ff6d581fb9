/**
 * Attack class "secrets reach child processes": every child the agent starts gets an
 * allowlisted environment (agent/backends/child-env.ts), whatever shape a secret takes.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { SpawnOptions } from "node:child_process";
import { childEnvironment, DESKTOP_SESSION_VARIABLES } from "../../agent/backends/child-env.ts";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import { silentLogger } from "../../shared/log.ts";

const AGENT_ENV = {
  PATH: "/usr/bin:/bin",
  HOME: "/home/op",
  LANG: "C.UTF-8",
  LC_CTYPE: "C.UTF-8",
  TMPDIR: "/tmp",
  CONTROL_PLANE_API_KEY: "sk-key-one-1234567890",
  MY_KEY_WITH_NEWLINE: "sk-key-one-1234567890\n",
  CONTROL_PLANE_EXTRA_HEADERS: "Authorization: Bearer hdr-secret-1234",
  MCP_HTTP_PROXY: "http://u:proxy-secret-1234@proxy:3128",
  HTTPS_PROXY: "http://u:proxy-secret-1234@proxy:3128",
  DISPLAY: ":0",
};

describe("child environment (attack: secrets reach stdio children)", () => {
  test("only allowlisted names pass, whatever the value looks like", () => {
    assert.deepEqual(childEnvironment(AGENT_ENV, ["sk-key-one-1234567890"]), {
      PATH: "/usr/bin:/bin",
      HOME: "/home/op",
      LANG: "C.UTF-8",
      LC_CTYPE: "C.UTF-8",
      TMPDIR: "/tmp",
    });
  });

  test("an allowlisted variable that contains a secret is dropped too", () => {
    const env = childEnvironment({ HOME: "/home/sk-key-one-1234567890", PATH: "/bin" }, ["sk-key-one-1234567890"]);
    assert.deepEqual(env, { PATH: "/bin" });
  });

  test("the browser opener gets the desktop session, still no credentials", () => {
    const env = childEnvironment(AGENT_ENV, [], DESKTOP_SESSION_VARIABLES);
    assert.equal(env.DISPLAY, ":0");
    assert.equal(env.CONTROL_PLANE_API_KEY, undefined);
    assert.equal(env.HTTPS_PROXY, undefined);
  });

  test("a stdio backend built without inheritEnv does not hand the child process.env", async () => {
    const planted = "AIRLOCK_TEST_PLANTED_SECRET";
    process.env[planted] = "planted-secret-value-123";
    let seen: SpawnOptions["env"];
    const backend = createStdioBackend({
      name: "env-probe",
      command: ["probe"],
      env: { DECLARED: "yes" },
      log: silentLogger,
      restart: { crashLoopCount: 1, failedRetryMs: 3_600_000 },
      spawn: (_program, _args, options) => {
        seen = options.env;
        throw Object.assign(new Error("not started in this test"), { code: "ENOENT" });
      },
    });
    try {
      await backend.start();
      assert.ok(seen, "spawn was called");
      assert.equal(seen[planted], undefined, "an arbitrary agent variable reached the child");
      assert.equal(seen.DECLARED, "yes", "the backend's env: map is applied");
      assert.equal(seen.PATH, process.env.PATH);
    } finally {
      delete process.env[planted];
      await backend.close();
    }
  });
});
