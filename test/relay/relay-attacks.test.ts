/**
 * Attacks on the relay (issue 14), each kept as the class it belongs to: a command the
 * relay cannot judge is refused alone and never sinks the poll it came in; numbers and
 * strings JSON cannot carry exactly never reach an agent.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { FakeCommandInput } from "../support/fake-control-plane.ts";
import { CapturingAgent, startRelayStack, type RelayStack } from "./support.ts";

let stack: RelayStack;
before(async () => {
  stack = await startRelayStack();
});
after(() => stack.close());

/** A raw command text: the arguments are spliced in as written, so they may hold what JSON.stringify cannot write. */
function rawCommand(id: string, rpcId: number, name: string, argumentsText: string): string {
  return (
    `{"request_id":"${id}","shard_token":"shard.${id}","command_type":"jsonrpc","channel":"main","created_at":"2026-01-01T00:00:00Z",` +
    `"jsonrpc":{"jsonrpc":"2.0","id":${rpcId},"method":"tools/call","params":{"name":"${name}","arguments":${argumentsText}}}}`
  );
}

// Each poison: arguments no policy can judge exactly, beside a good command in one poll.
const poisons: Array<[string, string]> = [
  ["a number that overflows to -Infinity", '{"duration":-1e999}'],
  ["a number that overflows to Infinity", '{"duration":1e999}'],
  ["an integer beyond 2^53 that a double rounds", '{"duration":9007199254740993}'],
  ["a lone surrogate in a string", '{"message":"\\ud800"}'],
  ["a lone surrogate in a key", '{"\\udc00":1,"duration":1}'],
];

describe("one poisoned command never sinks a poll", () => {
  poisons.forEach(([what, args], index) => {
    test(`${what}: the good command is handed out and answered, the poisoned one refused upstream and audited`, async () => {
      const bad = `req_poison_${index}`;
      const good = `req_good_${index}`;
      const badRaw = rawCommand(
        bad,
        100 + index,
        what.includes("string") || what.includes("key") ? "echo" : "trigger-long-running-operation",
        args,
      );
      const goodRaw = rawCommand(good, 200 + index, "echo", '{"message":"fine"}');
      stack.cp.scriptPoll({
        commands: [JSON.parse(badRaw) as FakeCommandInput, JSON.parse(goodRaw) as FakeCommandInput],
        body: `{"commands":[${badRaw},${goodRaw}]}`,
      });
      const seen = await stack.agent.poll();
      assert.equal(seen.status, 200, seen.text);
      assert.equal(seen.text, `{"commands":[${goodRaw}]}`, "only the good command, byte for byte");
      const [command] = CapturingAgent.commands(seen);
      assert.equal((await stack.agent.reply(command!, { content: [{ type: "text", text: "fine" }] })).status, 200);
      assert.equal((await stack.cp.waitForFinal(good)).payload.resp_type, "jsonrpc_response");

      const refused = await stack.cp.waitForFinal(bad);
      assert.equal(refused.shardToken, `shard.${bad}`);
      const error = refused.payload.resp_json as {
        id: number;
        error: { code: number; data: { rule: string; reason: string } };
      };
      assert.equal(error.id, 100 + index);
      assert.equal(error.error.code, -32003);
      assert.equal(error.error.data.rule, "guard:inexact-json", error.error.data.reason);

      const records = await stack.records();
      const badRecords = records.filter((record) => record.request_id === bad);
      assert.deepEqual(
        badRecords.map((record) => [record.phase, record.decision]),
        [
          ["request", "deny"],
          ["outcome", "deny"],
        ],
      );
      assert.equal(badRecords[1]?.response_status, "denied");
      const goodRecords = records.filter((record) => record.request_id === good);
      assert.deepEqual(
        goodRecords.map((record) => [record.phase, record.response_status ?? null]),
        [
          ["request", null],
          ["outcome", "ok"],
        ],
      );
    });
  });
});

describe("responses JSON cannot carry exactly", () => {
  test("an agent's answer holding 1e999 is replaced upstream by the guard's error; one in the envelope is refused", async () => {
    const [command] = stack.cp.enqueue({
      jsonrpc: { jsonrpc: "2.0", id: 300, method: "tools/call", params: { name: "echo", arguments: { message: "x" } } },
    });
    const seen = await stack.agent.poll();
    const [delivered] = CapturingAgent.commands(seen);
    assert.equal(delivered?.request_id, command!.request_id);
    const envelope = await stack.agent.postText(
      command!.shard_token,
      `{"request_id":"${command!.request_id}","channel":"main","resp_code":1e999,"resp_type":"jsonrpc_response"}`,
    );
    assert.equal(envelope.status, 400, envelope.text);
    const answer = await stack.agent.postText(
      command!.shard_token,
      `{"request_id":"${command!.request_id}","channel":"main","resp_code":200,"resp_type":"jsonrpc_response","resp_headers":{"Content-Type":["application/json"]},` +
        `"resp_json":{"jsonrpc":"2.0","id":300,"result":{"content":[{"type":"text","text":"n"}],"n":1e999}}}`,
    );
    assert.equal(answer.status, 200, answer.text);
    const posted = (await stack.cp.waitForFinal(command!.request_id)).payload.resp_json as {
      id: number;
      error: { data: { rule: string } };
    };
    assert.deepEqual([posted.id, posted.error.data.rule], [300, "guard:inexact-json"]);
  });
});
