/**
 * tunnel-client's `profiles add` and `profiles edit`: a profile is written only once it loads
 * the way `run` would load it; an edit that breaks it leaves the old one in place.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main as profilesMain } from "../../agent/cli/profiles.ts";
import type { CliIo } from "../../agent/cli/options.ts";

const TUNNEL = "tunnel_abcdefghijklmnopqrstuvwxyz012345";

describe("profiles add / edit", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "airlock-profiles-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const io = (env: Record<string, string> = {}): CliIo & { out: string; err: string } => {
    const captured = {
      out: "",
      err: "",
      env: { PATH: process.env.PATH ?? "", ...env },
      cwd: dir,
      homeDir: dir,
      stdout(t: string) {
        captured.out += t;
      },
      stderr(t: string) {
        captured.err += t;
      },
    };
    return captured;
  };

  test("add --sample writes the sample as init does (configuration.md's line)", async () => {
    const out = io();
    assert.equal(
      await profilesMain(
        [
          "add",
          "my-profile",
          "--sample",
          "sample_mcp_with_dcr",
          "--tunnel-id",
          TUNNEL,
          "--mcp-server-url",
          "http://127.0.0.1:3001/mcp",
          "--profile-dir",
          dir,
        ],
        out,
      ),
      0,
      out.err,
    );
    const text = await readFile(join(dir, "my-profile.yaml"), "utf8");
    assert.match(text, new RegExp(TUNNEL));
    assert.equal((await stat(join(dir, "my-profile.yaml"))).mode & 0o777, 0o600);
  });

  test("add --from-file validates first, refuses to replace without --force", async () => {
    const good = join(dir, "source.yaml");
    await writeFile(
      good,
      `control_plane:\n  tunnel_id: ${TUNNEL}\n  api_key: env:CONTROL_PLANE_API_KEY\nlog:\n  level: info\nmcp:\n  commands:\n    - command: cat\n`,
    );
    let out = io();
    assert.equal(await profilesMain(["add", "copied", "--from-file", good, "--profile-dir", dir], out), 0, out.err);
    assert.equal(await readFile(join(dir, "copied.yaml"), "utf8"), await readFile(good, "utf8"));
    out = io();
    assert.equal(await profilesMain(["add", "copied", "--from-file", good, "--profile-dir", dir], out), 2);
    assert.match(out.err, /already exists .*pass --force/);
    const bad = join(dir, "bad.yaml");
    await writeFile(bad, "control_plane:\n  tunnel_idd: x\n");
    out = io();
    assert.equal(await profilesMain(["add", "broken", "--from-file", bad, "--profile-dir", dir], out), 2);
    assert.match(out.err, /tunnel_idd/);
    await assert.rejects(stat(join(dir, "broken.yaml")));
    out = io();
    assert.equal(await profilesMain(["add", "x", "--profile-dir", dir], out), 2);
    assert.match(out.err, /exactly one of --from-file FILE or --sample NAME/);
  });

  test("edit runs $EDITOR on a copy and saves only a profile that loads", async () => {
    const path = join(dir, "copied.yaml");
    let out = io({ EDITOR: "sed -i 's/level: info/level: debug/'" });
    assert.equal(await profilesMain(["edit", "copied", "--profile-dir", dir], out), 0, out.err);
    assert.match(await readFile(path, "utf8"), /level: debug/);
    out = io({ EDITOR: "sed -i 's/level: debug/level: loud/'" });
    assert.equal(await profilesMain(["edit", "copied", "--profile-dir", dir], out), 1);
    assert.match(out.err, /not saved, the profile does not load: .*log\.level/);
    assert.match(await readFile(path, "utf8"), /level: debug/, "the working profile is untouched");
    out = io();
    assert.equal(await profilesMain(["edit", "copied", "--profile-dir", dir], out), 2);
    assert.match(out.err, /set VISUAL or EDITOR/);
    out = io({ EDITOR: "true" });
    assert.equal(await profilesMain(["edit", "ghost", "--profile-dir", dir], out), 2);
    assert.match(out.err, /profile "ghost" not found/);
  });
});
