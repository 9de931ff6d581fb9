/**
 * The same policy and audit in hub mode: the MCP ingress judges each client body before
 * a command exists, the audit log records every command before an agent can take it and
 * its outcome after, and answers (JSON and SSE) are checked on the way back.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { AuditRecord } from "../../shared/audit/index.ts";
import type { LocalHub } from "../../agent/hub-local/run.ts";
import { TestAgent, mcpPost, tunnelId } from "../support/hub.ts";
import { hubRecords, startPolicyHub } from "./support.ts";

let hub: LocalHub;
let next = 1;

before(async () => {
  hub = await startPolicyHub({ livenessMs: 5000, responseTimeoutMs: 5000, sseKeepaliveMs: 200 });
});
after(() => hub.close());

/** A fresh tunnel with an agent that has polled once (so the hub counts it as connected). */
async function tunnel(): Promise<{ id: string; agent: TestAgent; url: URL }> {
  const id = tunnelId(next++);
  const agent = new TestAgent(hub.url, id);
  await agent.poll({ timeoutMs: 1 });
  return { id, agent, url: new URL(`v1/mcp/${id}`, hub.url) };
}

const records = (id: string): Promise<AuditRecord[]> => hubRecords(hub, id);

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args },
});

describe("hub mode: requests", () => {
  test("a denied tools/call returns the JSON-RPC error naming the rule, never reaches the agent, and is audited", async () => {
    const { id, agent, url } = await tunnel();
    const response = await mcpPost(url, call(1, "get-env"));
    assert.equal(response.status, 200);
    const body = (await response.json()) as {
      id: number;
      error: { code: number; message: string; data: { rule: string } };
    };
    assert.equal(body.id, 1);
    assert.equal(body.error.code, -32003);
    assert.match(body.error.message, /^Refused by policy \(default\): no rule allows tools\/call "get-env"/);
    assert.equal((await agent.poll({ timeoutMs: 200 })).status, 204, "the agent got nothing");
    const log = await records(id);
    assert.deepEqual(
      log.map((r) => [r.phase, r.target, r.decision, r.rule, r.response_status]),
      [
        ["request", "get-env", "deny", "default", null],
        ["outcome", "get-env", "deny", "default", "denied"],
      ],
    );
  });

  test("an allowed call is recorded before the agent takes it, with the command's request id, and its outcome after", async () => {
    const { id, agent, url } = await tunnel();
    const polled = agent.poll({ timeoutMs: 3000 });
    const response = mcpPost(url, call(2, "echo", { message: "secret words" }));
    const {
      commands: [command],
    } = await polled;
    const before = await records(id);
    assert.deepEqual(
      before.map((r) => [r.phase, r.request_id]),
      [["request", command!.request_id]],
      "recorded before the answer",
    );
    assert.deepEqual(before[0]!.arguments, { message: "[REDACTED]" });
    await agent.reply(command!, { content: [{ type: "text", text: "Echo: secret words" }] });
    assert.deepEqual(((await (await response).json()) as { result: unknown }).result, {
      content: [{ type: "text", text: "Echo: secret words" }],
    });
    const log = await records(id);
    assert.deepEqual(
      log.map((r) => [r.phase, r.request_id, r.response_status]),
      [
        ["request", command!.request_id, null],
        ["outcome", command!.request_id, "ok"],
      ],
    );
  });

  test("audit records carry the client's trace id (header or _meta); the command carries its traceparent on; no trace, no field", async () => {
    const { id, agent, url } = await tunnel();
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
    const polled = agent.poll({ timeoutMs: 3000 });
    const response = mcpPost(url, call(20, "echo", { message: "traced" }), { headers: { traceparent } });
    const {
      commands: [command],
    } = await polled;
    assert.deepEqual(command!.headers.traceparent, [traceparent]);
    await agent.reply(command!, { content: [] });
    await (await response).text();
    const denied = {
      ...call(21, "get-env"),
      params: { name: "get-env", arguments: {}, _meta: { traceparent: traceparent.replace(traceId, "a".repeat(32)) } },
    };
    await (await mcpPost(url, denied)).text();
    const untraced = agent.poll({ timeoutMs: 3000 });
    const plain = mcpPost(url, call(22, "echo", { message: "plain" }));
    const {
      commands: [third],
    } = await untraced;
    await agent.reply(third!, { content: [] });
    await (await plain).text();
    const log = await records(id);
    assert.deepEqual(
      log.map((r) => [r.phase, r.target, r.trace_id]),
      [
        ["request", "echo", traceId],
        ["outcome", "echo", traceId],
        ["request", "get-env", "a".repeat(32)],
        ["outcome", "get-env", "a".repeat(32)],
        ["request", "echo", undefined],
        ["outcome", "echo", undefined],
      ],
    );
    assert.ok(
      !("trace_id" in log[4]!),
      "a record without a trace has no trace_id field, so older chains keep their hashes",
    );
  });

  test("a batch with one refused element is refused whole; duplicate keys and refused notifications too", async () => {
    const { agent, url } = await tunnel();
    const batch = await mcpPost(url, [
      call(3, "echo", { message: "a" }),
      call(4, "get-env"),
      { jsonrpc: "2.0", method: "notifications/initialized" },
    ]);
    const answers = (await batch.json()) as Array<{ id: number; error: { data: { rule: string; reason: string } } }>;
    assert.deepEqual(
      answers.map((a) => a.id),
      [3, 4],
    );
    assert.match(answers[0]!.error.data.reason, /^batch element \[1\]: /);
    const dup = await mcpPost(
      url,
      '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","name":"get-env"}}',
    );
    assert.equal(((await dup.json()) as { error: { data: { rule: string } } }).error.data.rule, "guard:duplicate-keys");
    const note = await mcpPost(url, { jsonrpc: "2.0", method: "tools/call", params: { name: "get-env" } });
    assert.equal(note.status, 403);
    assert.match(
      ((await note.json()) as { error: { message: string } }).error.message,
      /Refused by policy \(default\)/,
    );
    assert.equal((await agent.poll({ timeoutMs: 200 })).status, 204);
  });
});

