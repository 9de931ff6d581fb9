// Attacks from issue 14 on the policy language, each class through the real evaluator:
// every test here passed the attack on the code before its fix.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  evaluateRequest,
  evaluateRequestBody,
  evaluateResponse,
  judgeBody,
  parseJsonStrict,
  parsePolicy,
  type Policy,
  type PolicyDecision,
} from "../../shared/policy/index.ts";

function parsed(text: string): Policy {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.policy;
}

const ctx = { tunnel: "tunnel_a", channel: "main" };
const body = (policy: Policy, text: string): PolicyDecision => evaluateRequestBody(policy, { ...ctx, body: text });
const callText = (name: string, argumentsText: string) =>
  `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${name}","arguments":${argumentsText}}}`;

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
    denied(
      body(limits, callText("sleep", '{"duration":-1e999}')),
      "guard:inexact-json",
      /-1e999 is too large for a double .* at \$\.params\.arguments\.duration/,
    );
    denied(
      evaluateRequest(limits, { ...ctx, message: JSON.parse(callText("sleep", '{"duration":-1e999}')) }),
      "guard:inexact-json",
      /-Infinity/,
    );
    assert.equal(body(limits, callText("sleep", '{"duration":2.5}')).decision, "allow");
  });

  test("an integer a double rounds cannot slip under a deny rule's minimum", () => {
    // 9007199254740993 reads as …992 in JavaScript, below the minimum, yet Python and Go's json.Number keep …993.
    denied(
      body(blocks, callText("transfer", '{"amount":9007199254740993}')),
      "guard:inexact-json",
      /9007199254740993 has no exact double/,
    );
    denied(body(blocks, callText("transfer", '{"amount":9007199254740994}')), "rules[0] (no-big-transfers)");
  });

  test("lone surrogates in strings and keys are refused; paired ones pass", () => {
    denied(
      body(blocks, callText("echo", '{"message":"\\ud800"}')),
      "guard:inexact-json",
      /lone UTF-16 surrogate, which UTF-8 cannot carry at \$\.params\.arguments\.message/,
    );
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

describe("class: path-prefix escapes (paths are read as the backend reads them)", () => {
  const confined = parsed(`policy_version: 1
default: deny
rules:
  - allow: { tools: ["read_text_file"], arguments: { path: { prefix: /srv/docs } } }
  - allow: { tools: ["fetch"], arguments: { url: { prefix: "https://api.example/v1" } } }
  - allow: { methods: ["resources/read"], resources: ["file:///srv/docs/*"] }
`);
  const guarded = parsed(`policy_version: 1
default: allow
rules:
  - name: no-etc
    deny: { tools: ["*"], arguments: { path: { prefix: /etc } } }
`);
  const read = (policy: Policy, path: string) =>
    evaluateRequest(policy, {
      ...ctx,
      message: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "read_text_file", arguments: { path } } },
    });

  test("'?' and '#' are name characters in a path: docs?/../secret is /srv/secret", () => {
    for (const attempt of ["/srv/docs?/../secret.txt", "/srv/docs#/../secret.txt", "/srv/docs?x=/../../secret.txt"]) {
      denied(read(confined, attempt), "default", /outside "\/srv\/docs"/);
    }
    assert.equal(read(confined, "/srv/docs/a?b.txt").decision, "allow", "a name with ? inside the prefix is fine");
    assert.equal(read(confined, "/srv/docs?x").decision, "deny", "docs?x is a sibling of docs, not inside it");
  });

  test("a deny prefix sees through '?', '#', encodings, backslashes, '//', Windows trailing dots and case", () => {
    for (const path of [
      "/tmp?/../etc/passwd",
      "/tmp#/../etc/passwd",
      "/tmp/%2e%2e/etc/passwd",
      "/tmp/%252e%252e/etc/passwd",
      "\\tmp\\..\\etc\\passwd",
      "//etc//passwd",
      "/etc./passwd",
      "/etc /passwd",
      "/ETC/passwd",
      "file:///etc/passwd",
    ]) {
      denied(read(guarded, path), "rules[0] (no-etc)", /denies/);
    }
    assert.equal(read(guarded, "/tmp/etc/passwd").decision, "allow");
  });

  test("what cannot be read one way is refused by allow rules and matched by deny rules", () => {
    for (const path of [
      "/srv/docs/.../secret",
      "/srv/docs/.. /secret",
      "/srv/docs/a\u0000b",
      "/srv/docs/%00",
      "/srv/docs/%c0%ae%c0%ae/x",
    ]) {
      assert.equal(read(confined, path).decision, "deny", path);
      denied(read(guarded, path), "rules[0] (no-etc)");
    }
  });

  test("URL prefixes keep URL semantics, but a naive server's reading of ?/../ must hold too", () => {
    const fetchUrl = (url: string) =>
      evaluateRequest(confined, {
        ...ctx,
        message: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "fetch", arguments: { url } } },
      });
    assert.equal(fetchUrl("https://api.example/v1/items?id=1").decision, "allow");
    assert.equal(fetchUrl("https://api.example/v1?id=1").decision, "allow", "a query is a boundary for a URL prefix");
    assert.equal(fetchUrl("https://api.example/v1?/../admin").decision, "deny");
    assert.equal(fetchUrl("https://api.example/v1/%2e%2e/admin").decision, "deny");
    const resource = (uri: string) =>
      evaluateRequest(confined, {
        ...ctx,
        message: { jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri } },
      });
    assert.equal(resource("file:///srv/docs/a.md").decision, "allow");
    assert.equal(resource("file:///srv/docs/x?/../../../etc/passwd").decision, "deny");
  });
});

