// Each test here is a way around a rule that a guard closes; each would pass the
// message (and so fail) if its guard were removed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  evaluateRequest,
  evaluateRequestBody,
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

const check = (policy: Policy, message: unknown, rawBytes?: number): PolicyDecision =>
  evaluateRequest(policy, { tunnel: "tunnel_a", channel: "main", message, rawBytes });

function denied(decision: PolicyDecision, rule: string | RegExp, reason?: RegExp): void {
  assert.equal(decision.decision, "deny", `expected a denial, got: ${decision.reason}`);
  if (typeof rule === "string") assert.equal(decision.rule, rule, decision.reason);
  else assert.match(decision.rule, rule);
  if (reason) assert.match(decision.reason, reason);
}

// An allow-list that admits plenty: methods by glob, tools by glob.
const allowList = parsed(`policy_version: 1
default: deny
rules:
  - allow: { methods: ["initialize", "ping", "notifications/*", "tools/list"] }
  - allow: { tools: ["echo", "read_*"] }
  - allow: { tools: ["write_file"], arguments: { path: { prefix: /srv/docs } } }
`);

// A block-list: everything passes except what a deny rule names.
const blockList = parsed(`policy_version: 1
default: allow
rules:
  - name: no-deletes
    deny: { methods: ["tools/call"], tools: ["delete_*"] }
  - name: no-sampling
    deny: { methods: ["sampling/*"] }
`);

const call = (name: unknown, args?: unknown) => ({
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: args === undefined ? { name } : { name, arguments: args },
});

describe("batches", () => {
  test("a denied call hidden after allowed elements denies the whole batch, naming the element", () => {
    const decision = check(allowList, [
      { jsonrpc: "2.0", id: 1, method: "ping" },
      call("echo"),
      { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "rm" } },
    ]);
    denied(decision, "default", /^batch element \[2\]: no rule allows tools\/call "rm"/);
    assert.deepEqual(
      decision.elements?.map((element) => element.decision),
      ["allow", "allow", "deny"],
    );
  });

  test("an allowed batch lists the rules that allowed it", () => {
    const decision = check(allowList, [{ jsonrpc: "2.0", id: 1, method: "ping" }, call("echo")]);
    assert.equal(decision.decision, "allow");
    assert.equal(decision.rule, "rules[0], rules[1]");
  });

  test("empty and nested batches are malformed", () => {
    denied(check(blockList, []), "guard:malformed", /empty batch/);
    denied(
      check(blockList, [[call("delete_all")]]),
      "guard:malformed",
      /batch element \[0\]: a JSON-RPC message must be an object/,
    );
  });
});

describe("notifications", () => {
  test("a tools/call without an id is still a tools/call", () => {
    const notification = { jsonrpc: "2.0", method: "tools/call", params: { name: "delete_all" } };
    denied(check(blockList, notification), "rules[0] (no-deletes)");
    denied(check(allowList, { jsonrpc: "2.0", method: "tools/call", params: { name: "rm" } }), "default");
  });
});

describe("odd casing", () => {
  test("methods are exact for allow rules: Tools/Call is not tools/call", () => {
    denied(
      check(allowList, { jsonrpc: "2.0", id: 1, method: "Tools/Call", params: { name: "rm" } }),
      "default",
      /methods are case-sensitive; the MCP method is "tools\/call"/,
    );
    denied(
      check(parsed('policy_version: 1\ndefault: deny\nrules:\n  - allow: { methods: ["notifications/*"] }\n'), {
        jsonrpc: "2.0",
        method: "Notifications/x",
      }),
      "default",
    );
  });

  test("deny rules match any casing or Unicode form of the method and the tool", () => {
    for (const method of ["TOOLS/CALL", "Tools/Call", "ｔｏｏｌｓ/ｃａｌｌ", "tools/\u200Bcall", " tools/call "]) {
      denied(
        check(blockList, { jsonrpc: "2.0", id: 1, method, params: { name: "delete_all" } }),
        "rules[0] (no-deletes)",
      );
    }
    for (const name of ["DELETE_ALL", "Delete_All", "ｄｅｌｅｔｅ_all"])
      denied(check(blockList, call(name)), "rules[0] (no-deletes)");
    denied(check(blockList, { jsonrpc: "2.0", id: 1, method: "SAMPLING/createMessage" }), "rules[1] (no-sampling)");
  });

  test("keys that differ from JSON-RPC or MCP keys only by case are refused (case-insensitive decoders read them)", () => {
    denied(
      check(blockList, { jsonrpc: "2.0", id: 1, Method: "tools/call", method: "ping" }),
      "guard:key-case",
      /"Method"/,
    );
    denied(
      check(blockList, {
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "list_files", Name: "delete_all" },
      }),
      "guard:key-case",
      /"Name"/,
    );
    denied(
      check(blockList, {
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "list_files", NAME: "delete_all" },
      }),
      "guard:key-case",
    );
    // Go's encoding/json folds the long s (ſ) to "s"; so does NFKC.
    denied(
      check(blockList, { jsonrpc: "2.0", id: 1, method: "ping", "param\u017F": { name: "delete_all" } }),
      "guard:key-case",
      /"param\u017F"/,
    );
    denied(check(blockList, { jsonrpc: "2.0", id: 1, method: "ping", PARAMS: {} }), "guard:key-case");
  });

  test("argument keys that differ from a constrained argument only by case are refused", () => {
    const decision = check(allowList, call("write_file", { path: "/srv/docs/a", Path: "/etc/passwd" }));
    denied(decision, "default", /arguments\.Path: differs from the constrained "path" only by case/);
  });
});

