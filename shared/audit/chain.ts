/**
 * Sealing records into a hash chain. `hash = SHA-256(canonical JSON of the record
 * without `hash`)`, and that includes `seq` and `prev_hash`, so editing, dropping,
 * inserting or reordering any record breaks every later link. One writer per chain
 * (the tunnel's `AuditLog` Durable Object) keeps `seq` gap-free.
 */
import { canonicalJson, sha256Hex } from "./digest.ts";
import { AuditRecord, GENESIS_HASH, completeFields, type AuditInput } from "./record.ts";

/** The end of a chain: the last record's seq and hash (seq 0 and {@link GENESIS_HASH} when empty). */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** The empty chain's head. */
export const GENESIS: ChainHead = { seq: 0, hash: GENESIS_HASH };

/** The hash a record must carry: over every field but `hash` itself. */
export async function recordHash(record: Omit<AuditRecord, "hash"> | AuditRecord): Promise<string> {
  const { hash: _ignored, ...rest } = record as AuditRecord;
  return sha256Hex(canonicalJson(rest));
}

/**
 * Seal the next record after `prevHash`. `seq` must be the previous seq + 1 (the
 * caller, as single writer, owns the counter). Throws when the fields are invalid:
 * an unsealable record is a bug in the writer, not data to keep.
 */
export async function appendRecord(prevHash: string, seq: number, fields: AuditInput): Promise<AuditRecord> {
  const unsealed = { seq, ...completeFields(fields), prev_hash: prevHash };
  // Validate with a placeholder hash before hashing: canonical JSON of invalid input may not exist.
  const checked = AuditRecord.safeParse({ ...unsealed, hash: GENESIS_HASH });
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new Error(`audit record ${seq} is invalid: ${issue?.path.join(".") || "(record)"}: ${issue?.message}`);
  }
  return { ...unsealed, hash: await recordHash(unsealed) };
}

/** An in-memory single writer: appends are serialised, so concurrent callers still get a gap-free chain. */
export interface AuditChain {
  append(fields: AuditInput): Promise<AuditRecord>;
  head(): ChainHead;
  records(): readonly AuditRecord[];
}

/** Start a chain in memory (tests, the agent's local log, `airlock demo`); `head` resumes an existing one. */
export function createAuditChain(options: { head?: ChainHead } = {}): AuditChain {
  let head = options.head ?? GENESIS;
  const records: AuditRecord[] = [];
  let tail: Promise<unknown> = Promise.resolve();
  return {
    append(fields) {
      const next = tail.then(async () => {
        const record = await appendRecord(head.hash, head.seq + 1, fields);
        head = { seq: record.seq, hash: record.hash };
        records.push(record);
        return record;
      });
      tail = next.catch(() => undefined);
      return next;
    },
    head: () => head,
    records: () => records,
  };
}
