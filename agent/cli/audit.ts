/**
 * `airlock audit verify <url|file> [--token env:NAME] [--after SEQ] [--subject SUB] [--json]`: re-walk an
 * audit hash chain — a relay's live export (`https://<relay>/v1/audit/<tunnel id>`) or an
 * NDJSON file saved from one — and name the first record that does not fit: edited,
 * deleted, inserted, reordered, or malformed. A live export also states the chain's head,
 * so records cut from its end are caught too. `--subject` then prints the records of one
 * caller: filtered after verification, so the whole chain is still verified.
 *
 * Exit status: 0 the chain verifies, 1 it does not (or the export could not be fetched),
 * 2 usage error.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import {
  GENESIS,
  ndjsonLines,
  parseRecord,
  verifyChain,
  type AuditRecord,
  type ChainHead,
  type VerifyOptions,
  type VerifyResult,
} from "../../shared/audit/index.ts";
import { AUDIT_HEAD_HEADER, AUDIT_START_HEADER } from "../../shared/audit/headers.ts";
import { helpText, parseFlags, processIo, UsageError, withUsageErrors } from "./options.ts";
import type { CliIo, FlagSpec } from "./options.ts";
import { hubErrorDetail, tokenFlag } from "./secret-flag.ts";

const FLAGS: Record<string, FlagSpec> = {
  token: { kind: "string", value: "REF", help: "auditor token for a URL, as env:NAME or file:/path" },
  after: {
    kind: "string",
    value: "SEQ",
    help: "the export starts after record SEQ (a URL gets ?after=SEQ; a file is such an export)",
  },
  subject: {
    kind: "string",
    value: "SUB",
    help: "after verifying the whole chain, print only this caller's records (NDJSON; the summary goes to stderr)",
  },
  json: { kind: "bool", help: "print the result as JSON" },
};

const SYNOPSIS = "airlock audit verify <url|file> [--token env:NAME] [--after SEQ] [--subject SUB] [--json]";
const DESCRIPTION = [
  "Re-walks an audit hash chain (NDJSON: a relay's /v1/audit/<tunnel id> export, or a file saved",
  "from one) and names the first record that was edited, deleted, inserted, reordered or malformed.",
  "Exit status: 0 the chain verifies, 1 it does not (or cannot be fetched), 2 usage error.",
].join("\n");

/** What `verify` found, as printed with --json. */
export interface AuditVerifyReport {
  source: string;
  result: VerifyResult;
  /** The head the relay stated for the export, when verifying a URL. */
  expectedHead?: ChainHead;
  /** With --subject: that caller's records, only when the whole chain verified. */
  subject?: { subject: string; records: AuditRecord[] };
  /**
   * Where the verified chain starts when the hub no longer holds its beginning: the link
   * before the first retained record (older records were sealed and deleted by retention).
   */
  retainedFrom?: ChainHead;
}

/**
 * Pass every line on to verification, keeping the records of `subject`. They are only
 * shown once the whole chain verified, so a filtered view never hides a broken chain.
 */
async function* keepSubject(
  lines: AsyncIterable<string>,
  subject: string,
  kept: Array<{ line: string; record: AuditRecord }>,
): AsyncGenerator<string> {
  for await (const line of lines) {
    const parsed = parseRecord(line);
    // The line as exported (not re-serialized), so the printed records still hash as they did.
    if (parsed.ok && parsed.record.subject === subject) kept.push({ line, record: parsed.record });
    yield line;
  }
}

function parseLink(value: string | null): ChainHead | undefined {
  const match = value === null ? null : /^(\d+) ([0-9a-f]{64})$/.exec(value.trim());
  return match ? { seq: Number(match[1]), hash: match[2]! } : undefined;
}

/** Lines of a file, with the first one peeked so an `--after` export starts at its own link. */
async function fileSource(
  path: string,
  after: number | undefined,
): Promise<{ lines: AsyncIterable<string>; options: VerifyOptions }> {
  const lines = ndjsonLines(createReadStream(path) as AsyncIterable<Uint8Array>);
  if (after === undefined) return { lines, options: { start: GENESIS } };
  const first = await lines.next();
  const parsed = first.done ? undefined : parseRecord(first.value);
  const start: ChainHead | "first" = parsed?.ok ? { seq: after, hash: parsed.record.prev_hash } : "first";
  async function* all(): AsyncGenerator<string> {
    if (!first.done) yield first.value;
    yield* lines;
  }
  return { lines: all(), options: { start } };
}

