/** Per-backend tool filters (`tools: {allow, deny}`) and their validation in the config schema. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ALLOW_ALL, compileToolFilter } from "../../agent/routing/filter.ts";
import { validateConfigFile } from "../../shared/config/schema.ts";

describe("tool filters", () => {
  test("no filter (or an empty one) exposes everything", () => {
    assert.equal(compileToolFilter(undefined), ALLOW_ALL);
    assert.equal(compileToolFilter({}), ALLOW_ALL);
    assert.equal(ALLOW_ALL.allows("anything"), true);
  });

  test("allow lists what is exposed; deny wins over allow", () => {
    const filter = compileToolFilter({ allow: ["search*", "read_*"], deny: ["*delete*"] });
    assert.equal(filter.active, true);
    const expected: Record<string, boolean> = {
      search: true,
      search_pages: true,
      read_page: true,
      read_and_delete: false,
      searchdelete: false,
      write_page: false,
      Search: false,
      x_search: false,
    };
    for (const [name, allowed] of Object.entries(expected)) assert.equal(filter.allows(name), allowed, name);
  });

  test("deny alone hides only what it matches; ? and escapes work as in the policy language", () => {
    const filter = compileToolFilter({ deny: ["write_?", "literal\\*"] });
    assert.equal(filter.allows("write_a"), false);
    assert.equal(filter.allows("write_ab"), true);
    assert.equal(filter.allows("literal*"), false);
    assert.equal(filter.allows("literally"), true);
  });

  test("an empty allow list exposes nothing", () => {
    assert.equal(compileToolFilter({ allow: [] }).allows("echo"), false);
  });

  test("the config schema refuses unusable globs and names the key path", () => {
    const result = validateConfigFile({
      config_version: 1,
      routes: [
        {
          channel: "main",
          backends: [
            { name: "a", command: "x" },
            { name: "b", command: "y", tools: { allow: ["ok*"], deny: ["", "bad\\"] } },
          ],
        },
      ],
    });
    assert.equal(result.ok, false);
    const issues = result.ok ? [] : result.issues;
    const paths = issues.map((issue) => issue.path);
    assert.ok(paths.includes("routes[0].backends[1].tools.deny[0]"), JSON.stringify(issues));
    assert.ok(paths.includes("routes[0].backends[1].tools.deny[1]"), JSON.stringify(issues));
    assert.equal(issues.length, 2, JSON.stringify(issues));
  });
});