describe("class: backtracking patterns (policy patterns run in linear time)", () => {
  // Each would take exponential (or high polynomial) time on JavaScript's backtracking engine.
  const hostile: Array<[string, string]> = [
    ["(a|a)*b", "a".repeat(50_000)],
    ["(\\w|\\d)*$", `${"a1".repeat(25_000)}!`],
    ["(.*a){20}", `${"a".repeat(19)}${"b".repeat(50_000)}`], // 19 a: no match, after trying every split
    ["(a+)+$", `${"a".repeat(50_000)}!`],
  ];

  test("the issue's patterns are accepted and judge hostile arguments at once", { timeout: 60_000 }, () => {
    for (const [pattern, text] of hostile) {
      const policy = parsed(`policy_version: 1
default: deny
rules:
  - allow: { tools: ["search"], arguments: { q: { pattern: ${JSON.stringify(pattern)} } } }
`);
      const decision = evaluateRequest(policy, {
        ...ctx,
        message: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "search", arguments: { q: text } } },
      });
      assert.equal(
        decision.rule,
        pattern === "(\\w|\\d)*$" ? "rules[0]" : "default",
        `${pattern}: ${decision.reason.slice(0, 120)}`,
      );
    }
  });

  test("a hostile response against the same patterns as deny_patterns is scanned at once", { timeout: 60_000 }, () => {
    for (const [pattern, text] of hostile) {
      const policy = parsed(`policy_version: 1
default: allow
responses: { deny_patterns: [${JSON.stringify(pattern)}] }
`);
      const response = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text }] } });
      const decision = evaluateResponse(policy, { text: response });
      assert.equal(decision.decision, pattern === "(\\w|\\d)*$" ? "deny" : "allow", pattern);
    }
  });

  test("lookaround and backreferences, which no linear matcher runs, are refused when the policy is read", () => {
    const result = parsePolicy(`policy_version: 1
default: allow
responses: { deny_patterns: ["(a)\\\\1", "secret(?!_ok)"] }
`);
    assert.equal(result.ok, false);
    if (!result.ok)
      assert.equal(
        result.errors.filter((line) => /lookaround and backreferences are not supported/.test(line)).length,
        2,
        result.errors.join("\n"),
      );
  });
});