describe("unicode look-alikes", () => {
  test("allow rules never match names with invisible characters", () => {
    for (const name of [
      "read_\u200Bfile",
      "read_file\u200D",
      "read_\u202Efile",
      "read_\u2066file",
      "read_\u00ADfile",
      "read_\uFEFFfile",
    ]) {
      denied(check(allowList, call(name)), "default", /invisible or control character U\+/);
    }
  });

  test("allow rules never match names that mix look-alike scripts or need NFKC", () => {
    denied(check(allowList, call("read_f\u0456le")), "default", /mixes Latin and Cyrillic letters/); // Cyrillic і
    denied(check(allowList, call("read_\u03BFpen")), "default", /mixes Latin and Greek/); // Greek ο
    denied(check(allowList, call("read_\uFF46ile")), "default", /not NFKC-normalised/); // full-width ｆ
    denied(check(allowList, call("read_\uFB01le")), "default", /not NFKC-normalised/); // ligature ﬁ
  });

  test("deny rules see through look-alikes", () => {
    for (const name of [
      "d\u0435lete_all",
      "\u0434elete_all".replace("\u0434", "d"),
      "dele\u200Bte_all",
      "D\u0415LETE_all",
      "del\u0435te_\u0430ll",
    ]) {
      denied(check(blockList, call(name)), "rules[0] (no-deletes)");
    }
  });

  test("reasons spell out invisible characters", () => {
    assert.match(check(allowList, call("ech\u200Bo")).reason, /"ech\\u200bo"/);
  });
});

describe("duplicate JSON keys", () => {
  test("parseJsonStrict rejects duplicates at any depth, after unescaping, and names the path", () => {
    assert.deepEqual(parseJsonStrict('{"a":1,"a":2}'), {
      ok: false,
      problem: "duplicate-key",
      path: "$",
      reason: 'duplicate key "a" at $',
    });
    assert.deepEqual(parseJsonStrict('{"params":{"name":"x","n\\u0061me":"y"}}'), {
      ok: false,
      problem: "duplicate-key",
      path: "$.params",
      reason: 'duplicate key "name" at $.params',
    });
    assert.deepEqual(parseJsonStrict('[{"a":{}},{"b":[{"c":1,"c":1}]}]'), {
      ok: false,
      problem: "duplicate-key",
      path: "$[1].b[0]",
      reason: 'duplicate key "c" at $[1].b[0]',
    });
    assert.deepEqual(parseJsonStrict('{"a":{"k":1},"b":{"k":1},"s":"{\\"k\\":1,\\"k\\":2}"}'), {
      ok: true,
      value: { a: { k: 1 }, b: { k: 1 }, s: '{"k":1,"k":2}' },
    });
    assert.equal(parseJsonStrict("{").ok, false);
  });

  test("nesting deeper than the limit is refused", () => {
    assert.match(
      (parseJsonStrict(`${"[".repeat(101)}${"]".repeat(101)}`) as { reason: string }).reason,
      /nested deeper than 100 levels/,
    );
    assert.equal(parseJsonStrict(`${"[".repeat(100)}${"]".repeat(100)}`).ok, true);
  });

  test("a body whose first name is denied and whose last name is allowed is refused", () => {
    // JSON.parse keeps the last "name" (echo); a first-wins decoder would run delete_all.
    const body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","name":"echo"}}';
    assert.equal(
      check(allowList, JSON.parse(body)).decision,
      "allow",
      "without the guard the body looks like a call to echo",
    );
    denied(
      evaluateRequestBody(allowList, { tunnel: "tunnel_a", channel: "main", body }),
      "guard:duplicate-keys",
      /duplicate key "name" at \$\.params/,
    );
    const ok = evaluateRequestBody(allowList, {
      tunnel: "tunnel_a",
      channel: "main",
      body: JSON.stringify(call("echo")),
    });
    assert.equal(ok.decision, "allow");
    assert.deepEqual(ok.message, call("echo"));
  });
});

