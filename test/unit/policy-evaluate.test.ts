import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  denialFor,
  describeMessage,
  evaluateRequest,
  parsePolicy,
  POLICY_DENIED_CODE,
  type Policy,
  type PolicyDecision,
} from "../../shared/policy/index.ts";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/policies/${name}`, import.meta.url), "utf8");

function parsed(text: string): Policy {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.policy;
}

const call = (name: string, args?: unknown) => ({
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: args === undefined ? { name } : { name, arguments: args },
});
const rpc = (method: string, params?: unknown) => ({
  jsonrpc: "2.0",
  id: 1,
  method,
  ...(params === undefined ? {} : { params }),
});

function check(
  policy: Policy,
  message: unknown,
  ctx: Partial<{ tunnel: string; channel: string; rawBytes: number }> = {},
): PolicyDecision {
  return evaluateRequest(policy, { tunnel: "tunnel_a", channel: "main", message, ...ctx });
}

function allowed(policy: Policy, message: unknown, rule?: string): void {
  const decision = check(policy, message);
  assert.equal(decision.decision, "allow", decision.reason);
  if (rule) assert.equal(decision.rule, rule);
}

function denied(policy: Policy, message: unknown, rule?: string | RegExp, reason?: RegExp): PolicyDecision {
  const decision = check(policy, message);
  assert.equal(decision.decision, "deny", `expected a denial, got: ${decision.reason}`);
  if (typeof rule === "string") assert.equal(decision.rule, rule);
  else if (rule) assert.match(decision.rule, rule);
  if (reason) assert.match(decision.reason, reason);
  return decision;
}

describe("the issue's example policy means what it says", () => {
  const policy = parsed(fixture("example.yaml"));

  test("handshake, notifications, ping and tools/list are allowed by the first rule", () => {
    allowed(
      policy,
      rpc("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } }),
      "rules[0]",
    );
    allowed(policy, { jsonrpc: "2.0", method: "notifications/initialized" }, "rules[0]");
    allowed(policy, { jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "x" } }, "rules[0]");
    allowed(policy, rpc("ping"), "rules[0]");
    allowed(policy, rpc("tools/list"), "rules[0]");
  });

  test("echo and get-sum may be called with any arguments; other tools may not", () => {
    allowed(policy, call("echo", { message: "hi" }), "rules[1]");
    allowed(policy, call("get-sum", { a: 1, b: 2 }), "rules[1]");
    denied(policy, call("print-env"), "default", /no rule allows tools\/call "print-env"; the default is deny/);
    denied(policy, call("Echo"), "default");
  });

  test("trigger-long-running-operation only with a duration of at most 3", () => {
    allowed(policy, call("trigger-long-running-operation", { duration: 3, steps: 5 }), "rules[2]");
    allowed(policy, call("trigger-long-running-operation", { duration: 0.5 }), "rules[2]");
    denied(
      policy,
      call("trigger-long-running-operation", { duration: 4 }),
      "default",
      /rules\[2\] did not apply: arguments\.duration: 4 is above the maximum 3/,
    );
    // The server defaults a missing duration to 10 seconds: absence must not pass.
    denied(policy, call("trigger-long-running-operation", { steps: 5 }), "default", /arguments\.duration: missing/);
    denied(policy, call("trigger-long-running-operation"), "default", /arguments\.duration: missing/);
    // A server might coerce "10"; the policy does not.
    denied(
      policy,
      call("trigger-long-running-operation", { duration: "10" }),
      "default",
      /expected a number, got string/,
    );
    denied(policy, call("trigger-long-running-operation", { duration: null }), "default");
  });

  test("methods nobody allowed are denied", () => {
    for (const method of [
      "resources/read",
      "prompts/get",
      "logging/setLevel",
      "sampling/createMessage",
      "tools/list2",
    ]) {
      denied(policy, rpc(method, { name: "x", uri: "x" }), "default");
    }
  });
});

describe("evaluation order: deny rules first, then the first matching allow rule, then default", () => {
  const policy = parsed(`policy_version: 1
