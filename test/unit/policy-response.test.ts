import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { evaluateResponse, parsePolicy, type Policy } from "../../shared/policy/index.ts";

function parsed(text: string): Policy {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.policy;
}

const KEY = "AKIAABCDEFGHIJKLMNOP";
const policy = parsed(`policy_version: 1
default: deny
responses:
  max_bytes: 2000
  scan_max_bytes: 1000
  deny_patterns: ["AKIA[0-9A-Z]{16}", "(?i)-----begin [a-z ]*private key-----"]
`);
const result = (text: string) =>
  JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text }] } });

describe("evaluateResponse", () => {
  test("an ordinary response passes", () => {
    assert.deepEqual(evaluateResponse(policy, { text: result("hello") }), {
      decision: "allow",
      rule: "responses",
      reason: "the response passed the response checks",
    });
  });

  test("a response over max_bytes is refused by size, using the given byte count", () => {
    assert.equal(evaluateResponse(policy, { text: result("x"), bytes: 2001 }).rule, "responses.max_bytes");
    const decision = evaluateResponse(parsed("policy_version: 1\ndefault: deny\nresponses: { max_bytes: 10 }\n"), {
      text: "ééééééé",
    });
    assert.deepEqual(
      [decision.decision, decision.reason],
      ["deny", "the response is 14 bytes, over responses.max_bytes 10"],
    );
  });

  test("a deny pattern refuses the response, naming the pattern but not quoting the secret", () => {
    const decision = evaluateResponse(policy, { text: result(`key=${KEY}`) });
    assert.equal(decision.decision, "deny");
    assert.equal(decision.rule, "responses.deny_patterns[0]");
    assert.ok(!decision.reason.includes(KEY), decision.reason);
  });

  test("(?i) makes a pattern case-insensitive", () => {
    assert.equal(
      evaluateResponse(policy, { text: result("-----BEGIN RSA PRIVATE KEY-----") }).rule,
      "responses.deny_patterns[1]",
    );
  });

  test("JSON escapes do not hide a secret", () => {
    const text = result(KEY).replace("AKIA", "\\u0041KIA");
    assert.ok(!text.includes(KEY));
    assert.equal(evaluateResponse(policy, { text }).rule, "responses.deny_patterns[0]");
  });

  test("text that is not JSON is scanned as it is", () => {
    assert.equal(evaluateResponse(policy, { text: `not json: ${KEY}` }).rule, "responses.deny_patterns[0]");
    assert.equal(evaluateResponse(policy, { text: "not json, nothing secret" }).decision, "allow");
  });

  test("text beyond the scan limit is refused, not scanned in part", () => {
    const text = result(`${" ".repeat(1100)}${KEY}`);
    assert.equal(evaluateResponse(policy, { text }).rule, "responses.scan_max_bytes");
    const noPatterns = parsed("policy_version: 1\ndefault: deny\nresponses: { scan_max_bytes: 10 }\n");
    assert.equal(
      evaluateResponse(noPatterns, { text }).decision,
      "allow",
      "without deny patterns nothing needs scanning",
    );
  });
});