describe("oversized bodies", () => {
  const limited = parsed("policy_version: 1\ndefault: allow\nrequests: { max_bytes: 100 }\n");

  test("the raw size is judged, not the size of the parsed message", () => {
    assert.equal(check(limited, call("x")).decision, "allow");
    denied(check(limited, call("x"), 5000), "requests.max_bytes", /5000 bytes, over requests\.max_bytes 100/);
    denied(check(limited, [call("x")], 5000), "requests.max_bytes", /the batch is 5000 bytes/);
  });

  test("a raw body over the limit is refused before it is parsed", () => {
    denied(
      evaluateRequestBody(limited, { tunnel: "tunnel_a", channel: "main", body: `{"pad":"${"x".repeat(200)}"` }),
      "requests.max_bytes",
    );
  });
});

describe("malformed params", () => {
  test("params must be an object", () => {
    denied(
      check(blockList, { jsonrpc: "2.0", id: 1, method: "tools/call", params: ["delete_all"] }),
      "guard:malformed",
      /params must be an object/,
    );
    denied(check(blockList, { jsonrpc: "2.0", id: 1, method: "tools/call", params: "delete_all" }), "guard:malformed");
  });

  test("params.name must be a string", () => {
    denied(check(blockList, call(["delete_all"])), "guard:malformed", /tools\/call needs params\.name as a string/);
    denied(check(blockList, call({ toString: "delete_all" })), "guard:malformed");
    denied(check(blockList, { jsonrpc: "2.0", id: 1, method: "tools/call", params: {} }), "guard:malformed");
    denied(check(blockList, { jsonrpc: "2.0", id: 1, method: "TOOLS/CALL", params: { name: 1 } }), "guard:malformed");
    denied(
      check(blockList, {
        jsonrpc: "2.0",
        id: 1,
        method: "completion/complete",
        params: { ref: { type: "ref/prompt" } },
      }),
      "guard:malformed",
    );
  });

  test("messages that are not JSON-RPC 2.0 requests or replies are refused", () => {
    denied(check(blockList, { id: 1, method: "ping" }), "guard:malformed", /jsonrpc must be "2.0"/);
    denied(check(blockList, { jsonrpc: "2.0", id: 1, method: 7 }), "guard:malformed");
    denied(check(blockList, "tools/call"), "guard:malformed");
    denied(check(blockList, null), "guard:malformed");
  });

  test("replies to server requests follow the replies setting; a message with a method is never a reply", () => {
    const reply = { jsonrpc: "2.0", id: 4, result: { roots: [] } };
    assert.equal(check(blockList, reply).rule, "replies");
    assert.equal(check(blockList, reply).decision, "allow");
    denied(check(parsed("policy_version: 1\ndefault: allow\nreplies: deny\n"), reply), "replies");
    denied(
      check(blockList, { jsonrpc: "2.0", id: 4, result: {}, method: "tools/call", params: { name: "delete_all" } }),
      "rules[0] (no-deletes)",
    );
  });
});

describe("_meta tricks", () => {
  test("params._meta must be an object", () => {
    denied(
      check(blockList, { jsonrpc: "2.0", id: 1, method: "ping", params: { _meta: "x" } }),
      "guard:malformed",
      /_meta must be an object/,
    );
  });

  test("_meta inside arguments is an argument like any other", () => {
    const strict = parsed(
      "policy_version: 1\ndefault: deny\nrules:\n  - allow: { tools: [echo], arguments: { message: { type: string } }, additional_arguments: false }\n",
    );
    const decision = check(strict, call("echo", { message: "hi", _meta: { name: "delete_all" } }));
    denied(decision, "default", /arguments\._meta: not an allowed argument/);
  });

  test("a name in _meta does not replace params.name", () => {
    denied(
      check(blockList, {
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "delete_all", _meta: { name: "echo" } },
      }),
      "rules[0] (no-deletes)",
    );
    denied(
      check(allowList, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { _meta: { name: "echo" } } }),
      "guard:malformed",
    );
  });
});
