/**
 * The small rules `airlock runtimes` and `airlock cloudflared` share with tunnel-client: how an
 * alias is normalised, where the state root is, and Go's duration spelling in the rendered
 * cloudflared config.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { normalizeAlias, RuntimesError, stateRoot, utcNow } from "../../agent/runtimes/state.ts";
import { goDuration } from "../../agent/cli/cloudflared.ts";

describe("runtimes state", () => {
  test("aliases are normalised as tunnel-client's NormalizeAlias", () => {
    assert.equal(normalizeAlias("My_Demo"), "my-demo");
    assert.equal(normalizeAlias("  Prod  Server!! "), "prod-server");
    assert.equal(normalizeAlias("a__b--c"), "a-b-c");
    assert.equal(normalizeAlias("-x-"), "x");
    assert.throws(() => normalizeAlias(" !! "), RuntimesError);
    assert.throws(() => normalizeAlias(""), /at least one ASCII letter or number/);
  });

  test("the state root: AIRLOCK_STATE_DIR, then TUNNEL_CLIENT_STATE_DIR, then XDG_STATE_HOME/airlock, then home", () => {
    const home = "/home/op";
    assert.equal(stateRoot({ AIRLOCK_STATE_DIR: "/a", TUNNEL_CLIENT_STATE_DIR: "/t" }, home), "/a");
    assert.equal(stateRoot({ TUNNEL_CLIENT_STATE_DIR: " /t ", XDG_STATE_HOME: "/x" }, home), "/t");
    assert.equal(stateRoot({ XDG_STATE_HOME: "/x" }, home), join("/x", "airlock"));
    const fallback = stateRoot({}, home);
    assert.ok(
      [join(home, ".local", "state", "airlock"), join(home, "Library", "Application Support", "airlock")].includes(
        fallback,
      ),
      fallback,
    );
  });

  test("records are stamped in seconds-precision UTC, as tunnel-client's", () => {
    assert.equal(utcNow(new Date("2026-12-07T21:44:42.123Z")), "2026-12-07T21:44:42Z");
  });
});

describe("cloudflared config durations", () => {
  test("Go's time.Duration.String() for the values an operator writes", () => {
    assert.equal(goDuration(30_000), "30s");
    assert.equal(goDuration(90_000), "1m30s");
    assert.equal(goDuration(60_000), "1m0s");
    assert.equal(goDuration(3_600_000), "1h0m0s");
    assert.equal(goDuration(1_500), "1.5s");
    assert.equal(goDuration(250), "250ms");
  });
});