describe("class: deny patterns evaded by encoding (opt-in decoding)", () => {
  const KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
  const base64 = (text: string) => btoa(text);
  const policyWith = (decode: string) =>
    parsed(`policy_version: 1
default: allow
responses: { deny_patterns: ["BEGIN [A-Z ]*PRIVATE KEY"]${decode} }
rules:
  - name: no-rm
    deny: { tools: ["*"], arguments: { command: { pattern: "rm -rf"${decode} } } }
`);
  const plain = policyWith("");
  const decoding = policyWith(", decode: [base64, data-url]");
  const result = (content: unknown) => JSON.stringify({ jsonrpc: "2.0", id: 1, result: content });
  // The encodings a backend answers with: read_media_file's base64 data, a resource blob, data: URLs.
  const encoded: Array<[string, string]> = [
    ["image content as base64", result({ content: [{ type: "image", mimeType: "image/png", data: base64(KEY) }] })],
    ["a resource blob", result({ contents: [{ uri: "file:///k", blob: base64(KEY).replace(/(.{16})/g, "$1\n") }] })],
    [
      "URL-safe base64 without padding",
      result({
        content: [
          { type: "text", text: base64(`${KEY}?>`).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "") },
        ],
      }),
    ],
    [
      "a base64 data: URL inside text",
      result({ content: [{ type: "text", text: `see data:text/plain;base64,${base64(KEY)} here` }] }),
    ],
    [
      "a percent-encoded data: URL",
      result({ content: [{ type: "text", text: `data:text/plain,${encodeURIComponent(KEY)}` }] }),
    ],
  ];

  test("without decode the limit is real: encoded secrets pass (documented in docs/policy.md)", () => {
    for (const [what, text] of encoded) assert.equal(evaluateResponse(plain, { text }).decision, "allow", what);
    assert.equal(
      evaluateResponse(plain, { text: result({ content: [{ type: "text", text: KEY }] }) }).decision,
      "deny",
    );
  });

  test("responses.decode: [base64, data-url] scans what the encodings hold", () => {
    for (const [what, text] of encoded) {
      const decision = evaluateResponse(decoding, { text });
      assert.equal(decision.decision, "deny", what);
      assert.equal(decision.rule, "responses.deny_patterns[0]", what);
    }
    assert.equal(
      evaluateResponse(decoding, {
        text: result({ content: [{ type: "image", data: base64("an ordinary picture") }] }),
      }).decision,
      "allow",
    );
  });

  test("an argument pattern with decode sees base64 and data: URLs; allow rules must hold decoded too", () => {
    const run = (policy: Policy, command: string) =>
      evaluateRequest(policy, {
        ...ctx,
        message: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "shell", arguments: { command } } },
      });
    assert.equal(run(plain, base64("rm -rf /")).decision, "allow", "the documented limit without decode");
    denied(run(decoding, base64("rm -rf /")), "rules[0] (no-rm)");
    denied(run(decoding, `data:text/plain;base64,${base64("rm -rf /")}`), "rules[0] (no-rm)");
    assert.equal(run(decoding, "ls -la").decision, "allow");
    const strict = parsed(`policy_version: 1
default: deny
rules:
  - allow: { tools: ["say"], arguments: { text: { pattern: "^[A-Za-z0-9 ]+$", decode: [base64] } } }
`);
    const say = (text: string) =>
      evaluateRequest(strict, {
        ...ctx,
        message: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "say", arguments: { text } } },
      });
    assert.equal(say("hello there").decision, "allow");
    assert.equal(
      say(base64("<script>alert(1)</script>")).decision,
      "deny",
      "decoded, it no longer matches the allow pattern",
    );
  });

  test("decode is validated: known decodings only, and only beside a pattern", () => {
    const errors = (text: string) => {
      const r = parsePolicy(text);
      return r.ok ? [] : r.errors;
    };
    assert.match(
      errors(`policy_version: 1\ndefault: allow\nresponses: { deny_patterns: [x], decode: [rot13] }\n`).join("\n"),
      /responses\.decode\[0\]: expected one of base64, data-url/,
    );
    assert.match(
      errors(
        `policy_version: 1\ndefault: allow\nrules:\n  - deny: { tools: [x], arguments: { a: { decode: [base64] } } }\n`,
      ).join("\n"),
      /decode widens what pattern sees; it needs a pattern beside it/,
    );
  });
});
