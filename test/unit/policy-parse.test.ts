import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { compilePolicy, parsePolicy, type Policy } from "../../shared/policy/index.ts";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/policies/${name}`, import.meta.url), "utf8");

function errorsOf(text: string): string[] {
  const result = parsePolicy(text);
  assert.equal(result.ok, false, "expected the policy to be rejected");
  return result.ok ? [] : result.errors;
}

function parsed(text: string): Policy {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.policy;
}

const HEAD = "policy_version: 1\ndefault: deny\n";

describe("parsePolicy", () => {
  test("the issue's example parses into three allow rules, response checks and a redaction path", () => {
    const policy = parsed(fixture("example.yaml"));
    assert.equal(policy.default, "deny");
    assert.deepEqual(
      policy.rules.map((rule) => [rule.label, rule.effect]),
      [
        ["rules[0]", "allow"],
        ["rules[1]", "allow"],
        ["rules[2]", "allow"],
      ],
    );
    assert.equal(policy.responses.maxBytes, 1048576);
    assert.deepEqual(
      policy.responses.denyPatterns.map((pattern) => pattern.source),
      ["AKIA[0-9A-Z]{16}"],
    );
    assert.deepEqual(policy.redact, [
      [
        { kind: "key", key: "arguments" },
        { kind: "key", key: "message" },
      ],
    ]);
    assert.equal(policy.pinning, "flag", "pinning defaults to flag");
    assert.equal(policy.replies, "allow");
  });

  test("a JSON policy using every key parses; named rules carry their names in labels", () => {
    const policy = parsed(fixture("full.json"));
    assert.deepEqual(
      policy.rules.map((rule) => rule.label),
      [
        "rules[0] (no-writes-outside-docs)",
        "rules[1] (handshake)",
        "rules[2] (read-docs)",
        "rules[3] (docs-resources)",
        "rules[4] (greeting)",
      ],
    );
    assert.equal(policy.pinning, "block");
    assert.equal(policy.requestMaxBytes, 1048576);
    assert.equal(policy.responses.scanMaxBytes, 2097152);
    assert.equal(policy.rules[2]?.maxRequestBytes, 65536);
  });

  test("errors name the path of every mistake", () => {
    const errors = errorsOf(fixture("invalid.yaml"));
    const expected = [
      /^policy_version: expected 1/,
      /^default: expected allow or deny$/,
      /^rules\[0\]\.allow\.tools: expected a list of globs$/,
      /^rules\[1\]\.allow: unknown key "tool"; did you mean "tools"\?$/,
      /^rules\[2\]: a rule has exactly one of allow: or deny:$/,
      /^rules\[3\]\.allow\.arguments\.n\.maximum: expected a number$/,
      /^rules\[4\]\.allow\.arguments\.p\.pattern: not a regular expression RE2 can match in linear time \(.*\\1.*\); lookaround and backreferences are not supported$/,
      /^responses\.deny_patterns\[0\]: not a regular expression RE2 can match/,
      /^audit\.redact\[0\]: redaction paths start with 'arguments'/,
      /^tool_pinning\.mode: expected block, flag or off$/,
    ];
    for (const pattern of expected)
      assert.ok(
        errors.some((line) => pattern.test(line)),
        `missing ${pattern} in:\n${errors.join("\n")}`,
      );
    assert.equal(errors.length, expected.length, errors.join("\n"));
  });

  test("unknown keys are errors at every level, including inside argument constraints", () => {
    assert.deepEqual(errorsOf(`${HEAD}rules: []\nrule: []\n`), [
      '(top level): unknown key "rule"; did you mean "rules"?',
    ]);
    assert.deepEqual(errorsOf(`${HEAD}rules:\n  - allow: { tools: [x], arguments: { n: { maximun: 3 } } }\n`), [
      'rules[0].allow.arguments.n: unknown key "maximun"; did you mean "maximum"?',
    ]);
    assert.deepEqual(errorsOf(`${HEAD}responses: { max_byte: 10 }\n`), [
      'responses: unknown key "max_byte"; did you mean "max_bytes"?',
    ]);
  });

  test("policy_version and default are required", () => {
    assert.deepEqual(errorsOf("rules: []\n"), [
      "policy_version: expected 1 (the only policy version this Airlock understands)",
      "default: expected allow or deny",
    ]);
  });

  test("YAML syntax errors and duplicate keys are reported with line numbers, prefixed by the source", () => {
    const duplicate = parsePolicy(`${HEAD}default: allow\n`, { source: "policy.yaml" });
    assert.ok(
      !duplicate.ok && /^policy\.yaml: Map keys must be unique at line 3/.test(duplicate.errors[0] ?? ""),
      JSON.stringify(duplicate),
    );
    const syntax = parsePolicy(`${HEAD}rules: [\n`);
    assert.ok(!syntax.ok && /line \d+/.test(syntax.errors[0] ?? ""));
  });

  test("rules that could never match are refused", () => {
    assert.match(
      errorsOf(`${HEAD}rules:\n  - allow: { tools: [x], prompts: [y] }\n`)[0] ?? "",
      /tools and prompts cannot both match/,
    );
    assert.match(
      errorsOf(`${HEAD}rules:\n  - allow: { methods: [ping], tools: [x] }\n`)[0] ?? "",
      /^rules\[0\]\.allow\.methods: none of these methods carries tools/,
    );
    assert.match(
      errorsOf(`${HEAD}rules:\n  - allow: { methods: [ping], arguments: { a: { const: 1 } } }\n`)[0] ?? "",
      /arguments are only carried by tools\/call and prompts\/get/,
    );
    assert.match(
      errorsOf(`${HEAD}rules:\n  - deny: { methods: [ping], max_request_bytes: 10 }\n`)[0] ?? "",
      /use requests\.max_bytes/,
    );
  });

  test("argument constraints are validated: keyword types, contradictions and prefixes", () => {
    const check = (constraint: string) =>
      errorsOf(`${HEAD}rules:\n  - allow: { tools: [x], arguments: { a: ${constraint} } }\n`)[0] ?? "";
    assert.match(check("{ type: string, maximum: 3 }"), /maximum applies to number values, but type is string/);
    assert.match(check("{ minimum: 5, maximum: 3 }"), /minimum is above maximum/);
    assert.match(check("{ maximum: 3, prefix: /srv }"), /mixes keywords for different types/);
    assert.match(check("{ prefix: /../etc }"), /climbs above its start/);
    assert.match(check("{ type: text }"), /expected a type name or a list of them/);
    assert.equal(
      parsePolicy(`${HEAD}rules:\n  - allow: { tools: [x], arguments: { a: { pattern: '(\\\\w+\\\\s?)*$' } } }\n`).ok,
      true,
      "nested quantifiers are linear on RE2",
    );
    assert.match(check("{ pattern: '(a)\\1' }"), /backreferences are not supported/);
    assert.match(check("{ enum: [] }"), /at least one value/);
  });

  test("globs and rule names are validated", () => {
    assert.match(
      errorsOf(`${HEAD}rules:\n  - allow: { methods: [""] }\n`)[0] ?? "",
      /^rules\[0\]\.allow\.methods\[0\]: a glob cannot be empty/,
    );
    assert.match(errorsOf(`${HEAD}rules:\n  - allow: { methods: [] }\n`)[0] ?? "", /at least one glob/);
    assert.match(
      errorsOf(`${HEAD}rules:\n  - name: "has space"\n    allow: {}\n`)[0] ?? "",
      /^rules\[0\]\.name: a rule name uses/,
    );
  });

  test("compilePolicy accepts an object built in code and applies defaults", () => {
    const result = compilePolicy({ policy_version: 1, default: "allow" });
    assert.ok(result.ok);
    assert.deepEqual(result.policy.rules, []);
    assert.equal(result.policy.responses.scanMaxBytes, 4 * 1024 * 1024);
  });

  test("every YAML example in docs/policy.md parses", () => {
    const doc = readFileSync(new URL("../../docs/policy.md", import.meta.url), "utf8");
    const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] as string);
    assert.ok(examples.length >= 5, `found ${examples.length} examples`);
    for (const example of examples) parsed(example);
  });
});
