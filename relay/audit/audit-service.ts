/**
 * One tunnel's audit log, tool pins and (relay mode) the commands handed to agents and
 * not yet answered, over the SQLite database of the tunnel's `AuditLog` Durable Object.
 *
 * The object is the single writer of the tunnel's hash chain: appends go through one
 * promise chain, because hashing is asynchronous and two interleaved appends would
 * otherwise both link to the same head. A record is in SQLite before the call that
 * wrote it returns (the Durable Object's output gate holds the reply until the write is
 * durable), so a command's request record exists before any agent sees the command,
 * and a crash after that leaves a request record without an outcome — visible, with
 * the chain intact.
 */
import {
  GENESIS,
  appendRecord,
  identityFields,
  type AuditInput,
  type AuditRecord,
  type ChainHead,
  type Digest,
} from "../../shared/audit/index.ts";
import {
  approvePin,
  checkPinnedCall,
  checkPins,
  type CallerIdentity,
  type PinReport,
  type PinningMode,
  type PolicyDecision,
  type ToolPin,
} from "../../shared/policy/index.ts";
import { createPinTable, sqlPinStore } from "../policy/pin-store.ts";
import { sealArchive, sealLocally } from "./archive.ts";
import type { ArchiveBucket, SqlDurableStorage } from "./sql.ts";

/** The outcome of a command as an audit record states it. */
export interface OutcomeFields {
  decision: "allow" | "deny";
  rule: string;
  reason: string;
  /** `ok`, `error` (JSON-RPC error), `denied`, `failed`, `timeout`, `dropped`, … */
  response_status: string;
  response_bytes: number | null;
  response_digest: Digest | null;
  /** When the caller measured it; otherwise taken from the pending command. */
  latency_ms?: number | null;
}

/** A command about to be handed out (or refused), with the Worker's policy decision. */
export interface AdmitEntry {
  requestId: string | null;
  channel: string;
  agentInstance: string | null;
  decision: PolicyDecision;
  method: string | null;
  target_kind: "tool" | "prompt" | "resource" | null;
  target: string | null;
  /** Redacted copy of the arguments, and the digest of the original. */
  arguments: unknown;
  arguments_digest: Digest | null;
  /** Relay mode: remember the command until its response post (or `expiresAt`, epoch ms). */
  remember?: { expiresAt: number };
  /** Known at once (a refusal, a dropped command): the outcome record follows the request record. */
  outcome?: OutcomeFields;
  /** The call's W3C trace id, when it has one. */
  traceId?: string;
  /** Who called (hub mode); recorded on both phases. */
  identity?: CallerIdentity;
}

export interface AdmitOptions {
  tunnel: string;
  audit: boolean;
  pinning: PinningMode;
}

/** An outcome to record; fields the caller leaves out come from the pending command. */
export interface OutcomeEntry extends OutcomeFields {
  requestId: string | null;
  channel?: string;
  method?: string | null;
  target_kind?: AdmitEntry["target_kind"];
  target?: string | null;
  arguments_digest?: Digest | null;
  agentInstance?: string | null;
  /** The call's W3C trace id, when it has one. */
  traceId?: string;
  identity?: CallerIdentity;
}

/** What the relay remembers of a command between hand-out and response post. */
export interface PendingCommand {
  requestId: string;
  channel: string;
  method: string | null;
  target_kind: AdmitEntry["target_kind"];
  target: string | null;
  arguments_digest: Digest | null;
  agentInstance: string | null;
  handedOutAt: number;
  /** The outcome is recorded; later posts (retries) are forwarded without a second record. */
  settled: boolean;
  /** Intermediate messages withheld by the response checks, and the rule of the last one. */
  withheld: number;
  withheldRule: string | null;
}

/** The approved pin, or why the digest could not be approved. */
export type ApproveResult = { ok: true; pin: ToolPin } | { ok: false; reason: string };

