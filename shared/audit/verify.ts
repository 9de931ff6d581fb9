/**
 * Re-walking a chain and naming the first record that does not fit. Checks per
 * record, in order: it parses and validates; its seq follows the previous one (a gap
 * or step back means records were deleted, inserted or reordered); its prev_hash is
 * the previous record's hash (same causes, when seqs were rewritten too); its hash
 * matches its content (an edit). Removing records from the *end* leaves a valid but
 * shorter chain: pass `expectHead` (from the writer, or a segment seal) to catch it.
 */
import { GENESIS, recordHash, type ChainHead } from "./chain.ts";
import { ndjsonLines, parseRecord } from "./ndjson.ts";
import type { AuditRecord } from "./record.ts";

export type VerifyResult =
  | { ok: true; count: number; head: ChainHead }
  /** `index` is the 0-based position of the bad record among the records read; `seq` its seq when readable. */
  | { ok: false; index: number; seq: number | null; reason: string };

export interface VerifyOptions {
  /**
   * What precedes the first record: `GENESIS` (the default) for a whole chain, the
   * head before an `?after=SEQ` export, or `"first"` to trust the first record's link.
   */
  start?: ChainHead | "first";
  /** The head the chain must end at. */
  expectHead?: ChainHead;
}

/**
 * What to verify: NDJSON text, an NDJSON byte stream, or records / NDJSON lines
 * (strings) from an iterable or async iterable.
 */
export type VerifySource = string | ReadableStream<Uint8Array> | Iterable<unknown> | AsyncIterable<unknown>;

function items(source: VerifySource): Iterable<unknown> | AsyncIterable<unknown> {
  return typeof source === "string" || source instanceof ReadableStream ? ndjsonLines(source) : source;
}

/**
 * Records are hashed a window at a time, concurrently: WebCrypto digests are async,
 * and awaiting them one by one is several times slower. Links are still checked in
 * order, so the first bad record reported is the same.
 */
const WINDOW = 256;

/** Verify a chain; see the module comment for what each failure means. */
export async function verifyChain(source: VerifySource, options: VerifyOptions = {}): Promise<VerifyResult> {
  let head: ChainHead | undefined = options.start === "first" ? undefined : (options.start ?? GENESIS);
  let index = 0;
  let window: unknown[] = [];

  const checkWindow = async (): Promise<VerifyResult | undefined> => {
    const parsed = window.map((item) => parseRecord(item));
    const bad = parsed.findIndex((result) => !result.ok);
    const records = (bad < 0 ? parsed : parsed.slice(0, bad)).map(
      (result) => (result as { record: AuditRecord }).record,
    );
    const hashes = await Promise.all(records.map((record) => recordHash(record)));
    for (const [offset, record] of records.entries()) {
      const fail = (reason: string): VerifyResult => ({ ok: false, index, seq: record.seq, reason });
      if (head && record.seq !== head.seq + 1) {
        return fail(
          `expected seq ${head.seq + 1}, found ${record.seq}: a record was deleted, inserted or reordered here`,
        );
      }
      if (head && record.prev_hash !== head.hash) {
        return fail(
          `prev_hash does not match the hash of seq ${head.seq}: the previous record was edited, or records were deleted, inserted or reordered`,
        );
      }
      if (record.hash !== hashes[offset])
        return fail("hash does not match the record's content: the record was edited");
      head = { seq: record.seq, hash: record.hash };
      index++;
    }
    if (bad >= 0) {
      const item = window[bad];
      const seq =
        typeof item === "object" && item !== null && Number.isInteger((item as { seq?: unknown }).seq)
          ? (item as { seq: number }).seq
          : null;
      return { ok: false, index, seq, reason: (parsed[bad] as { reason: string }).reason };
    }
    window = [];
    return undefined;
  };

  for await (const item of items(source)) {
    window.push(item);
    if (window.length < WINDOW) continue;
    const failure = await checkWindow();
    if (failure) return failure;
  }
  const failure = window.length ? await checkWindow() : undefined;
  if (failure) return failure;

  const end = head ?? GENESIS;
  if (options.expectHead && (end.seq !== options.expectHead.seq || end.hash !== options.expectHead.hash)) {
    return {
      ok: false,
      index,
      seq: null,
      reason: `the chain ends at seq ${end.seq}, but the expected head is seq ${options.expectHead.seq}: records are missing from the end (or the head is from another chain)`,
    };
  }
  return { ok: true, count: index, head: end };
}
