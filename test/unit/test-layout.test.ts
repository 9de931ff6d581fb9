/** The test tree follows test/README.md: every folder is documented there and file names are unique. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const testRoot = fileURLToPath(new URL("../", import.meta.url));

function testFiles(dir: string): string[] {
  return readdirSync(testRoot + dir).flatMap((entry) => {
    const path = `${dir}${entry}`;
    if (statSync(testRoot + path).isDirectory()) return testFiles(`${path}/`);
    return entry.endsWith(".test.ts") ? [path] : [];
  });
}

test("every test folder is described in test/README.md", () => {
  const readme = readFileSync(`${testRoot}README.md`, "utf8");
  // artifacts/ is output (screenshots), ignored by git, not a place for tests.
  const folders = readdirSync(testRoot).filter(
    (entry) => entry !== "artifacts" && statSync(testRoot + entry).isDirectory(),
  );
  assert.ok(folders.includes("unit") && folders.includes("agent"));
  for (const folder of folders)
    assert.ok(readme.includes(`\`${folder}/\``), `test/${folder}/ is not described in test/README.md`);
});

test("no two test files share a name", () => {
  const byName = new Map<string, string[]>();
  for (const path of testFiles("")) {
    const name = path.slice(path.lastIndexOf("/") + 1);
    byName.set(name, [...(byName.get(name) ?? []), path]);
  }
  assert.ok(byName.size > 10, "the walk found the test files");
  const repeated = [...byName.values()].filter((paths) => paths.length > 1);
  assert.deepEqual(repeated, [], "rename one of each pair after what it adds (see test/README.md)");
});
