/**
 * `AuditLog`: one SQLite-backed Durable Object per tunnel (named by the tunnel id), the
 * single writer of that tunnel's audit hash chain, the keeper of its tool pins and, in
 * relay mode, of the commands handed to agents and not yet answered. The logic lives in
 * {@link AuditLogService}; this class binds it to the object's storage and decides when an
 * outcome is written (see {@link AuditLog.settle}).
 */
import { DurableObject } from "cloudflare:workers";
import type { AuditRecord, ChainHead, Digest } from "../../shared/audit/index.ts";
import type { PinReport, PinningMode, PolicyDecision, ToolPin } from "../../shared/policy/index.ts";
import type { HubVars } from "../config.ts";
import { outcomeAppendFailed } from "../policy/enforce.ts";
import { loadEnforcement } from "../policy/load.ts";
import {
  AuditLogService,
  type AdmitEntry,
  type AdmitOptions,
  type ApproveResult,
  type AuditLogApi,
  type OutcomeEntry,
  type PendingCommand,
} from "./audit-service.ts";
import type { ArchiveBucket, SqlDurableStorage } from "./sql.ts";

/** The variables and bindings the object reads. */
export interface AuditLogEnv extends HubVars {
  /** Optional R2 bucket for sealed segments. */
  AUDIT_ARCHIVE?: ArchiveBucket;
}

/** How long an outcome may wait for the next request record to share its write. */
const SETTLE_DELAY_MS = 20;

export class AuditLog extends DurableObject<AuditLogEnv> implements AuditLogApi {
  readonly #service: AuditLogService;
  /** Outcomes accepted and not yet written, in the order they came. */
  #settles: Array<() => Promise<void>> = [];
  #settleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(ctx: DurableObjectState, env: AuditLogEnv) {
    super(ctx, env);
    const { segmentRecords, retainRecords } = loadEnforcement(env);
    this.#service = new AuditLogService(ctx.storage as unknown as SqlDurableStorage, {
      segmentRecords,
      ...(retainRecords !== undefined ? { retainRecords } : {}),
      archive: env.AUDIT_ARCHIVE,
      background: (promise) => ctx.waitUntil(promise),
    });
  }

  async admit(entries: AdmitEntry[], options: AdmitOptions): Promise<PolicyDecision[]> {
    await this.#writeSettles();
    return this.#service.admit(entries, options);
  }

  async pending(requestId: string): Promise<PendingCommand | undefined> {
    await this.#writeSettles();
    return this.#service.pending(requestId);
  }

  async withhold(requestId: string, rule: string): Promise<void> {
    await this.#writeSettles();
    return this.#service.withhold(requestId, rule);
  }

  /**
   * Accept an outcome and write it with the next request record, or within
   * {@link SETTLE_DELAY_MS} when none comes. Every write holds this object's replies until it
   * is durable (the output gate: a commit, an fsync locally), so an outcome written on its own
   * made the next call's `admit` — which is on that call's path, before its command is queued —
   * wait for two commits instead of one. Written together they are one. Safe because:
   * the outcome is off the answer's path already (relay/policy/ingress-guard.ts); the request
   * record still is durable before its command is queued (admit writes it and replies after the
   * commit, with any outcomes waiting before it, so the chain keeps their order); every read
   * (pending, export, pages) writes waiting outcomes first, so nobody reads a log without them;
   * and a crash inside the window loses only outcomes, leaving request records without one —
   * what a failed outcome append leaves today, visible in the intact chain.
   */
  async settle(entry: OutcomeEntry, options: { tunnel: string; audit: boolean }): Promise<void> {
    this.#settles.push(() =>
      this.#service
        .settle(entry, options)
        .catch((error: unknown) => outcomeAppendFailed(options.tunnel, entry.requestId, error)),
    );
    this.#settleTimer ??= setTimeout(() => this.ctx.waitUntil(this.#writeSettles()), SETTLE_DELAY_MS);
  }

  async forget(requestId: string): Promise<void> {
    await this.#writeSettles();
    return this.#service.forget(requestId);
  }

  checkTools(tunnel: string, channel: string, tools: unknown[], mode: PinningMode): Promise<PinReport> {
    return this.#service.checkTools(tunnel, channel, tools, mode);
  }

  async exportInfo(after: number): Promise<{ head: ChainHead; start: ChainHead | undefined }> {
    await this.#writeSettles();
    return this.#service.exportInfo(after);
  }

  async page(after: number, through: number, limit: number): Promise<AuditRecord[]> {
    await this.#writeSettles();
    return this.#service.page(after, through, limit);
  }

  pins(): Promise<ToolPin[]> {
    return this.#service.pins();
  }

  async approve(tunnel: string, channel: string, tool: string, digest: Digest, audit: boolean): Promise<ApproveResult> {
    await this.#writeSettles();
    return this.#service.approve(tunnel, channel, tool, digest, audit);
  }

  /** Write the outcomes waiting, in order (each one's failure is logged and counted where it was queued). */
  async #writeSettles(): Promise<void> {
    if (this.#settleTimer !== undefined) clearTimeout(this.#settleTimer);
    this.#settleTimer = undefined;
    const waiting = this.#settles;
    if (waiting.length === 0) return;
    this.#settles = [];
    for (const write of waiting) await write();
  }
}
