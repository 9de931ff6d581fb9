/**
 * "No record, no hand-out" without losing work: when the relay's audit log cannot record
 * a poll's commands, the agent gets none of them, and the upstream hears at once that
 * each was refused (a `-32603` error for a request, `notify_ack` 503 for a notification),
 * under the command's own shard token — instead of its caller waiting for a timeout.
 * The relay app runs in-process with a broken `AUDIT_LOG` binding in front of the
 * contract-checking fake control plane.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createWorkerApp } from "../../relay/app.ts";
import type { AuditLogApi } from "../../relay/audit/audit-service.ts";
import type { TunnelHubApi } from "../../relay/hub/hub-service.ts";
import { sha256Hex } from "../../shared/audit/index.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { TestAgent } from "../support/hub.ts";

const UPSTREAM_KEY = "sk-upstream-audit-failure-0123";
const AGENT_KEY = "relay-agent-key-audit-failure";

let cp: FakeControlPlane;
before(async () => {
  cp = await startFakeControlPlane({ apiKey: UPSTREAM_KEY, maxHoldMs: 500 });
});
after(() => cp.close());

/** An `AUDIT_LOG` namespace whose object fails every write, as a full or unavailable database would. */
const brokenAuditLog = {
  idFromName: (name: string) => ({ name }),
  get: () =>
    ({
      admit: () => Promise.reject(new Error("SQLITE_FULL: database or disk is full")),
    }) as unknown as AuditLogApi,
};

test("an audit log that cannot record: nothing reaches the agent, and every taken command is refused upstream at once", async () => {
  const env = {
    AIRLOCK_TUNNELS: JSON.stringify({
      [cp.tunnelId]: { agent_key_sha256: [await sha256Hex(AGENT_KEY)], upstream_url: cp.baseUrl },
    }),
    AIRLOCK_UPSTREAM_KEY: UPSTREAM_KEY,
    AUDIT_LOG: brokenAuditLog,
  };
  // Relay tunnels never call their hub.
  const app = createWorkerApp({ hub: () => ({}) as TunnelHubApi });
  const [call, note] = cp.enqueue(
    {
      jsonrpc: { jsonrpc: "2.0", id: 41, method: "tools/call", params: { name: "echo", arguments: { message: "hi" } } },
    },
    { jsonrpc: { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7 } } },
  );

  const agent = new TestAgent(new URL("http://relay.test/"), cp.tunnelId, {
    key: AGENT_KEY,
    channels: [{ name: "main" }],
  });
  const polled = await app.request(
    `${agent.url("/poll").pathname}?limit=25&timeout_ms=300`,
    { headers: agent.headers() },
    env,
  );
  assert.equal(polled.status, 503);
  assert.equal(polled.headers.get("retry-after"), "1");
  const body = await polled.text();
  assert.match(body, /could not record the polled commands in its audit log/);
  assert.doesNotMatch(body, /tools\/call|echo/, "no command reaches the agent");

  const refused = await cp.waitForFinal(call!.request_id, 3000);
  assert.equal(refused.shardToken, call!.shard_token);
  assert.equal(refused.payload.resp_type, "jsonrpc_response");
  const error = refused.payload.resp_json as { id: unknown; error: { code: number; message: string } };
  assert.equal(error.id, 41);
  assert.equal(error.error.code, -32603);
  assert.match(error.error.message, /could not record this request in its audit log/);

  const acked = await cp.waitForFinal(note!.request_id, 3000);
  assert.equal(acked.shardToken, note!.shard_token);
  assert.deepEqual([acked.payload.resp_type, acked.payload.resp_code], ["notify_ack", 503]);
  cp.assertNoViolations();
});
