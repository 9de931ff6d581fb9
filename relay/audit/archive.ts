/**
 * Sealed segments in R2: every `AIRLOCK_AUDIT_SEGMENT_RECORDS` records, the tunnel's
 * `AuditLog` writes the segment as NDJSON plus its seal (both ends pinned, see
 * shared/audit/seal.ts). With an R2 bucket lock the objects cannot be changed or deleted
 * for the lock's period, so a copy of the log exists that not even the Worker can rewrite.
 *
 *   <tunnel>/<first seq, 12 digits>-<last seq>.ndjson
 *   <tunnel>/<first seq, 12 digits>-<last seq>.seal.json
 */
import { sealSegment, toNdjson, verifyChain, type AuditRecord, type SegmentSeal } from "../../shared/audit/index.ts";
import type { ArchiveBucket } from "./sql.ts";

/** The object key of a segment (without extension); zero-padded so keys sort by seq. */
export function segmentKey(tunnel: string, first: number, last: number): string {
  return `${tunnel}/${String(first).padStart(12, "0")}-${String(last).padStart(12, "0")}`;
}

/**
 * Verify and seal a contiguous range of records, without storing it anywhere: the local
 * hub keeps the seal in SQLite when retention deletes records and no R2 bucket is bound.
 */
export async function sealLocally(records: readonly AuditRecord[]): Promise<SegmentSeal> {
  const first = records[0];
  if (!first) throw new Error("no records to seal");
  const checked = await verifyChain(records, { start: { seq: first.seq - 1, hash: first.prev_hash } });
  if (!checked.ok) throw new Error(`the segment does not verify at seq ${checked.seq}: ${checked.reason}`);
  return sealSegment(records);
}

/** Verify, seal and store a contiguous range of records; returns the seal. */
export async function sealArchive(bucket: ArchiveBucket, records: readonly AuditRecord[]): Promise<SegmentSeal> {
  const seal = await sealLocally(records);
  const key = segmentKey(seal.tunnel, seal.first_seq, seal.last_seq);
  const metadata = { first_seq: String(seal.first_seq), last_seq: String(seal.last_seq), head_hash: seal.head_hash };
  await bucket.put(`${key}.ndjson`, toNdjson(records), {
    httpMetadata: { contentType: "application/x-ndjson" },
    customMetadata: metadata,
  });
  await bucket.put(`${key}.seal.json`, `${JSON.stringify(seal)}\n`, {
    httpMetadata: { contentType: "application/json" },
    customMetadata: metadata,
  });
  return seal;
}
