/**
 * Audit retention in the local hub (issue 17): with `auditRetainRecords` the tunnel's
 * `AuditLog` in workerd deletes records once they are sealed in a segment and more than
 * the bound are newer; the export then starts at the stored link before the first kept
 * record, verifies from there to the head, and `airlock audit verify` says where the
 * retained chain starts. Refused calls make the traffic: each writes a request and an
 * outcome record, no agent needed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../agent/cli/audit.ts";
import type { CliIo } from "../../agent/cli/options.ts";
import { startLocalHub, type LocalHub } from "../../agent/hub-local/run.ts";
import { AUDIT_HEAD_HEADER, AUDIT_START_HEADER, GENESIS, parseNdjson, verifyChain } from "../../shared/audit/index.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, tunnelId } from "../support/hub.ts";
import { AUDITOR_TOKEN, RELAY_POLICY } from "./support.ts";

const SEGMENT = 10;
const RETAIN = 20;
const CALLS = 40;
const TUNNEL = tunnelId(1);

let hub: LocalHub;
let stateDir: string;

before(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "airlock-retain-"));
  hub = await startLocalHub({
    policy: RELAY_POLICY,
    auditorToken: AUDITOR_TOKEN,
    auditSegmentRecords: SEGMENT,
    auditRetainRecords: RETAIN,
    stateDir,
    tunnels: [{ id: TUNNEL, agentKeys: [AGENT_KEY], clientTokens: [CLIENT_TOKEN] }],
  });
  const url = new URL(`v1/mcp/${TUNNEL}`, hub.url);
  for (let id = 1; id <= CALLS; id++) {
    // get-env is not allowed by the policy: refused and recorded (request + outcome).
    const response = await mcpPost(url, {
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "get-env", arguments: {} },
    });
    assert.equal(response.status, 200);
    await response.text();
  }
});
after(async () => {
  await hub?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const link = (value: string | null) => {
  const [seq, hash] = (value ?? "").split(" ");
  return { seq: Number(seq), hash: hash ?? "" };
};

function exportAudit(afterSeq?: number): Promise<Response> {
  const query = afterSeq === undefined ? "" : `?after=${afterSeq}`;
  return fetch(new URL(`v1/audit/${TUNNEL}${query}`, hub.url), {
    headers: { Authorization: `Bearer ${AUDITOR_TOKEN}` },
  });
}

test("records past the bound are gone once sealed; what remains verifies from the stored link to the head", async () => {
  const response = await exportAudit();
  assert.equal(response.status, 200);
  const head = link(response.headers.get(AUDIT_HEAD_HEADER));
  const start = link(response.headers.get(AUDIT_START_HEADER));
  const parsed = parseNdjson(await response.text());
  assert.ok(parsed.ok);
  const records = parsed.records;
  assert.equal(head.seq, CALLS * 2, "every call wrote two records");
  // Deleted only in whole sealed segments: at most the bound plus one segment stays.
  assert.ok(records.length >= RETAIN && records.length <= RETAIN + SEGMENT, `kept ${records.length} records`);
  assert.notEqual(start.seq, GENESIS.seq, "the retained chain no longer starts at genesis");
  assert.equal(start.seq % SEGMENT, 0, "deletion stops at a segment boundary");
  assert.equal(records[0]!.seq, start.seq + 1);
  assert.equal(records[0]!.prev_hash, start.hash);
  const verified = await verifyChain(records, { start, expectHead: head });
  assert.ok(verified.ok, JSON.stringify(verified));
  // From genesis the same records do not verify: the start link is what proves the rest.
  assert.equal((await verifyChain(records)).ok, false);
});

test("an export after a deleted seq starts at the retained chain's link", async () => {
  const response = await exportAudit(3);
  const start = link(response.headers.get(AUDIT_START_HEADER));
  const parsed = parseNdjson(await response.text());
  assert.ok(parsed.ok);
  assert.ok(start.seq > 3, `seq 3 is deleted: the export starts at the checkpoint, not at ${start.seq}`);
  assert.equal(parsed.records[0]!.seq, start.seq + 1);
  assert.ok((await verifyChain(parsed.records, { start })).ok);
});

test("airlock audit verify accepts the retained chain and says where it starts", async () => {
  let out = "";
  let err = "";
  const io: CliIo = {
    stdout: (text) => {
      out += text;
    },
    stderr: (text) => {
      err += text;
    },
    env: { AUDITOR: AUDITOR_TOKEN },
    cwd: stateDir,
  };
  const code = await main(["verify", new URL(`v1/audit/${TUNNEL}`, hub.url).href, "--token", "env:AUDITOR"], io);
  assert.equal(code, 0, err);
  assert.match(out, /^OK /);
  assert.match(out, /the retained chain starts after seq \d+ .*removed by the hub's retention/);
});