/** The RPC surface of a tunnel's `AuditLog` Durable Object. */
export interface AuditLogApi {
  /** Pinning's say on allowed tool calls, then request records (and outcomes given), then pending rows. Returns the final decisions. */
  admit(entries: AdmitEntry[], options: AdmitOptions): Promise<PolicyDecision[]>;
  pending(requestId: string): Promise<PendingCommand | undefined>;
  withhold(requestId: string, rule: string): Promise<void>;
  /** Record an outcome once; a command already settled records nothing more. */
  settle(entry: OutcomeEntry, options: { tunnel: string; audit: boolean }): Promise<void>;
  /** The upstream took the final answer: drop the pending row. */
  forget(requestId: string): Promise<void>;
  checkTools(tunnel: string, channel: string, tools: unknown[], mode: PinningMode): Promise<PinReport>;
  /** The current head, and the link before `after` (undefined when that record does not exist). */
  exportInfo(after: number): Promise<{ head: ChainHead; start: ChainHead | undefined }>;
  /** Records with `after < seq <= through`, at most `limit`, in order. */
  page(after: number, through: number, limit: number): Promise<AuditRecord[]>;
  pins(): Promise<ToolPin[]>;
  approve(tunnel: string, channel: string, tool: string, digest: Digest, audit: boolean): Promise<ApproveResult>;
}

interface PendingRow extends Record<string, string | number | null> {
  request_id: string;
  channel: string;
  method: string | null;
  target_kind: string | null;
  target: string | null;
  arguments_digest: string | null;
  agent_instance: string | null;
  handed_out_at: number;
  settled: number;
  withheld: number;
  withheld_rule: string | null;
}

/** How a tunnel's audit log seals and exports segments. */
export interface AuditLogSettings {
  /** Records per sealed segment. */
  segmentRecords: number;
  /** Where sealed segments go; absent → not exported (logged once), or sealed locally when records are retained. */
  archive?: ArchiveBucket;
  /**
   * Keep at most about this many records (plus one unsealed segment): older records are
   * deleted once they are in a sealed segment, and the link before the first kept record
   * is stored so the rest still verifies. Absent → every record is kept.
   */
  retainRecords?: number;
  /** Keeps the object alive for work that outlives a call (the Durable Object's `waitUntil`). */
  background?: (promise: Promise<unknown>) => void;
  now?: () => number;
}

/** {@link AuditLogApi} over a Durable Object's SQLite storage. */
export class AuditLogService implements AuditLogApi {
  readonly #storage: SqlDurableStorage;
  readonly #settings: AuditLogSettings;
  readonly #now: () => number;
  readonly #pins;
  #head: ChainHead;
  #tail: Promise<unknown> = Promise.resolve();
  #warnedNoArchive = false;
  /** The sealing (and retention) in progress, if any. */
  #sealing: Promise<void> | undefined;

  constructor(storage: SqlDurableStorage, settings: AuditLogSettings) {
    this.#storage = storage;
    this.#settings = settings;
    this.#now = settings.now ?? (() => Date.now());
    const sql = storage.sql;
    sql.exec(
      "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, request_id TEXT, hash TEXT NOT NULL, record TEXT NOT NULL)",
    );
    sql.exec(`CREATE TABLE IF NOT EXISTS pending (request_id TEXT PRIMARY KEY, channel TEXT NOT NULL, method TEXT, target_kind TEXT,
      target TEXT, arguments_digest TEXT, agent_instance TEXT, handed_out_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
      settled INTEGER NOT NULL DEFAULT 0, withheld INTEGER NOT NULL DEFAULT 0, withheld_rule TEXT)`);
    sql.exec("CREATE INDEX IF NOT EXISTS pending_expiry ON pending (expires_at)");
    sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    sql.exec(
      "CREATE TABLE IF NOT EXISTS seals (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, seal TEXT NOT NULL)",
    );
    createPinTable(sql);
    this.#pins = sqlPinStore(sql);
    const last = sql
      .exec<{ seq: number; hash: string }>("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")
      .toArray()[0];
    this.#head = last ? { seq: last.seq, hash: last.hash } : GENESIS;
  }