describe("hub mode: answers", () => {
  test("tools/list is filtered before the client sees it", async () => {
    const { agent, url } = await tunnel();
    const polled = agent.poll({ timeoutMs: 3000 });
    const response = mcpPost(url, { jsonrpc: "2.0", id: 6, method: "tools/list" });
    const {
      commands: [command],
    } = await polled;
    await agent.reply(command!, {
      tools: [
        { name: "echo", inputSchema: {} },
        { name: "get-env", inputSchema: {} },
      ],
    });
    const body = (await (await response).json()) as { result: { tools: Array<{ name: string }> } };
    assert.deepEqual(
      body.result.tools.map((t) => t.name),
      ["echo"],
    );
  });

  test("over SSE, a message carrying a key pattern is withheld and a final carrying one is replaced", async () => {
    const { id, agent, url } = await tunnel();
    const polled = agent.poll({ timeoutMs: 3000 });
    const response = mcpPost(url, call(7, "leak"));
    const {
      commands: [command],
    } = await polled;
    const notify = (data: string) =>
      agent.respond(command!, {
        resp_json: { jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data } },
        resp_code: 200,
        resp_type: "jsonrpc_notify",
      });
    await notify("step one");
    await notify("AKIAABCDEFGHIJKLMNOP");
    await agent.reply(command!, { content: [{ type: "text", text: "AKIAABCDEFGHIJKLMNOP" }] });
    const answer = await response;
    assert.equal(answer.headers.get("content-type"), "text/event-stream");
    const events = (await answer.text())
      .split("\n\n")
      .filter((block) => block.includes("data:"))
      .map((block) => JSON.parse(block.slice(block.indexOf("data:") + 5)) as Record<string, unknown>);
    assert.equal(events.length, 2);
    assert.deepEqual((events[0]!.params as { data: string }).data, "step one");
    assert.equal((events[1]!.error as { data: { rule: string } }).data.rule, "responses.deny_patterns[0]");
    assert.equal(events[1]!.id, 7);
    const outcome = (await records(id)).find((r) => r.phase === "outcome")!;
    assert.equal(outcome.response_status, "denied");
    assert.match(outcome.reason, /1 intermediate message withheld \(responses\.deny_patterns\[0\]\)/);
  });
});
