import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  appendRecord,
  canonicalJson,
  createAuditChain,
  GENESIS_HASH,
  ndjsonStream,
  parseNdjson,
  recordHash,
  sealSegment,
  sha256Hex,
  toNdjson,
  verifyChain,
  verifySegment,
  type AuditInput,
  type AuditRecord,
} from "../../shared/audit/index.ts";

const time = (seq: number) => new Date(Date.UTC(2025, 2, 1, 10, 0, seq)).toISOString();

function fields(seq: number, overrides: Partial<AuditInput> = {}): AuditInput {
  const phase = seq % 2 === 1 ? "request" : "outcome";
  return {
    time: time(seq),
    tunnel: "tunnel_a",
    channel: "main",
    request_id: `req-${Math.ceil(seq / 2)}`,
    phase,
    method: "tools/call",
    target_kind: "tool",
    target: "echo",
    arguments: { message: "[REDACTED]" },
    arguments_digest: `sha256:${"ab".repeat(32)}`,
    decision: "allow",
    rule: "rules[1]",
    reason: 'rules[1] allows tools/call "echo"',
    ...(phase === "outcome"
      ? { response_status: "ok", response_bytes: 120, response_digest: `sha256:${"cd".repeat(32)}`, latency_ms: 12.5 }
      : {}),
    agent_instance: "agent-1",
    ...overrides,
  };
}

async function chainOf(count: number): Promise<AuditRecord[]> {
  const chain = createAuditChain();
  for (let seq = 1; seq <= count; seq++) await chain.append(fields(seq));
  return [...chain.records()];
}

const lines = (records: AuditRecord[]) => toNdjson(records).trimEnd().split("\n");
const join = (items: string[]) => `${items.join("\n")}\n`;