  /** Seal and store records one after another; see the module comment for why this is serialised. */
  #append(inputs: AuditInput[]): Promise<AuditRecord[]> {
    const run = this.#tail.then(async () => {
      const written: AuditRecord[] = [];
      for (const input of inputs) {
        const record = await appendRecord(this.#head.hash, this.#head.seq + 1, input);
        this.#storage.sql.exec(
          "INSERT INTO records (seq, request_id, hash, record) VALUES (?, ?, ?, ?)",
          record.seq,
          record.request_id,
          record.hash,
          JSON.stringify(record),
        );
        this.#head = { seq: record.seq, hash: record.hash };
        written.push(record);
      }
      return written;
    });
    this.#tail = run.catch(() => undefined);
    // Sealing reads records already written, so it runs beside later appends rather than in
    // their way (verifying a 1000-record segment takes tens of ms); one sealing at a time.
    const sealing = run.then(() => this.#sealSoon()).catch(() => undefined);
    this.#settings.background?.(sealing);
    return run;
  }

  #time(): string {
    return new Date(this.#now()).toISOString();
  }

  async admit(entries: AdmitEntry[], options: AdmitOptions): Promise<PolicyDecision[]> {
    const now = this.#now();
    this.#storage.sql.exec("DELETE FROM pending WHERE expires_at < ?", now);
    const decisions: PolicyDecision[] = [];
    const inputs: AuditInput[] = [];
    for (const entry of entries) {
      let decision = entry.decision;
      if (
        decision.decision === "allow" &&
        entry.method === "tools/call" &&
        entry.target_kind === "tool" &&
        entry.target !== null
      ) {
        const pinned = await checkPinnedCall(this.#pins, options.pinning, {
          tunnel: options.tunnel,
          channel: entry.channel,
          tool: entry.target,
        });
        if (pinned)
          decision =
            pinned.decision === "deny" ? pinned : { ...decision, reason: `${decision.reason}; ${pinned.reason}` };
      }
      decisions.push(decision);
      const common = {
        tunnel: options.tunnel,
        channel: entry.channel,
        request_id: entry.requestId,
        method: entry.method,
        target_kind: entry.target_kind,
        target: entry.target,
        agent_instance: entry.agentInstance,
        ...(entry.traceId ? { trace_id: entry.traceId } : {}),
        ...identityFields(entry.identity),
      };
      inputs.push({
        ...common,
        time: this.#time(),
        phase: "request",
        arguments: entry.arguments,
        arguments_digest: entry.arguments_digest,
        decision: decision.decision,
        rule: decision.rule,
        reason: decision.reason,
      });
      if (entry.outcome) {
        inputs.push({
          ...common,
          time: this.#time(),
          phase: "outcome",
          arguments_digest: entry.arguments_digest,
          latency_ms: 0,
          ...entry.outcome,
        });
      } else if (entry.remember && entry.requestId !== null && decision.decision === "allow") {
        this.#storage.sql.exec(
          `INSERT OR REPLACE INTO pending (request_id, channel, method, target_kind, target, arguments_digest, agent_instance, handed_out_at, expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          entry.requestId,
          entry.channel,
          entry.method,
          entry.target_kind,
          entry.target,
          entry.arguments_digest,
          entry.agentInstance,
          now,
          entry.remember.expiresAt,
        );
      }
    }
    if (options.audit && inputs.length) await this.#append(inputs);
    return decisions;
  }

  async pending(requestId: string): Promise<PendingCommand | undefined> {
    const row = this.#storage.sql
      .exec<PendingRow>("SELECT * FROM pending WHERE request_id = ?", requestId)
      .toArray()[0];
    if (!row) return undefined;
    return {
      requestId: row.request_id,
      channel: row.channel,
      method: row.method,
      target_kind: row.target_kind as PendingCommand["target_kind"],
      target: row.target,
      arguments_digest: row.arguments_digest as Digest | null,
      agentInstance: row.agent_instance,
      handedOutAt: row.handed_out_at,
      settled: row.settled === 1,
      withheld: row.withheld,
      withheldRule: row.withheld_rule,
    };
  }

  async withhold(requestId: string, rule: string): Promise<void> {
    this.#storage.sql.exec(
      "UPDATE pending SET withheld = withheld + 1, withheld_rule = ? WHERE request_id = ?",
      rule,
      requestId,
    );
  }

  async settle(entry: OutcomeEntry, options: { tunnel: string; audit: boolean }): Promise<void> {
    const pending = entry.requestId === null ? undefined : await this.pending(entry.requestId);
    if (pending?.settled) return;
    if (pending) this.#storage.sql.exec("UPDATE pending SET settled = 1 WHERE request_id = ?", pending.requestId);
    if (!options.audit) return;
    let reason = entry.reason;
    if (pending && pending.withheld > 0) {
      reason += `; ${pending.withheld} intermediate message${pending.withheld === 1 ? "" : "s"} withheld (${pending.withheldRule})`;
    }
    await this.#append([
      {
        time: this.#time(),
        tunnel: options.tunnel,
        channel: entry.channel ?? pending?.channel ?? "main",
        request_id: entry.requestId,
        phase: "outcome",
        method: entry.method !== undefined ? entry.method : (pending?.method ?? null),
        target_kind: entry.target_kind !== undefined ? entry.target_kind : (pending?.target_kind ?? null),
        target: entry.target !== undefined ? entry.target : (pending?.target ?? null),
        arguments_digest:
          entry.arguments_digest !== undefined ? entry.arguments_digest : (pending?.arguments_digest ?? null),
        decision: entry.decision,
        rule: entry.rule,
        reason,
        response_status: entry.response_status,
        response_bytes: entry.response_bytes,
        response_digest: entry.response_digest,
        latency_ms: entry.latency_ms ?? (pending ? Math.max(0, this.#now() - pending.handedOutAt) : null),
        agent_instance: entry.agentInstance !== undefined ? entry.agentInstance : (pending?.agentInstance ?? null),
        ...(entry.traceId ? { trace_id: entry.traceId } : {}),
        ...identityFields(entry.identity),
      },
    ]);
  }

  async forget(requestId: string): Promise<void> {
    this.#storage.sql.exec("DELETE FROM pending WHERE request_id = ?", requestId);
  }

  async checkTools(tunnel: string, channel: string, tools: unknown[], mode: PinningMode): Promise<PinReport> {
    return checkPins(this.#pins, tunnel, channel, tools, { mode, now: () => new Date(this.#now()) });
  }

  async exportInfo(after: number): Promise<{ head: ChainHead; start: ChainHead | undefined }> {
    // Wait for appends in flight, so the head names a record that is stored, and for
    // retention in progress, so the start link names what the export will begin with.
    await this.#tail;
    await this.#sealing;
    // Records up to the retention checkpoint are gone: the retained chain starts at its link.
    const checkpoint = this.#checkpoint();
    if (checkpoint && after <= checkpoint.seq) return { head: this.#head, start: checkpoint };
    if (after <= 0) return { head: this.#head, start: GENESIS };
    const row = this.#storage.sql.exec<{ hash: string }>("SELECT hash FROM records WHERE seq = ?", after).toArray()[0];
    return { head: this.#head, start: row ? { seq: after, hash: row.hash } : undefined };
  }

  async page(after: number, through: number, limit: number): Promise<AuditRecord[]> {
    return this.#storage.sql
      .exec<{ record: string }>(
        "SELECT record FROM records WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        after,
        through,
        limit,
      )
      .toArray()
      .map((row) => JSON.parse(row.record) as AuditRecord);
  }

  async pins(): Promise<ToolPin[]> {
    return this.#pins.list();
  }

  async approve(tunnel: string, channel: string, tool: string, digest: Digest, audit: boolean): Promise<ApproveResult> {
    const before = await this.#pins.get(tunnel, channel, tool);
    const result = await approvePin(
      this.#pins,
      { tunnel, channel, tool, digest },
      { now: () => new Date(this.#now()) },
    );
    if (result.ok && audit) {
      // The approval itself goes into the chain: who may call what changed here.
      await this.#append([
        {
          time: this.#time(),
          tunnel,
          channel,
          phase: "outcome",
          method: null,
          target_kind: "tool",
          target: tool,
          decision: "allow",
          rule: "tool_pinning",
          reason: `definition ${digest} approved${before && before.digest !== digest ? ` (was ${before.digest})` : ""}`,
        },
      ]);
    }
    return result;
  }

  #meta(key: string): string | undefined {
    return this.#storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
  }

  #setMeta(key: string, value: string): void {
    this.#storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value);
  }

  /** The link before the first retained record, once retention has deleted records. */
  #checkpoint(): ChainHead | undefined {
    const value = this.#meta("retained_after");
    if (!value) return undefined;
    const [seq, hash] = value.split(" ");
    return { seq: Number(seq), hash: hash! };
  }

  #sealSoon(): Promise<void> {
    this.#sealing ??= this.#sealIfDue().finally(() => {
      this.#sealing = undefined;
    });
    return this.#sealing;
  }

  /**
   * Seal segments once enough records are past the last one: to R2 when bound, else
   * (when records are retained) into the object's own `seals` table; then apply
   * retention. Only records at or below the head are read, and they never change.
   */
  async #sealIfDue(): Promise<void> {
    const size = this.#settings.segmentRecords;
    const { archive, retainRecords } = this.#settings;
    let sealed = Number(this.#meta("sealed_through") ?? 0);
    while (this.#head.seq - sealed >= size) {
      if (!archive && retainRecords === undefined) {
        if (!this.#warnedNoArchive)
          console.log(
            `airlock audit: ${this.#head.seq - sealed} records ready for a sealed segment, but no AUDIT_ARCHIVE R2 binding is configured; segment export skipped`,
          );
        this.#warnedNoArchive = true;
        return;
      }
      const records = await this.page(sealed, sealed + size, size);
      try {
        const seal = archive ? await sealArchive(archive, records) : await sealLocally(records);
        this.#storage.sql.exec(
          "INSERT OR REPLACE INTO seals (first_seq, last_seq, seal) VALUES (?, ?, ?)",
          seal.first_seq,
          seal.last_seq,
          JSON.stringify(seal),
        );
        sealed += records.length;
        this.#setMeta("sealed_through", String(sealed));
      } catch (error) {
        // The records stay in SQLite; the next append tries again.
        console.error(`airlock audit: sealing the segment ${sealed + 1}-${sealed + records.length} failed`, error);
        return;
      }
    }
    this.#retain(sealed);
  }

  /** Delete sealed records beyond the retention bound, keeping the link before the first one left. */
  #retain(sealed: number): void {
    const keep = this.#settings.retainRecords;
    if (keep === undefined) return;
    const through = Math.min(sealed, this.#head.seq - keep);
    if (through <= (this.#checkpoint()?.seq ?? 0)) return;
    const row = this.#storage.sql
      .exec<{ hash: string }>("SELECT hash FROM records WHERE seq = ?", through)
      .toArray()[0];
    if (!row) return;
    this.#storage.transactionSync(() => {
      this.#storage.sql.exec("DELETE FROM records WHERE seq <= ?", through);
      // The link below stands for the deleted segments; their seals would only grow with calls.
      this.#storage.sql.exec("DELETE FROM seals WHERE last_seq <= ?", through);
      this.#setMeta("retained_after", `${through} ${row.hash}`);
    });
  }
}
