/**
 * Cutting an upstream poll body into commands (relay/upstream/poll-body.ts) and reading the
 * deployment's policy settings (relay/policy/load.ts): in-process, no workerd.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { commandSlices, pollBodyOf, readPollBody } from "../../relay/upstream/poll-body.ts";
import { loadEnforcement } from "../../relay/policy/load.ts";
import { HubConfigError } from "../../relay/config.ts";

const A = '{"request_id":"a","shard_token":"s1","jsonrpc":{"jsonrpc":"2.0","id":1,"method":"ping"}}';
const B =
  '{"request_id":"b","shard_token":"s2","jsonrpc":{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a, [b] {c} \\"d\\""}}}}';

describe("commandSlices", () => {
  test("cuts each element of the top-level commands list as sent, whitespace and escapes included", () => {
    const text = `{ "other": [1, 2], "commands" : [ ${A} ,\n\t${B} ], "tail": {"commands": [9]} }`;
    const { slices, arrays } = commandSlices(text);
    assert.deepEqual(slices, [A, B]);
    assert.equal(arrays, 1);
  });

  test("an empty list has no slices; a key that only looks like commands is not one", () => {
    assert.deepEqual(commandSlices('{"commands":[]}'), { slices: [], arrays: 1 });
    assert.deepEqual(commandSlices('{"x":"commands","commands\\u0073":[1]}').slices, []);
    assert.deepEqual(commandSlices('{"comm\\u0061nds":[1, "two"]}').slices, ["1", '"two"']);
  });

  test("a body naming commands twice reports both lists", () => {
    const { slices, arrays } = commandSlices(`{"commands":[${A}],"commands":[${B}]}`);
    assert.deepEqual(slices, [A, B]);
    assert.equal(arrays, 2);
  });
});

describe("readPollBody", () => {
  test("a clean body: every command with its raw text and no doubt", () => {
    const body = readPollBody(`{"commands":[${A},${B}]}`);
    assert.ok(body.ok);
    assert.deepEqual(
      body.entries.map((entry) => [entry.raw, entry.doubt]),
      [
        [A, undefined],
        [B, undefined],
      ],
    );
    assert.equal((body.entries[1]!.value as { request_id: string }).request_id, "b");
  });

  test("a duplicate key inside one command refuses that command only, naming the key and path", () => {
    const dup =
      '{"request_id":"d","shard_token":"s3","jsonrpc":{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","n\\u0061me":"get-env"}}}';
    const body = readPollBody(`{"commands":[${A},${dup}]}`);
    assert.ok(body.ok);
    assert.equal(body.entries[0]!.doubt, undefined);
    assert.equal(body.entries[1]!.doubt?.rule, "guard:duplicate-keys");
    assert.match(body.entries[1]!.doubt!.reason, /duplicate key "name" at \$\.jsonrpc\.params/);
  });

  test("commands named twice: every command is refused", () => {
    const body = readPollBody(`{"commands":[${A}],"commands":[${B}]}`);
    assert.ok(body.ok);
    assert.deepEqual(
      body.entries.map((entry) => entry.doubt?.rule),
      ["guard:duplicate-keys", "guard:duplicate-keys"],
    );
  });

  test("not JSON, or no commands list: not readable", () => {
    for (const text of ["{", "[]", '{"commands":{}}', "null"]) assert.equal(readPollBody(text).ok, false, text);
  });

  test("pollBodyOf keeps the upstream text when nothing is taken out, else joins the kept raw commands", () => {
    const text = `{"commands": [${A}, ${B}]}`;
    const body = readPollBody(text);
    assert.ok(body.ok);
    assert.equal(pollBodyOf(text, body.entries, body.entries), text);
    assert.equal(pollBodyOf(text, body.entries, [body.entries[1]!]), `{"commands":[${B}]}`);
  });
});

describe("loadEnforcement", () => {
  test("no policy: nothing enforced, audit on by default", () => {
    const enforcement = loadEnforcement({});
    assert.equal(enforcement.policy, undefined);
    assert.equal(enforcement.audit, true);
    assert.equal(loadEnforcement({ AIRLOCK_AUDIT: "off" }).audit, false);
  });

  test("an invalid policy is a configuration error naming AIRLOCK_POLICY and the path", () => {
    assert.throws(
      () =>
        loadEnforcement({ AIRLOCK_POLICY: "policy_version: 1\ndefault: deny\nrules:\n  - allow: { tool: [echo] }\n" }),
      (error: unknown) =>
        error instanceof HubConfigError &&
        /AIRLOCK_POLICY: rules\[0\]\.allow: unknown key "tool"; did you mean "tools"\?/.test(error.message),
    );
  });

  test("bad auditor digests, audit flags and segment sizes name their variable", () => {
    assert.throws(() => loadEnforcement({ AIRLOCK_AUDITOR_TOKEN_SHA256: "abc" }), /AIRLOCK_AUDITOR_TOKEN_SHA256\[0\]/);
    assert.throws(() => loadEnforcement({ AIRLOCK_AUDIT: "maybe" }), /AIRLOCK_AUDIT/);
    assert.throws(() => loadEnforcement({ AIRLOCK_AUDIT_SEGMENT_RECORDS: "0" }), /AIRLOCK_AUDIT_SEGMENT_RECORDS/);
    assert.deepEqual(
      loadEnforcement({ AIRLOCK_AUDITOR_TOKEN_SHA256: ` ${"a".repeat(64)}, ${"b".repeat(64)}` }).auditorDigests,
      ["a".repeat(64), "b".repeat(64)],
    );
  });
});