describe("appendRecord", () => {
  test("seals a record: seq, prev_hash and a hash over everything else, in canonical JSON", async () => {
    const record = await appendRecord(GENESIS_HASH, 1, fields(1));
    assert.equal(record.seq, 1);
    assert.equal(record.prev_hash, "0".repeat(64));
    const { hash, ...rest } = record;
    assert.equal(hash, await sha256Hex(canonicalJson(rest)));
    assert.equal(record.response_status, null, "absent fields are null, so every record has one shape");
    assert.equal(record.reason, 'rules[1] allows tools/call "echo"');
  });

  test("refuses invalid fields, naming them", async () => {
    await assert.rejects(
      appendRecord(GENESIS_HASH, 1, fields(1, { time: "yesterday" })),
      /audit record 1 is invalid: time: expected an RFC 3339 time/,
    );
    await assert.rejects(
      appendRecord(GENESIS_HASH, 1, fields(1, { arguments: { n: Number.POSITIVE_INFINITY } })),
      /arguments: expected a JSON value/,
    );
    await assert.rejects(appendRecord("nope", 1, fields(1)), /prev_hash/);
    await assert.rejects(appendRecord(GENESIS_HASH, 0, fields(1)), /seq/);
  });

  test("concurrent appends to one chain stay gap-free and linked", async () => {
    const chain = createAuditChain();
    await Promise.all(Array.from({ length: 20 }, (_, i) => chain.append(fields(i + 1))));
    assert.deepEqual(
      chain.records().map((record) => record.seq),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.deepEqual(await verifyChain(chain.records()), { ok: true, count: 20, head: chain.head() });
  });
});

describe("verifyChain", () => {
  test("a chain verifies from records, NDJSON text and a byte stream split at awkward places", async () => {
    const records = await chainOf(6);
    const head = { seq: 6, hash: records[5]?.hash };
    assert.deepEqual(await verifyChain(records), { ok: true, count: 6, head });
    assert.deepEqual(await verifyChain(toNdjson(records)), { ok: true, count: 6, head });
    const bytes = new TextEncoder().encode(toNdjson(records).replace(/\n/g, "\r\n"));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
        controller.close();
      },
    });
    assert.deepEqual(await verifyChain(stream), { ok: true, count: 6, head });
    assert.deepEqual(await verifyChain(""), { ok: true, count: 0, head: { seq: 0, hash: GENESIS_HASH } });
  });

  test('arguments with odd keys ("__proto__", unicode) survive the NDJSON round trip', async () => {
    const args = JSON.parse('{"__proto__":{"x":1},"ключ":"é","emoji":"😀"}') as unknown;
    const chain = createAuditChain();
    await chain.append(fields(1, { arguments: args }));
    const text = toNdjson(chain.records());
    assert.ok(text.includes('"__proto__"'));
    assert.equal((await verifyChain(text)).ok, true);
    const parsed = parseNdjson(text);
    assert.ok(parsed.ok);
    assert.equal(await recordHash(parsed.records[0] as AuditRecord), chain.head().hash);
  });

  test("an edited field is caught at that record", async () => {
    const text = lines(await chainOf(8));
    text[4] = (text[4] as string).replace('"decision":"allow"', '"decision":"deny"');
    assert.deepEqual(await verifyChain(join(text)), {
      ok: false,
      index: 4,
      seq: 5,
      reason: "hash does not match the record's content: the record was edited",
    });
  });

  test("an edit with a recomputed hash is caught at the next record", async () => {
    const records = await chainOf(8);
    const forged = { ...(records[4] as AuditRecord), target: "delete_all" };
    forged.hash = await recordHash(forged);
    records[4] = forged;
    const result = await verifyChain(records);
    assert.ok(!result.ok);
    assert.deepEqual([result.index, result.seq], [5, 6]);
    assert.match(result.reason, /prev_hash does not match the hash of seq 5/);
  });

  test("a deleted record is caught where it is missing", async () => {
    const records = await chainOf(8);
    records.splice(3, 1);
    const result = await verifyChain(records);
    assert.ok(!result.ok);
    assert.deepEqual([result.index, result.seq], [3, 5]);
    assert.match(result.reason, /expected seq 4, found 5/);
  });

  test("reordered records are caught at the first one out of place", async () => {
    const records = await chainOf(8);
    [records[2], records[3]] = [records[3] as AuditRecord, records[2] as AuditRecord];
    const result = await verifyChain(records);
    assert.ok(!result.ok);
    assert.deepEqual([result.index, result.seq], [2, 4]);
  });

  test("an inserted record, even one correctly linked to its predecessor, breaks the chain after it", async () => {
    const records = await chainOf(8);
    const forged = await appendRecord((records[2] as AuditRecord).hash, 4, fields(4, { target: "delete_all" }));
    records.splice(3, 0, forged);
    const result = await verifyChain(records);
    assert.ok(!result.ok);
    assert.deepEqual([result.index, result.seq], [4, 4]);
    assert.match(result.reason, /expected seq 5, found 4/);
  });

  test("a renumbered chain (seqs rewritten after a deletion) is caught by its links", async () => {
    const records = await chainOf(6);
    records.splice(2, 1);
    for (const record of records.slice(2)) record.seq -= 1;
    const result = await verifyChain(records);
    assert.ok(!result.ok);
    assert.equal(result.index, 2);
    assert.match(result.reason, /prev_hash does not match/);
  });

  test("malformed lines are named: bad JSON, duplicate keys, unknown fields, missing fields", async () => {
    const text = lines(await chainOf(4));
    const at = async (index: number, line: string) => {
      const copy = [...text];
      copy[index] = line;
      return verifyChain(join(copy));
    };
    assert.deepEqual(await at(1, "{oops"), {
      ok: false,
      index: 1,
      seq: null,
      reason: ((await at(1, "{oops")) as { reason: string }).reason,
    });
    assert.match(((await at(1, "{oops")) as { reason: string }).reason, /^malformed line: invalid JSON/);
    assert.match(
      ((await at(2, (text[2] as string).replace('{"seq":3,', '{"seq":3,"seq":3,'))) as { reason: string }).reason,
      /duplicate key "seq"/,
    );
    assert.match(
      ((await at(2, (text[2] as string).replace('{"seq":3,', '{"seq":3,"extra":1,'))) as { reason: string }).reason,
      /malformed record: .*extra/i,
    );
    assert.match(
      ((await at(2, (text[2] as string).replace('"rule":"rules[1]",', ""))) as { reason: string }).reason,
      /malformed record: rule/,
    );
  });

  test("truncation at the end needs the expected head; partial exports verify from their start", async () => {
    const records = await chainOf(10);
    const head = { seq: 10, hash: (records[9] as AuditRecord).hash };
    assert.equal((await verifyChain(records.slice(0, 8))).ok, true, "a shorter chain is still a valid chain");
    const truncated = await verifyChain(records.slice(0, 8), { expectHead: head });
    assert.ok(!truncated.ok && /records are missing from the end/.test(truncated.reason));
    const after = records.slice(5);
    assert.equal((await verifyChain(after)).ok, false, "an export after seq 5 does not start at genesis");
    assert.deepEqual(
      await verifyChain(after, { start: { seq: 5, hash: (records[4] as AuditRecord).hash }, expectHead: head }),
      { ok: true, count: 5, head },
    );
    assert.deepEqual(await verifyChain(after, { start: "first" }), { ok: true, count: 5, head });
  });

  test("a 10,000-record chain verifies", async () => {
    const records = await chainOf(10_000);
    const result = await verifyChain(ndjsonStream(records));
    assert.ok(result.ok);
    assert.equal(result.count, 10_000);
  });
});

describe("segment seals", () => {
  test("a sealed segment verifies on its own; cutting either end or editing the seal is caught", async () => {
    const records = await chainOf(12);
    const segment = records.slice(4, 9);
    const seal = await sealSegment(segment, { now: () => new Date("2025-03-02T00:00:00Z") });
    assert.deepEqual(
      [seal.first_seq, seal.last_seq, seal.prev_hash, seal.head_hash],
      [5, 9, records[3]?.hash, records[8]?.hash],
    );
    assert.equal((await verifySegment(toNdjson(segment), seal)).ok, true);
    assert.equal((await verifySegment(segment.slice(0, 4), seal)).ok, false);
    assert.equal((await verifySegment(segment.slice(1), seal)).ok, false);
    const edited = await verifySegment(segment, { ...seal, last_seq: 8 });
    assert.ok(!edited.ok && /the seal was edited/.test(edited.reason));
    await assert.rejects(sealSegment([]), /empty segment/);
  });
});

describe("parseNdjson", () => {
  test("names the first bad line by number", async () => {
    const text = `${toNdjson(await chainOf(2))}\n{"seq":3}\n`;
    const parsed = parseNdjson(text);
    assert.ok(!parsed.ok);
    assert.equal(parsed.line, 4);
  });
});
