/**
 * Identity matchers in policy rules: `subjects`, `emails`, `groups`, `clients` (docs/policy.md),
 * in request evaluation, list filtering and parse errors.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  evaluateRequest,
  filterToolList,
  parsePolicy,
  type CallerIdentity,
  type Policy,
  type PolicyDecision,
} from "../../shared/policy/index.ts";

function parsed(text: string): Policy {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.policy;
}

const call = (name: string) => ({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: {} } });

const alice: CallerIdentity = {
  subject: "u-alice",
  email: "Alice@Example.com",
  groups: ["engineering", "oncall"],
  client: "client-cursor",
  method: "oauth",
};
const bob: CallerIdentity = {
  subject: "u-bob",
  email: "bob@example.com",
  groups: ["sales"],
  client: "client-claude",
  method: "oauth",
};
const machine: CallerIdentity = { subject: "token:0123456789ab", groups: [], method: "static_token" };

function judge(policy: Policy, name: string, identity: CallerIdentity | undefined): PolicyDecision {
  return evaluateRequest(policy, { tunnel: "tunnel_a", channel: "main", message: call(name), identity });
}

const POLICY = parsed(`
policy_version: 1
default: deny
rules:
  - name: no-deploy-from-claude
    deny: { tools: [deploy], clients: [client-claude] }
  - name: engineers
    allow: { tools: ["*"], groups: [engineering] }
  - name: bob-reads
    allow: { tools: [read_*], subjects: [u-bob] }
  - name: example-echo
    allow: { tools: [echo], emails: ["*@example.com"] }
`);

describe("identity matchers", () => {
  test("a group admits its members only", () => {
    assert.equal(judge(POLICY, "deploy", alice).rule, "rules[1] (engineers)");
    assert.equal(judge(POLICY, "deploy", alice).decision, "allow");
    assert.equal(judge(POLICY, "write_file", bob).decision, "deny");
  });

  test("subjects, and emails compared without case", () => {
    assert.equal(judge(POLICY, "read_file", bob).rule, "rules[2] (bob-reads)");
    assert.equal(judge(POLICY, "echo", bob).rule, "rules[3] (example-echo)");
    const shouty = { ...bob, email: "BOB@EXAMPLE.COM", subject: "u-other" };
    assert.equal(judge(POLICY, "echo", shouty).decision, "allow");
  });

  test("a deny rule for a client refuses that client only, naming the rule", () => {
    const refused = judge(POLICY, "deploy", { ...alice, client: "client-claude" });
    assert.equal(refused.decision, "deny");
    assert.equal(refused.rule, "rules[0] (no-deploy-from-claude)");
    assert.equal(judge(POLICY, "deploy", alice).decision, "allow");
  });

  test("without an identity (or a static token) no identity rule matches", () => {
    assert.equal(judge(POLICY, "echo", undefined).rule, "default");
    assert.equal(judge(POLICY, "echo", machine).decision, "deny");
    // ...and a deny rule for a client does not catch a caller without one.
    const open = parsed(
      "policy_version: 1\ndefault: allow\nrules:\n  - deny: { tools: [deploy], clients: [client-claude] }\n",
    );
    assert.equal(judge(open, "deploy", machine).decision, "allow");
  });

  test("tools/list shows each caller the tools their rules could allow", () => {
    const list = {
      tools: [
        { name: "echo", inputSchema: {} },
        { name: "read_file", inputSchema: {} },
        { name: "deploy", inputSchema: {} },
      ],
    };
    const names = (identity: CallerIdentity) =>
      (filterToolList(POLICY, { tunnel: "tunnel_a", channel: "main", identity }, list).result as typeof list).tools.map(
        (tool) => tool.name,
      );
    assert.deepEqual(names(alice), ["echo", "read_file", "deploy"]);
    assert.deepEqual(names(bob), ["echo", "read_file"]);
    assert.deepEqual(names(machine), []);
  });

  test("identity matchers are checked like other globs", () => {
    const result = parsePolicy("policy_version: 1\ndefault: deny\nrules:\n  - allow: { groups: [] }\n");
    assert.equal(result.ok, false);
    assert.match(
      result.ok ? "" : result.errors.join("\n"),
      /rules\[0\]\.allow\.groups: expected a list of at least one glob/,
    );
    const typo = parsePolicy("policy_version: 1\ndefault: deny\nrules:\n  - allow: { group: [sales] }\n");
    assert.match(typo.ok ? "" : typo.errors.join("\n"), /did you mean "groups"/);
  });
});