default: deny
rules:
  - name: anything-goes
    allow: { methods: ["*"] }
  - name: no-deletes
    deny: { tools: ["delete_*"] }
  - name: second-allow
    allow: { tools: ["delete_*"] }
`);

  test("a deny rule overrides an earlier allow rule", () => {
    denied(
      policy,
      call("delete_everything"),
      "rules[1] (no-deletes)",
      /rules\[1\] \(no-deletes\) denies tools\/call "delete_everything"/,
    );
  });

  test("among allow rules the first match names the decision", () => {
    allowed(policy, call("read"), "rules[0] (anything-goes)");
  });

  test("default allow admits what no deny rule matches, and deny rules still apply", () => {
    const open = parsed(
      'policy_version: 1\ndefault: allow\nrules:\n  - deny: { methods: ["tools/call"], tools: ["rm"] }\n',
    );
    allowed(open, call("ls"), "default");
    denied(open, call("rm"), "rules[0]");
  });

  test("an empty matcher matches everything", () => {
    denied(parsed("policy_version: 1\ndefault: allow\nrules:\n  - deny: {}\n"), rpc("ping"), "rules[0]");
  });
});

describe("matchers", () => {
  test("tunnels and channels are globs", () => {
    const policy = parsed(`policy_version: 1
default: deny
rules:
  - allow: { tunnels: ["tunnel_a*"], channels: ["docs-*"], methods: ["ping"] }
`);
    assert.equal(check(policy, rpc("ping"), { channel: "docs-eu" }).decision, "allow");
    assert.equal(check(policy, rpc("ping"), { channel: "main" }).decision, "deny");
    assert.equal(check(policy, rpc("ping"), { channel: "docs-eu", tunnel: "tunnel_b" }).decision, "deny");
  });

  test("prompts match prompts/get and prompt completions; resources match reads, subscriptions and resource completions", () => {
    const policy = parsed(fixture("prompts-resources.yaml"));
    allowed(policy, rpc("prompts/get", { name: "greeting" }), "rules[0]");
    denied(policy, rpc("prompts/get", { name: "exfiltrate" }));
    allowed(
      policy,
      rpc("completion/complete", { ref: { type: "ref/prompt", name: "greeting" }, argument: { name: "a", value: "" } }),
      "rules[0]",
    );
    denied(
      policy,
      rpc("completion/complete", { ref: { type: "ref/prompt", name: "other" }, argument: { name: "a", value: "" } }),
    );
    allowed(policy, rpc("resources/read", { uri: "file:///srv/docs/readme.md" }), "rules[1]");
    allowed(policy, rpc("resources/subscribe", { uri: "file:///srv/docs/a/b.md" }), "rules[1]");
    allowed(policy, rpc("resources/read", { uri: "file:///srv/docs/привет.md" }), "rules[1]");
    denied(policy, rpc("resources/read", { uri: "file:///srv/docs/a\u200B.md" }), "default", /invisible/);
    denied(policy, rpc("resources/read", { uri: "file:///etc/passwd" }));
    denied(policy, rpc("resources/read", { uri: "file:///srv/docs/../../etc/passwd" }));
    denied(policy, rpc("resources/read", { uri: "file:///srv/docs/%2e%2e/%2e%2e/etc/passwd" }));
    denied(policy, rpc("resources/read", { uri: "file:///srv/docs/%252e%252e/secret" }));
    allowed(
      policy,
      rpc("completion/complete", {
        ref: { type: "ref/resource", uri: "file:///srv/docs/x" },
        argument: { name: "a", value: "" },
      }),
      "rules[1]",
    );
  });

  test("a rule's max_request_bytes bounds what it admits", () => {
    const policy = parsed(
      "policy_version: 1\ndefault: deny\nrules:\n  - allow: { tools: [upload], max_request_bytes: 200 }\n",
    );
    allowed(policy, call("upload", { data: "x" }));
    denied(policy, call("upload", { data: "x".repeat(300) }), "default", /over its max_request_bytes 200/);
    assert.equal(
      check(policy, call("upload", { data: "x" }), { rawBytes: 201 }).decision,
      "deny",
      "the raw size counts, not the re-serialised one",
    );
  });
});

describe("argument constraints", () => {
  const policy = parsed(`policy_version: 1
