/**
 * `AuditLog`: one SQLite-backed Durable Object per tunnel (named by the tunnel id), the
 * single writer of that tunnel's audit hash chain, the keeper of its tool pins and, in
 * relay mode, of the commands handed to agents and not yet answered. The logic lives in
 * {@link AuditLogService}; this class only binds it to the object's storage.
 */
import { DurableObject } from "cloudflare:workers";
import type { AuditRecord, ChainHead, Digest } from "../../shared/audit/index.ts";
import type { PinReport, PinningMode, PolicyDecision, ToolPin } from "../../shared/policy/index.ts";
import type { HubVars } from "../config.ts";
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

export class AuditLog extends DurableObject<AuditLogEnv> implements AuditLogApi {
  readonly #service: AuditLogService;

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

  admit(entries: AdmitEntry[], options: AdmitOptions): Promise<PolicyDecision[]> {
    return this.#service.admit(entries, options);
  }

  pending(requestId: string): Promise<PendingCommand | undefined> {
    return this.#service.pending(requestId);
  }

  withhold(requestId: string, rule: string): Promise<void> {
    return this.#service.withhold(requestId, rule);
  }

  settle(entry: OutcomeEntry, options: { tunnel: string; audit: boolean }): Promise<void> {
    return this.#service.settle(entry, options);
  }

  forget(requestId: string): Promise<void> {
    return this.#service.forget(requestId);
  }

  checkTools(tunnel: string, channel: string, tools: unknown[], mode: PinningMode): Promise<PinReport> {
    return this.#service.checkTools(tunnel, channel, tools, mode);
  }

  exportInfo(after: number): Promise<{ head: ChainHead; start: ChainHead | undefined }> {
    return this.#service.exportInfo(after);
  }

  page(after: number, through: number, limit: number): Promise<AuditRecord[]> {
    return this.#service.page(after, through, limit);
  }

  pins(): Promise<ToolPin[]> {
    return this.#service.pins();
  }

  approve(tunnel: string, channel: string, tool: string, digest: Digest, audit: boolean): Promise<ApproveResult> {
    return this.#service.approve(tunnel, channel, tool, digest, audit);
  }
}
