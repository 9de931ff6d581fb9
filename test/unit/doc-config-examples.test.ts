/**
 * Every configuration example in README.md and docs/*.md is loaded as the product would
 * load it: agent configurations through the agent's loader (with the `env:` references they
 * name set, and only what a snippet leaves out — tunnel id, key, an MCP server — supplied by
 * the environment), policies through the policy parser. A snippet the loader rejects fails
 * here, naming the file and line.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../../agent/config/load.ts";
import { parsePolicy } from "../../shared/policy/parse.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const TUNNEL = "tunnel_0123456789abcdef0123456789abcdef";

interface Example {
  where: string;
  text: string;
}

/** Every ```yaml block of the README and docs/, with its file and line. */
function examples(): Example[] {
  const files = [
    "README.md",
    ...readdirSync(join(root, "docs"))
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((f) => `docs/${f}`),
  ];
  return files.flatMap((file) => {
    const text = readFileSync(join(root, file), "utf8");
    return [...text.matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)].map((match) => ({
      where: `${file}:${text.slice(0, match.index).split("\n").length}`,
      text: match[1]!,
    }));
  });
}

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-doc-examples-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The environment an agent example needs: its `env:` references set, and what the snippet leaves out. */
function environment(text: string, value: Record<string, unknown>): Record<string, string> {
  const env: Record<string, string> = { HOME: dir };
  for (const [, name] of text.matchAll(/env:([A-Za-z_][A-Za-z0-9_]*)/g)) env[name!] = `value-of-${name}`;
  const controlPlane = (value.control_plane ?? {}) as Record<string, unknown>;
  const mcp = (value.mcp ?? {}) as Record<string, unknown>;
  if (controlPlane.tunnel_id === undefined) env.CONTROL_PLANE_TUNNEL_ID = TUNNEL;
  if (controlPlane.api_key === undefined) env.CONTROL_PLANE_API_KEY = "sk-doc-example";
  if (value.routes === undefined && mcp.commands === undefined && mcp.server_urls === undefined) {
    env.MCP_COMMAND = "npx -y @modelcontextprotocol/server-everything stdio";
  }
  return env;
}

test("the docs have configuration examples to check", () => {
  const all = examples();
  assert.ok(
    all.some((e) => e.where.startsWith("README.md")),
    "README has a configuration example",
  );
  assert.ok(
    all.some((e) => /^policy_version:/m.test(e.text)),
    "docs have policy examples",
  );
});

test("every agent configuration example in README.md and docs/ loads", async () => {
  const agentExamples = examples().filter((e) => !/^policy_version:/m.test(e.text));
  assert.ok(agentExamples.length >= 4);
  for (const [index, example] of agentExamples.entries()) {
    const value = parseYaml(example.text) as Record<string, unknown>;
    const file = join(dir, `example-${index}.yaml`);
    await writeFile(file, example.text);
    await assert.doesNotReject(
      loadConfig({ argv: ["--config", file], env: environment(example.text, value), cwd: dir }),
      (error: Error) => assert.fail(`${example.where}: the example does not load: ${error.message}`),
    );
  }
});

test("every policy example in README.md and docs/ parses", () => {
  const policies = examples().filter((e) => /^policy_version:/m.test(e.text));
  for (const example of policies) {
    const result = parsePolicy(example.text, { source: example.where });
    assert.ok(result.ok, `${example.where}: ${result.ok ? "" : result.errors.join("; ")}`);
  }
});