default: deny
rules:
  - name: read
    allow:
      tools: [read_file]
      arguments:
        path: { prefix: /srv/docs }
        encoding: { enum: [utf8, base64], optional: true }
        limit: { type: integer, minimum: 1, maximum: 100, optional: true }
      additional_arguments: false
  - name: search
    allow:
      tools: [search]
      arguments:
        query: { type: string, minLength: 1, maxLength: 10, pattern: "^[a-z ]+$" }
        tags: { items: { enum: [a, b] }, maxItems: 2, optional: true }
        options:
          optional: true
          additional: false
          properties:
            root: { prefix: "file:///srv/docs" }
            depth: { const: 1, optional: true }
`);

  test("prefix holds for paths under it, on a segment boundary", () => {
    allowed(policy, call("read_file", { path: "/srv/docs/a.md" }), "rules[0] (read)");
    allowed(policy, call("read_file", { path: "/srv/docs" }));
    allowed(policy, call("read_file", { path: "/srv/docs/./sub//b.md" }));
    allowed(policy, call("read_file", { path: "/srv/docs/sub/../c.md" }));
    denied(policy, call("read_file", { path: "/srv/docs-private/a.md" }), "default", /outside "\/srv\/docs"/);
    denied(policy, call("read_file", { path: "docs/a.md" }));
  });

  test("prefix is checked after resolving .. and percent-encoding, so traversal fails", () => {
    for (const path of [
      "/srv/docs/../secrets/key",
      "/srv/docs/sub/../../secrets",
      "/srv/docs/..",
      "/srv/docs/%2e%2e/secrets",
      "/srv/docs/%2E%2E%2Fsecrets",
      "/srv/docs/%252e%252e/secrets",
      "/srv/docs\\..\\secrets",
      "/srv/docs/../../../../../../etc/passwd",
      "/srv/docs/a\u0000.md",
      "/srv/docs/%E0%A4%A",
    ]) {
      denied(policy, call("read_file", { path }), "default", /rules\[0\] \(read\) did not apply/);
    }
  });

  test("enum, integer bounds and additional_arguments: false", () => {
    allowed(policy, call("read_file", { path: "/srv/docs/a", encoding: "utf8", limit: 100 }));
    denied(policy, call("read_file", { path: "/srv/docs/a", encoding: "latin1" }), "default", /not one of/);
    denied(policy, call("read_file", { path: "/srv/docs/a", limit: 101 }), "default", /above the maximum 100/);
    denied(policy, call("read_file", { path: "/srv/docs/a", limit: 1.5 }), "default", /expected integer/);
    denied(
      policy,
      call("read_file", { path: "/srv/docs/a", follow_symlinks: true }),
      "default",
      /arguments\.follow_symlinks: not an allowed argument/,
    );
  });

  test("string lengths, patterns, arrays and nested objects", () => {
    allowed(
      policy,
      call("search", { query: "hello", tags: ["a"], options: { root: "file:///srv/docs/x", depth: 1 } }),
      "rules[1] (search)",
    );
    denied(policy, call("search", { query: "" }), "default", /shorter than 1/);
    denied(policy, call("search", { query: "much too long" }), "default", /longer than 10/);
    denied(policy, call("search", { query: "Hello!" }), "default", /does not match/);
    denied(
      policy,
      call("search", { query: "a", tags: ["a", "c"] }),
      "default",
      /arguments\.tags\[1\]: "c" is not one of/,
    );
    denied(policy, call("search", { query: "a", tags: ["a", "b", "a"] }), "default", /more than 2 items/);
    denied(
      policy,
      call("search", { query: "a", options: { root: "file:///srv/docs/../etc" } }),
      "default",
      /arguments\.options\.root/,
    );
    denied(
      policy,
      call("search", { query: "a", options: { root: "file:///srv/docs/x", depth: 2 } }),
      "default",
      /arguments\.options\.depth: 2 is not 1/,
    );
    denied(
      policy,
      call("search", { query: "a", options: { root: "file:///srv/docs/x", recursive: true } }),
      "default",
      /arguments\.options\.recursive: not an allowed argument/,
    );
    denied(
      policy,
      call("search", { query: "a", options: { depth: 1 } }),
      "default",
      /arguments\.options\.root: missing/,
    );
    denied(policy, call("search", { query: "a", options: "file:///srv/docs" }), "default", /expected an object/);
  });

  test("non-object arguments never satisfy constraints", () => {
    denied(policy, call("read_file", ["/srv/docs/a"]), "default", /arguments: expected object, got array/);
    denied(policy, call("read_file", "/srv/docs/a"), "default");
  });

  test("deny rules constrain too, and treat values they cannot judge as a match", () => {
    const guard = parsed(`policy_version: 1
