/**
 * State and profile files are written through one helper: a planted symlink or a stale,
 * world-readable file at the path (or at the temporary name older code used) is neither
 * followed nor kept, and the result is 0600.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveAdminProfiles } from "../../agent/cli/admin-profiles-store.ts";
import { saveAliases } from "../../agent/runtimes/state.ts";
import { writePrivateFile } from "../../agent/runtime/private-file.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-private-file-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A file the writer must never touch, and symlinks to it at every temporary name tried before. */
async function plant(target: string, names: string[]): Promise<string> {
  const victim = join(dir, `victim-${Math.random().toString(36).slice(2)}`);
  await writeFile(victim, "untouched\n", { mode: 0o644 });
  for (const name of names) await symlink(victim, name);
  await writeFile(target, "old\n", { mode: 0o644 });
  return victim;
}

async function assertPrivateRegular(path: string) {
  const info = await lstat(path);
  assert.ok(info.isFile(), `${path} is a regular file`);
  assert.equal((await stat(path)).mode & 0o777, 0o600, `${path} is 0600`);
}

describe("private files", () => {
  test("writePrivateFile replaces a world-readable file with a 0600 one", async () => {
    const path = join(dir, "plain.url");
    await writeFile(path, "old\n", { mode: 0o644 });
    await writePrivateFile(path, "new\n");
    assert.equal(await readFile(path, "utf8"), "new\n");
    await assertPrivateRegular(path);
  });

  test("admin profiles: a symlink at the old fixed temporary name is not followed", async () => {
    const path = join(dir, "admin_profiles.yaml");
    const victim = await plant(path, [`${path}.tmp`]);
    await saveAdminProfiles(dir, { active_profile: "", profiles: {} });
    assert.equal(await readFile(victim, "utf8"), "untouched\n");
    await assertPrivateRegular(path);
  });

  test("runtimes state: a symlink at the old pid temporary name is not followed", async () => {
    const path = join(dir, "aliases.yaml");
    const victim = await plant(path, [`${path}.${process.pid}.tmp`]);
    await saveAliases(dir, {});
    assert.equal(await readFile(victim, "utf8"), "untouched\n");
    await assertPrivateRegular(path);
  });
});
