/** `airlock run --policy FILE`: the agent enforces the organisation's policy itself, as a real process. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { everythingStdioCommand } from "../support/everything.ts";
import { controlPlaneFlags, startAgentProcess, type AgentProcess } from "../support/agent-process.ts";

const EXAMPLE = fileURLToPath(new URL("../fixtures/policies/example.yaml", import.meta.url));
const KEY = "sk-policy-e2e-0123456789";

describe("agent with a local policy", () => {
  let cp: FakeControlPlane;
  let agent: AgentProcess;
  before(async () => {
    cp = await startFakeControlPlane({ apiKey: KEY });
    agent = await startAgentProcess(
      "node",
      [...controlPlaneFlags(cp, "env:KEY"), "--mcp.command", everythingStdioCommand().join(" "), "--policy", EXAMPLE],
      { KEY },
    );
  });
  after(async () => {
    await agent?.stop();
    await cp?.close();
  });

  test("allowed calls run; refused ones are answered with the rule and logged", async () => {
    const [init] = cp.enqueue({
      jsonrpc: {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } },
      },
    });
    await cp.waitForFinal(init!.request_id, 20_000);
    const [echo, env, list] = cp.enqueue(
      {
        jsonrpc: {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: { name: "echo", arguments: { message: "ok" } },
        },
      },
      { jsonrpc: { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "get-env", arguments: {} } } },
      { jsonrpc: { jsonrpc: "2.0", id: 4, method: "tools/list" } },
    );
    const echoed = (await cp.waitForFinal(echo!.request_id, 10_000)).payload.resp_json as {
      result: { content: unknown };
    };
    assert.deepEqual(echoed.result.content, [{ type: "text", text: "Echo: ok" }]);
    const refused = (await cp.waitForFinal(env!.request_id, 10_000)).payload.resp_json as {
      id: number;
      error: { code: number };
    };
    assert.equal(refused.id, 3);
    assert.equal(refused.error.code, -32003);
    const tools = (
      (await cp.waitForFinal(list!.request_id, 10_000)).payload.resp_json as {
        result: { tools: Array<{ name: string }> };
      }
    ).result.tools;
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ["echo", "get-sum", "trigger-long-running-operation"]);
    assert.ok(
      agent
        .logs()
        .some(
          (record) =>
            record.msg === "the local policy refused a message; it was not forwarded" && record.target === "get-env",
        ),
    );
    cp.assertNoViolations();
  });
});
