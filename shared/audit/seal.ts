/**
 * Segment seals for exporting a chain in pieces (e.g. to an R2 bucket with a lock, so
 * the pieces are write-once). A seal pins a range by its two ends — the link before
 * the first record and the hash of the last — so the range verifies on its own and
 * nothing can be cut from either end. `seal_hash` covers the seal itself.
 */
import { canonicalJson, sha256Hex } from "./digest.ts";
import type { AuditRecord } from "./record.ts";
import { verifyChain, type VerifyResult, type VerifySource } from "./verify.ts";

export interface SegmentSeal {
  tunnel: string;
  first_seq: number;
  last_seq: number;
  /** prev_hash of the first record: the hash of the segment before (or genesis). */
  prev_hash: string;
  /** hash of the last record. */
  head_hash: string;
  sealed_at: string;
  seal_hash: string;
}

/** Seal a non-empty, contiguous range of records (verify it first; sealing does not). */
export async function sealSegment(
  records: readonly AuditRecord[],
  options: { now?: () => Date } = {},
): Promise<SegmentSeal> {
  const first = records[0];
  const last = records.at(-1);
  if (!first || !last) throw new Error("cannot seal an empty segment");
  const body = {
    tunnel: first.tunnel,
    first_seq: first.seq,
    last_seq: last.seq,
    prev_hash: first.prev_hash,
    head_hash: last.hash,
    sealed_at: (options.now ?? (() => new Date()))().toISOString(),
  };
  return { ...body, seal_hash: await sha256Hex(canonicalJson(body)) };
}

/** Verify a segment against its seal: the seal's own hash, then the chain between its two ends. */
export async function verifySegment(source: VerifySource, seal: SegmentSeal): Promise<VerifyResult> {
  const { seal_hash: _ignored, ...body } = seal;
  if (seal.seal_hash !== (await sha256Hex(canonicalJson(body)))) {
    return { ok: false, index: 0, seq: null, reason: "the seal's hash does not match its fields: the seal was edited" };
  }
  return verifyChain(source, {
    start: { seq: seal.first_seq - 1, hash: seal.prev_hash },
    expectHead: { seq: seal.last_seq, hash: seal.head_hash },
  });
}
