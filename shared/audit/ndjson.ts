/**
 * NDJSON, the export format: one record per line, `\n`-terminated, in seq order.
 * Reading is streaming (a ReadableStream or async iterable is consumed line by line)
 * so verifying a long export never holds it whole. Lines are parsed strictly: a
 * duplicate key in an audit line is tampering, not something to resolve quietly.
 */
import { parseJsonStrict } from "../policy/json.ts";
import { AuditRecord } from "./record.ts";

const encoder = new TextEncoder();

/** One record as an NDJSON line (with its newline). */
export function ndjsonLine(record: AuditRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** Records as NDJSON text. */
export function toNdjson(records: Iterable<AuditRecord>): string {
  let out = "";
  for (const record of records) out += ndjsonLine(record);
  return out;
}

/** Records as an NDJSON byte stream, for an export response body. */
export function ndjsonStream(records: Iterable<AuditRecord> | AsyncIterable<AuditRecord>): ReadableStream<Uint8Array> {
  const iterator =
    Symbol.asyncIterator in records
      ? (records as AsyncIterable<AuditRecord>)[Symbol.asyncIterator]()
      : (records as Iterable<AuditRecord>)[Symbol.iterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(ndjsonLine(next.value)));
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

async function* chunksOf(
  source: ReadableStream<Uint8Array> | AsyncIterable<string | Uint8Array>,
): AsyncGenerator<string | Uint8Array> {
  if (!(source instanceof ReadableStream)) {
    yield* source;
    return;
  }
  const reader = source.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** The non-blank lines of NDJSON text, bytes or chunks (chunk boundaries may fall anywhere, `\r\n` accepted). */
export async function* ndjsonLines(
  source: string | ReadableStream<Uint8Array> | AsyncIterable<string | Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pending = "";
  const chunks = typeof source === "string" ? [source] : chunksOf(source);
  for await (const chunk of chunks) {
    pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      const line = pending.slice(0, newline).replace(/\r$/, "");
      pending = pending.slice(newline + 1);
      if (line.trim() !== "") yield line;
      newline = pending.indexOf("\n");
    }
  }
  pending += decoder.decode();
  if (pending.trim() !== "") yield pending.replace(/\r$/, "");
}

/** Parse and validate one NDJSON line (or an already-parsed value) as a record. */
export function parseRecord(line: unknown): { ok: true; record: AuditRecord } | { ok: false; reason: string } {
  let value = line;
  if (typeof line === "string") {
    const parsed = parseJsonStrict(line);
    if (!parsed.ok) return { ok: false, reason: `malformed line: ${parsed.reason}` };
    value = parsed.value;
  }
  const checked = AuditRecord.safeParse(value);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    return { ok: false, reason: `malformed record: ${issue?.path.join(".") || "(record)"}: ${issue?.message}` };
  }
  // The value as read, not zod's copy: the hash covers exactly what was exported.
  return { ok: true, record: value as AuditRecord };
}

/** Parse NDJSON text into validated records; the first bad line is reported by number (1-based). */
export function parseNdjson(
  text: string,
): { ok: true; records: AuditRecord[] } | { ok: false; line: number; reason: string } {
  const records: AuditRecord[] = [];
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") continue;
    const parsed = parseRecord(line);
    if (!parsed.ok) return { ok: false, line: index + 1, reason: parsed.reason };
    records.push(parsed.record);
  }
  return { ok: true, records };
}