async function urlSource(
  url: URL,
  token: string | undefined,
  after: number | undefined,
): Promise<{ body: ReadableStream<Uint8Array>; options: VerifyOptions; head?: ChainHead } | { error: string }> {
  if (after !== undefined) url.searchParams.set("after", String(after));
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { Accept: "application/x-ndjson", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return {
      error: `cannot fetch ${url.origin}${url.pathname}: ${error instanceof Error ? error.message : String(error)}${cause}`,
    };
  }
  if (response.status !== 200 || !response.body) {
    const detail = await hubErrorDetail(response);
    const hint = response.status === 401 ? "; pass the auditor token with --token env:NAME" : "";
    return { error: `${url.origin}${url.pathname} answered HTTP ${response.status}: ${detail}${hint}` };
  }
  const head = parseLink(response.headers.get(AUDIT_HEAD_HEADER));
  const start = parseLink(response.headers.get(AUDIT_START_HEADER)) ?? (after ? "first" : GENESIS);
  return { body: response.body, options: { start, ...(head ? { expectHead: head } : {}) }, ...(head ? { head } : {}) };
}

function describeResult(report: AuditVerifyReport): string {
  const { result, source } = report;
  if (!result.ok) {
    const seq = result.seq === null ? "" : ` (seq ${result.seq})`;
    return `BROKEN  ${source}\n  record #${result.index + 1}${seq}: ${result.reason}\n`;
  }
  const range = result.count ? `, seq ${result.head.seq - result.count + 1}..${result.head.seq}` : "";
  const head = report.expectedHead ? "; ends at the head the relay stated" : "";
  const retained = report.retainedFrom
    ? `  the retained chain starts after seq ${report.retainedFrom.seq} (hash ${report.retainedFrom.hash}); earlier records were sealed and removed by the hub's retention\n`
    : "";
  return `OK  ${source}\n  ${result.count} record${result.count === 1 ? "" : "s"} verified${range}${head}\n${retained}  head ${result.head.hash}\n`;
}

export function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  return withUsageErrors("audit", io, () => audit(argv, io));
}

async function audit(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    io.stdout(helpText(SYNOPSIS, DESCRIPTION, FLAGS));
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "verify") throw new UsageError(`unknown subcommand "${sub}"; the audit command has: verify`);
  const flags = parseFlags("audit verify", rest, FLAGS);
  if (flags.help) {
    io.stdout(helpText(SYNOPSIS, DESCRIPTION, FLAGS));
    return 0;
  }
  if (flags.positionals.length !== 1)
    throw new UsageError(
      "name exactly one export to verify: a URL (https://<relay>/v1/audit/<tunnel id>) or an NDJSON file",
    );
  const target = flags.positionals[0]!;
  const rawAfter = flags.strings.get("after");
  if (rawAfter !== undefined && !/^\d{1,15}$/.test(rawAfter))
    throw new UsageError(`--after ${rawAfter} is not a record seq (0, 1, 2, …)`);
  const after = rawAfter === undefined ? undefined : Number(rawAfter);
  const token = await tokenFlag(flags, io, "env:AIRLOCK_AUDITOR_TOKEN");
  const subject = flags.strings.get("subject");
  const kept: Array<{ line: string; record: AuditRecord }> = [];
  const filtered = (lines: AsyncIterable<string>) =>
    subject === undefined ? lines : keepSubject(lines, subject, kept);

  let report: AuditVerifyReport;
  if (/^https?:\/\//i.test(target)) {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new UsageError(`"${target}" is not a URL`);
    }
    const source = await urlSource(url, token, after);
    if ("error" in source) {
      io.stderr(`airlock audit verify: ${source.error}\n`);
      return 1;
    }
    const start = source.options.start;
    const retainedFrom = typeof start === "object" && start.seq > (after ?? 0) ? start : undefined;
    report = {
      source: `${url.origin}${url.pathname}`,
      result: await verifyChain(filtered(ndjsonLines(source.body)), source.options),
      ...(source.head ? { expectedHead: source.head } : {}),
      ...(retainedFrom ? { retainedFrom } : {}),
    };
  } else {
    if (token !== undefined) throw new UsageError("--token is for a URL; a file needs none");
    const path = resolve(io.cwd, target);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) throw new UsageError(`${path} is not a file; give an NDJSON export or a URL`);
    const source = await fileSource(path, after);
    report = { source: path, result: await verifyChain(filtered(source.lines), source.options) };
  }
  if (subject !== undefined && report.result.ok)
    report.subject = { subject, records: kept.map((entry) => entry.record) };
  if (flags.bools.has("json")) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else if (subject === undefined) io.stdout(describeResult(report));
  else {
    // The records are the output (pipe them on); the verdict goes beside them.
    io.stderr(
      describeResult(report) +
        (report.result.ok ? `  ${kept.length} record${kept.length === 1 ? "" : "s"} of subject ${subject}\n` : ""),
    );
    if (report.result.ok) io.stdout(kept.map((entry) => `${entry.line.trim()}\n`).join(""));
  }
  return report.result.ok ? 0 : 1;
}
