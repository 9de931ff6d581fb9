/**
 * docs/architecture.md and docs/protocol.md name files so a newcomer can find them: every
 * repository path they name (in backticks, or in a file-map row as folder + file) and every
 * relative link must exist.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";

const root = new URL("../../", import.meta.url).pathname;
const DOCS = ["docs/architecture.md", "docs/protocol.md"];
const REPO_PATH = /^(agent|relay|shared|test|scripts|docs)\/[\w./-]*$/;

/** Paths a doc names: backticked repo paths, and `folder/` + `file.ts` pairs in file-map rows under **agent/** etc. */
function namedPaths(text: string): string[] {
  const out: string[] = [];
  for (const [, token] of text.matchAll(/`([^`\s]+)`/g))
    if (REPO_PATH.test(token!)) out.push(token!.replace(/[.,:]$/, ""));
  let side = "";
  for (const line of text.split("\n")) {
    const heading = /^\*\*(agent|relay|shared)\/\*\*$/.exec(line);
    if (heading) side = `${heading[1]}/`;
    const row = /^\| ([^|]+) \| ([^|]+) \|$/.exec(line);
    if (!side || !row || row[1] === "file" || row[1]!.startsWith("---")) continue;
    const first = [...row[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    for (const name of first) {
      if (!name.endsWith("/")) out.push(`${side}${name}`);
      else for (const [, file] of row[2]!.matchAll(/`([\w.-]+\.tsx?)`/g)) out.push(`${side}${name}${file}`);
    }
  }
  return out;
}

for (const doc of DOCS) {
  test(`${doc}: every file it names and every relative link exists`, () => {
    const text = readFileSync(`${root}${doc}`, "utf8");
    const paths = namedPaths(text);
    assert.ok(paths.length > 5, `only ${paths.length} paths found`);
    for (const path of paths) assert.ok(existsSync(`${root}${path}`), `${doc} names ${path}, which does not exist`);
    for (const [, link] of text.matchAll(/\]\(((?!https?:|#)[^)]+)\)/g)) {
      assert.ok(existsSync(`${root}docs/${link!.split("#")[0]}`), `${doc} links to ${link}, which does not exist`);
    }
  });
}
