// Attacks from issue 14 on the policy language, each class through the real evaluator:
// every test here passed the attack on the code before its fix.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  evaluateRequest, evaluateRequestBody, judgeBody, parseJsonStrict, parsePolicy, type Policy, type PolicyDecision,
} from "../../shared/policy/index.ts";

function parsed(text: string): Policy {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.policy;
}

const ctx = { tunnel: "tunnel_a", channel: "main" };
const body = (policy: Policy, text: string): PolicyDecision => evaluateRequestBody(policy, { ...ctx, body: text });
const callText = (name: string, argumentsText: string) => `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${name}","arguments":${argumentsText}}}`;

function denied(decision: PolicyDecision, rule: string, reason?: RegExp): void {
  assert.equal(decision.decision, "deny", `expected a denial, got: ${decision.reason}`);
  assert.equal(decision.rule, rule, decision.reason);
  if (reason) assert.match(decision.reason, reason);
}

describe("class: values JSON cannot carry exactly", () => {
  const limits = parsed(`policy_version: 1
default: deny
rules:
  - allow: { tools: ["sleep"], arguments: { duration: { maximum: 3 } } }
  - allow: { tools: ["echo"] }
`);
  const blocks = parsed(`policy_version: 1
default: allow
rules:
  - name: no-big-transfers
    deny: { tools: ["transfer"], arguments: { amount: { minimum: 9007199254740993 } } }
`);

  test("-1e999 does not satisfy maximum: 3, in a raw body or an already parsed message", () => {
    denied(body(limits, callText("sleep", '{"duration":-1e999}')), "guard:inexact-json", /-1e999 is too large for a double .* at \$\.params\.arguments\.duration/);
    denied(evaluateRequest(limits, { ...ctx, message: JSON.parse(callText("sleep", '{"duration":-1e999}')) }), "guard:inexact-json", /-Infinity/);
    assert.equal(body(limits, callText("sleep", '{"duration":2.5}')).decision, "allow");
  });

  test("an integer a double rounds cannot slip under a deny rule's minimum", () => {
    // 9007199254740993 reads as …992 in JavaScript, below the minimum, yet Python and Go's json.Number keep …993.
    denied(body(blocks, callText("transfer", '{"amount":9007199254740993}')), "guard:inexact-json", /9007199254740993 has no exact double/);
    denied(body(blocks, callText("transfer", '{"amount":9007199254740994}')), "rules[0] (no-big-transfers)");
  });

  test("lone surrogates in strings and keys are refused; paired ones pass", () => {
    denied(body(blocks, callText("echo", '{"message":"\\ud800"}')), "guard:inexact-json", /lone UTF-16 surrogate, which UTF-8 cannot carry at \$\.params\.arguments\.message/);
    denied(body(blocks, callText("echo", '{"\\udfff":"x"}')), "guard:inexact-json", /key with a lone UTF-16 surrogate/);
    assert.equal(body(blocks, callText("echo", '{"message":"\\ud83d\\ude00"}')).decision, "allow");
  });

  test("numbers every decoder reads alike pass: fractions, exponents, underflow, exact large integers", () => {
    for (const literal of ["1.5", "1e21", "1e-400", "1000000000000000000000", "-0", "9007199254740991"]) {
      assert.equal(parseJsonStrict(`{"n":${literal}}`).ok, true, literal);
    }
    for (const literal of ["12345678901234567890000", "1e309", "-1E400"]) {
      const result = parseJsonStrict(`[0,{"n":${literal}}]`);
      assert.equal(result.ok, false, literal);
      if (!result.ok) assert.deepEqual([result.problem, result.path], ["inexact", "$[1].n"]);
    }
  });

  test("without a policy the body still has to be exact (what the audit log records is what the backend reads)", () => {
    denied(judgeBody(undefined, { ...ctx, body: callText("echo", '{"n":1e999}') }), "guard:inexact-json");
    denied(judgeBody(undefined, { ...ctx, body: '{"a":1,"a":2}' }), "guard:duplicate-keys");
    assert.equal(judgeBody(undefined, { ...ctx, body: callText("echo", '{"n":1}') }).decision, "allow");
  });
});
