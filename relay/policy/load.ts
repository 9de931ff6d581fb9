/**
 * What one deployment enforces, read from Worker variables: the policy (`AIRLOCK_POLICY`,
 * YAML or JSON text, see docs/policy.md), whether the audit log is kept
 * (`AIRLOCK_AUDIT`), auditor tokens valid for every tunnel, and the size of sealed
 * segments and how many records are retained. Parsed once per isolate for a given text: Workers reuse isolates, and
 * compiling a policy on every request would be wasted work.
 */
import { parsePolicy, type Policy } from "../../shared/policy/index.ts";
import { HubConfigError, type HubVars } from "../config.ts";

/** Records per sealed segment when `AIRLOCK_AUDIT_SEGMENT_RECORDS` is unset. */
export const DEFAULT_SEGMENT_RECORDS = 1000;

export interface Enforcement {
  /** Undefined when `AIRLOCK_POLICY` is unset: nothing is refused, nothing filtered, nothing pinned. */
  policy?: Policy;
  /** Keep the audit log (`AIRLOCK_AUDIT` is not `off`). */
  audit: boolean;
  /** Digests of auditor tokens valid for every tunnel. */
  auditorDigests: readonly string[];
  /** Records per sealed segment exported to R2. */
  segmentRecords: number;
  /** Records the audit log keeps (`AIRLOCK_AUDIT_RETAIN_RECORDS`); undefined → all. */
  retainRecords?: number;
}

const DIGEST = /^[0-9a-f]{64}$/;

let cached: { key: string; enforcement: Enforcement } | undefined;

function parseFlag(raw: string | undefined): boolean {
  const value = (raw ?? "on").trim().toLowerCase();
  if (value === "on" || value === "true" || value === "1" || value === "") return true;
  if (value === "off" || value === "false" || value === "0") return false;
  throw new HubConfigError(`AIRLOCK_AUDIT is "${value.slice(0, 20)}": write on or off`);
}

/** Comma-separated SHA-256 digests of tokens (`variable` names the setting in errors). */
export function parseDigests(raw: string | undefined, variable = "AIRLOCK_AUDITOR_TOKEN_SHA256"): string[] {
  const digests = (raw ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  const bad = digests.findIndex((digest) => !DIGEST.test(digest));
  if (bad >= 0) {
    throw new HubConfigError(
      `${variable}[${bad}]: expected a lowercase hex SHA-256 digest (64 characters), comma-separated`,
    );
  }
  return digests;
}

function parseSegment(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === "") return DEFAULT_SEGMENT_RECORDS;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new HubConfigError(`AIRLOCK_AUDIT_SEGMENT_RECORDS is "${raw.slice(0, 20)}": expected a positive integer`);
  return value;
}

/** `AIRLOCK_AUDIT_RETAIN_RECORDS`: a count, or unset / `all` to keep every record. */
function parseRetain(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === "" || raw.trim().toLowerCase() === "all") return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new HubConfigError(
      `AIRLOCK_AUDIT_RETAIN_RECORDS is "${raw.slice(0, 20)}": expected a positive number of records, or "all" to keep every record`,
    );
  }
  return value;
}

/** Read the policy and audit settings; an invalid policy throws a {@link HubConfigError} listing every problem. */
export function loadEnforcement(vars: HubVars): Enforcement {
  const key = JSON.stringify([
    vars.AIRLOCK_POLICY,
    vars.AIRLOCK_AUDIT,
    vars.AIRLOCK_AUDITOR_TOKEN_SHA256,
    vars.AIRLOCK_AUDIT_SEGMENT_RECORDS,
    vars.AIRLOCK_AUDIT_RETAIN_RECORDS,
  ]);
  if (cached?.key === key) return cached.enforcement;
  let policy: Policy | undefined;
  const text = vars.AIRLOCK_POLICY;
  if (text !== undefined && text.trim() !== "") {
    const parsed = parsePolicy(text, { source: "AIRLOCK_POLICY" });
    if (!parsed.ok) throw new HubConfigError(`invalid policy: ${parsed.errors.join("; ")}`);
    policy = parsed.policy;
  }
  const enforcement: Enforcement = {
    ...(policy ? { policy } : {}),
    audit: parseFlag(vars.AIRLOCK_AUDIT),
    auditorDigests: parseDigests(vars.AIRLOCK_AUDITOR_TOKEN_SHA256),
    segmentRecords: parseSegment(vars.AIRLOCK_AUDIT_SEGMENT_RECORDS),
  };
  const retainRecords = parseRetain(vars.AIRLOCK_AUDIT_RETAIN_RECORDS);
  if (retainRecords !== undefined) enforcement.retainRecords = retainRecords;
  cached = { key, enforcement };
  return enforcement;
}
