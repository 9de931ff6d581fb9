import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { filterListResult, filterToolList, parsePolicy, type Policy } from "../../shared/policy/index.ts";

function parsed(text: string): Policy {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.policy;
}

const ctx = { tunnel: "tunnel_a", channel: "main" };
const names = (result: unknown, field = "tools", key = "name") =>
  ((result as Record<string, Array<Record<string, string>>>)[field] ?? []).map((entry) => entry[key]);

describe("filterToolList", () => {
  const example = parsed(readFileSync(new URL("../fixtures/policies/example.yaml", import.meta.url), "utf8"));
  const tools = ["echo", "get-sum", "trigger-long-running-operation", "print-env", "get-tiny-image"].map((name) => ({
    name,
    inputSchema: { type: "object" },
  }));

  test("tools no call could use are removed; tools allowed only with some arguments stay; other fields are kept", () => {
    const filtered = filterToolList(example, ctx, { tools, nextCursor: "c2" });
    assert.deepEqual(names(filtered.result), ["echo", "get-sum", "trigger-long-running-operation"]);
    assert.equal((filtered.result as { nextCursor: string }).nextCursor, "c2");
    assert.deepEqual(
      filtered.removed.map((entry) => [entry.name, entry.rule]),
      [
        ["print-env", "default"],
        ["get-tiny-image", "default"],
      ],
    );
  });

  test("deny rules hide a tool unless they only constrain arguments", () => {
    const policy = parsed(`policy_version: 1
default: allow
rules:
  - deny: { tools: ["delete_*"] }
  - deny: { tools: ["write_file"], arguments: { path: { prefix: /etc } } }
`);
    const filtered = filterToolList(policy, ctx, {
      tools: [{ name: "delete_all" }, { name: "DELETE_ONE" }, { name: "write_file" }, { name: "read" }],
    });
    assert.deepEqual(names(filtered.result), ["write_file", "read"]);
  });

  test("look-alike names and entries without a name are removed", () => {
    const policy = parsed('policy_version: 1\ndefault: deny\nrules:\n  - allow: { tools: ["*"] }\n');
    const filtered = filterToolList(policy, ctx, {
      tools: [
        { name: "echo" },
        { name: "ech\u200Bo" },
        { name: "\u0435cho" },
        { description: "no name" },
        "echo",
        { name: 5 },
      ],
    });
    assert.deepEqual(names(filtered.result), ["echo"]);
    assert.equal(filtered.removed.length, 5);
  });

  test("blocked names (tool pinning) are removed with their reason", () => {
    const filtered = filterToolList(
      example,
      ctx,
      { tools },
      { blocked: new Map([["echo", { rule: "tool_pinning", reason: "drift" }]]) },
    );
    assert.deepEqual(names(filtered.result), ["get-sum", "trigger-long-running-operation"]);
    assert.deepEqual(filtered.removed[0], { name: "echo", rule: "tool_pinning", reason: "drift" });
  });

  test("a result of another shape comes back unchanged", () => {
    assert.deepEqual(filterToolList(example, ctx, { tools: "nope" }), { result: { tools: "nope" }, removed: [] });
    assert.deepEqual(filterToolList(example, ctx, null), { result: null, removed: [] });
  });

  test("filtering depends on the channel", () => {
    const policy = parsed(
      "policy_version: 1\ndefault: deny\nrules:\n  - allow: { channels: [docs], tools: [search] }\n",
    );
    assert.deepEqual(
      names(filterToolList(policy, { ...ctx, channel: "docs" }, { tools: [{ name: "search" }] }).result),
      ["search"],
    );
    assert.deepEqual(names(filterToolList(policy, ctx, { tools: [{ name: "search" }] }).result), []);
  });
});

describe("filterListResult for prompts and resources", () => {
  const policy = parsed(readFileSync(new URL("../fixtures/policies/prompts-resources.yaml", import.meta.url), "utf8"));

  test("prompts/list", () => {
    const filtered = filterListResult(policy, ctx, "prompts/list", {
      prompts: [{ name: "greeting" }, { name: "leak" }],
    });
    assert.deepEqual(names(filtered.result, "prompts"), ["greeting"]);
  });

  test("resources/list and resources/templates/list", () => {
    const resources = filterListResult(policy, ctx, "resources/list", {
      resources: [
        { uri: "file:///srv/docs/a", name: "a" },
        { uri: "file:///etc/passwd", name: "p" },
        { uri: "file:///srv/docs/../../etc/shadow", name: "s" },
      ],
    });
    assert.deepEqual(names(resources.result, "resources", "uri"), ["file:///srv/docs/a"]);
    const templates = filterListResult(policy, ctx, "resources/templates/list", {
      resourceTemplates: [
        { uriTemplate: "file:///srv/docs/{path}", name: "d" },
        { uriTemplate: "file:///{path}", name: "all" },
      ],
    });
    assert.deepEqual(names(templates.result, "resourceTemplates", "uriTemplate"), ["file:///srv/docs/{path}"]);
  });
});
