/**
 * Issue 14, class "a call the hub fails on leaves no audit record", in workerd: every
 * request that reaches the policy leaves a request record and an outcome record, also
 * when the hub fails it: no agent, the agent never answers, the backend fails, the
 * client goes away.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { AuditRecord } from "../../shared/audit/index.ts";
import { failureMessage } from "../../shared/protocol/index.ts";
import type { LocalHub } from "../../agent/hub-local/run.ts";
import { TestAgent, mcpPost, tunnelId } from "../support/hub.ts";
import { hubRecords, startPolicyHub } from "./support.ts";

let hub: LocalHub;
let next = 1;

before(async () => {
  hub = await startPolicyHub({ livenessMs: 1000, responseTimeoutMs: 800, sseKeepaliveMs: 200 });
});
after(() => hub.close());

function fresh(): { id: string; agent: TestAgent; url: URL } {
  const id = tunnelId(next++);
  return { id, agent: new TestAgent(hub.url, id), url: new URL(`v1/mcp/${id}`, hub.url) };
}

const records = (id: string): Promise<AuditRecord[]> => hubRecords(hub, id);

/** Wait until the tunnel's log holds an outcome for every request record (outcomes may be written just after the answer). */
async function settled(id: string): Promise<AuditRecord[]> {
  for (let attempt = 0; ; attempt++) {
    const log = await records(id);
    const requests = log.filter((r) => r.phase === "request").length;
    if (log.filter((r) => r.phase === "outcome").length >= requests || attempt === 50) return log;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const echo = (id: number) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "echo", arguments: { message: "m" } },
});
const outcomes = (log: AuditRecord[]) => log.map((r) => [r.phase, r.decision, r.response_status ?? null]);

describe("hub mode: failures leave an outcome record", () => {
  test("a body no digest can encode (-1e999) is refused with the rule and recorded, not a 500 without a record", async () => {
    const { id, agent, url } = fresh();
    await agent.poll({ timeoutMs: 1 });
    const response = await mcpPost(
      url,
      '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":-1e999}}}',
    );
    assert.equal(response.status, 200);
    const body = (await response.json()) as { id: number; error: { data: { rule: string } } };
    assert.deepEqual([body.id, body.error.data.rule], [9, "guard:inexact-json"]);
    const log = await settled(id);
    assert.deepEqual(outcomes(log), [
      ["request", "deny", null],
      ["outcome", "deny", "denied"],
    ]);
    assert.equal(log[0]!.arguments, null, "what cannot be encoded is not recorded");
  });

  test("no agent connected: 503, recorded as failed", async () => {
    const { id, url } = fresh();
    const response = await mcpPost(url, echo(1));
    assert.equal(response.status, 503);
    assert.deepEqual(outcomes(await settled(id)), [
      ["request", "allow", null],
      ["outcome", "allow", "failed"],
    ]);
  });

  test("the agent takes the call and never answers: 504, recorded as timeout (JSON and SSE)", async () => {
    for (const accept of ["application/json", "text/event-stream"]) {
      const { id, agent, url } = fresh();
      const polled = agent.poll({ timeoutMs: 3000 });
      const response = mcpPost(url, echo(2), { accept });
      assert.equal((await polled).commands.length, 1);
      const answer = await response;
      await answer.text();
      const log = await settled(id);
      assert.deepEqual(outcomes(log).at(-1), ["outcome", "allow", "timeout"], `${accept}: ${JSON.stringify(log)}`);
    }
  });

  test("the backend fails the call: recorded as failed", async () => {
    const { id, agent, url } = fresh();
    const polled = agent.poll({ timeoutMs: 3000 });
    const response = mcpPost(url, echo(3));
    const [command] = (await polled).commands;
    await agent.respond(command!, {
      resp_json: failureMessage(3, { source: "target_http", status: 500 }),
      resp_code: 502,
      resp_type: "jsonrpc_response",
    });
    await (await response).text();
    assert.deepEqual(outcomes(await settled(id)).at(-1), ["outcome", "allow", "failed"]);
  });

  test("the client goes away mid-call: recorded as cancelled", async () => {
    const { id, agent, url } = fresh();
    const controller = new AbortController();
    const polled = agent.poll({ timeoutMs: 3000 });
    const response = mcpPost(url, echo(4), { signal: controller.signal, accept: "text/event-stream" }).catch(
      () => undefined,
    );
    assert.equal((await polled).commands.length, 1);
    controller.abort();
    await response;
    assert.deepEqual(outcomes(await settled(id)).at(-1), ["outcome", "allow", "cancelled"]);
  });
});