default: allow
rules:
  - deny: { tools: [write_file], arguments: { path: { prefix: /etc } } }
`);
    denied(guard, call("write_file", { path: "/etc/passwd" }), "rules[0]");
    denied(guard, call("write_file", { path: "/srv/../etc/passwd" }), "rules[0]");
    denied(guard, call("write_file", { path: "/srv/%2e%2e/etc/passwd" }), "rules[0]");
    denied(guard, call("write_file", { path: "/ETC/passwd" }), "rules[0]", undefined);
    denied(guard, call("write_file", { path: "/../../etc/passwd" }), "rules[0]", undefined);
    denied(guard, call("write_file", { path: ["/etc/passwd"] }), "rules[0]");
    allowed(guard, call("write_file", { path: "/srv/data/x" }), "default");
    allowed(guard, call("write_file", {}), "default");
  });
});

describe("helpers for the relay and the audit log", () => {
  const policy = parsed(fixture("example.yaml"));

  test("describeMessage names method, target and arguments", () => {
    assert.deepEqual(describeMessage(call("echo", { message: "hi" })), {
      method: "tools/call",
      target_kind: "tool",
      target: "echo",
      arguments: { message: "hi" },
    });
    assert.deepEqual(describeMessage(rpc("resources/read", { uri: "file:///a" })), {
      method: "resources/read",
      target_kind: "resource",
      target: "file:///a",
      arguments: undefined,
    });
    assert.deepEqual(describeMessage(rpc("tools/call", ["x"])), {
      method: "tools/call",
      target_kind: null,
      target: null,
      arguments: undefined,
    });
    assert.deepEqual(describeMessage("junk"), { method: null, target_kind: null, target: null, arguments: undefined });
  });

  test("denialFor answers each request id with an error naming the rule; notifications get nothing", () => {
    const decision = check(policy, call("print-env"));
    const answer = denialFor(call("print-env"), decision) as {
      id: number;
      error: { code: number; message: string; data: { rule: string } };
    };
    assert.equal(answer.id, 1);
    assert.equal(answer.error.code, POLICY_DENIED_CODE);
    assert.match(answer.error.message, /^Refused by policy \(default\): no rule allows tools\/call "print-env"/);
    assert.equal(answer.error.data.rule, "default");
    const batch = [rpc("ping"), { jsonrpc: "2.0", method: "notifications/x" }, { ...call("print-env"), id: "b" }];
    assert.deepEqual(
      (denialFor(batch, decision) as Array<{ id: unknown }>).map((item) => item.id),
      [1, "b"],
    );
    assert.equal(denialFor({ jsonrpc: "2.0", method: "tools/call", params: { name: "x" } }, decision), undefined);
  });
});
