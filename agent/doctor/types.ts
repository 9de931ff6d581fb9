/**
 * `airlock doctor`'s vocabulary: a check has a stable id, a status, a one-line summary,
 * what it means (`why`) and, when it did not pass, what to do (`fix`). `--explain` prints
 * the last two; `--json` prints all of it.
 */

/** PASS fine · WARN works but deserves a look · FAIL `run` will not work · SKIP not applicable or blocked by an earlier failure. */
export type CheckStatus = "PASS" | "WARN" | "FAIL" | "SKIP";

export interface Check {
  /** Stable identifier, e.g. `tunnel_id` or `mcp_initialize main`. */
  id: string;
  status: CheckStatus;
  /** One line: what was found. */
  summary: string;
  /** What the check means for a running agent. */
  why: string;
  /** What to do, in order, when the status is not PASS. */
  fix?: string[];
}

export interface DoctorReport {
  /** `fail` when any check failed (exit code 2). */
  result: "ok" | "fail";
  failed: string[];
  checks: Check[];
  /** The commands to run next. */
  next: string[];
}

/** Build a check; `fix` is kept only for checks that did not pass. */
export function check(id: string, status: CheckStatus, summary: string, why: string, fix?: string[]): Check {
  return status === "PASS" || !fix?.length ? { id, status, summary, why } : { id, status, summary, why, fix };
}
