/** The README is part of the product: its configuration table and its links must stay true. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configReference } from "../../agent/config/flags.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const readme = readFileSync(`${root}README.md`, "utf8");

test("the README's configuration table is the settings table", () => {
  const match = /<!-- config-reference:start -->\n([\s\S]*?)\n<!-- config-reference:end -->/.exec(readme);
  assert.ok(match, "README has the config-reference markers");
  assert.equal(match[1], configReference(), "regenerate the table from agent/config/flags.ts configReference()");
});

test("every relative link in the README points at a file in the repo", () => {
  const links = [...readme.matchAll(/\]\(((?!https?:|#)[^)]+)\)/g)].map((m) => m[1]!.split("#")[0]!);
  assert.ok(links.length > 0);
  for (const link of links) assert.ok(existsSync(`${root}${link}`), `README links to ${link}, which does not exist`);
});

test("the README states both commands", () => {
  assert.match(readme, /npm ci && npm run demo/);
  assert.match(readme, /npm ci && npm test/);
});
