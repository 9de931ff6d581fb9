import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { digestJson, parseRedactPath, REDACTED, redact, redactArguments } from "../../shared/audit/index.ts";

describe("redact", () => {
  const params = {
    arguments: {
      message: "secret text",
      user: { token: "t1", name: "ann" },
      other: { token: "t2" },
      items: [{ secret: "s1", keep: 1 }, { secret: "s2" }, "plain"],
    },
  };

  test("a dot path replaces one value, whatever its type, and leaves the input untouched", () => {
    const before = structuredClone(params);
    const out = redact(params, ["arguments.message", "arguments.user"]) as typeof params;
    assert.equal(out.arguments.message, REDACTED);
    assert.equal(out.arguments.user as unknown, REDACTED);
    assert.deepEqual(out.arguments.other, { token: "t2" });
    assert.deepEqual(params, before);
  });

  test("* matches any key; [*] any index; [n] one index", () => {
    const out = redact(params, ["arguments.*.token", "arguments.items[*].secret"]) as typeof params;
    assert.deepEqual(out.arguments.user, { token: REDACTED, name: "ann" });
    assert.deepEqual(out.arguments.other, { token: REDACTED });
    assert.deepEqual(out.arguments.items, [{ secret: REDACTED, keep: 1 }, { secret: REDACTED }, "plain"]);
    assert.deepEqual((redact(params, ["arguments.items[1]"]) as typeof params).arguments.items, [
      { secret: "s1", keep: 1 },
      REDACTED,
      "plain",
    ]);
    assert.deepEqual((redact(params, ["arguments.items.*.secret"]) as typeof params).arguments.items[1], {
      secret: REDACTED,
    });
  });

  test("quoted keys hold dots; paths that match nothing change nothing", () => {
    assert.deepEqual(redact({ arguments: { "a.b": 1, a: { b: 2 } } }, ['arguments["a.b"]']), {
      arguments: { "a.b": REDACTED, a: { b: 2 } },
    });
    assert.deepEqual(redact(params, ["arguments.missing.deep", "arguments.message.length"]), params);
  });

  test('a "__proto__" key is copied as data, never as a prototype', () => {
    const input = JSON.parse('{"arguments":{"__proto__":{"token":"t"},"x":1}}') as unknown;
    const out = redact(input, ["arguments.*.token"]) as { arguments: Record<string, unknown> };
    assert.ok(Object.hasOwn(out.arguments, "__proto__"));
    assert.deepEqual(Object.getOwnPropertyDescriptor(out.arguments, "__proto__")?.value, { token: REDACTED });
    assert.equal(Object.getPrototypeOf(out.arguments), Object.prototype);
  });

  test("bad paths are refused with a reason", () => {
    assert.deepEqual(parseRedactPath("arguments.items[*].secret"), [
      { kind: "key", key: "arguments" },
      { kind: "key", key: "items" },
      { kind: "any" },
      { kind: "key", key: "secret" },
    ]);
    for (const bad of ["", ".a", "a..b", "a.", "a[x]", 'a["unterminated]'])
      assert.equal(typeof parseRedactPath(bad), "string", bad);
    assert.throws(() => redact({}, ["a..b"]), /redaction path "a\.\.b"/);
  });
});

describe("redactArguments", () => {
  test("keeps a redacted copy and the digest of the unredacted arguments", async () => {
    const args = { message: "hunter2", n: 1 };
    const out = await redactArguments(args, ["arguments.message"]);
    assert.deepEqual(out.arguments, { message: REDACTED, n: 1 });
    assert.equal(out.arguments_digest, await digestJson({ n: 1, message: "hunter2" }));
    assert.notEqual(out.arguments_digest, await digestJson(out.arguments));
    assert.deepEqual(await redactArguments(undefined, ["arguments.message"]), {
      arguments: null,
      arguments_digest: null,
    });
  });
});
