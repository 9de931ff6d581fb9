/**
 * Doctor's output, in tunnel-client's layout so scripts that read it keep working:
 * `CHECK <id> <STATUS> <summary>` per check, then `RESULT ok` + `NEXT …`, or `RESULT fail`,
 * `FAILED_CHECKS a,b` and `EXIT_CODE 2`; with `--explain` each check that did not pass adds
 * "Why this matters" and "What to do next". `--json` is tunnel-client's document.
 */
import type { DoctorReport } from "./types.ts";

export function formatReport(report: DoctorReport, explain: boolean): string {
  const lines: string[] = report.checks.map((c) => `CHECK ${c.id.padEnd(24)} ${c.status.padEnd(4)} ${c.summary}`);
  lines.push("");
  if (report.result === "ok") {
    lines.push("RESULT ok");
    for (const step of report.next) lines.push(`NEXT   ${step}`);
  } else {
    lines.push("RESULT fail");
    if (report.failed.length) lines.push(`FAILED_CHECKS ${report.failed.join(",")}`);
    lines.push("EXIT_CODE 2");
    if (!explain) lines.push("Run again with --explain for what each failure means and how to fix it.");
  }
  if (explain) {
    for (const c of report.checks) {
      if (c.status === "PASS") continue;
      lines.push("", `CHECK ${c.id}   ${c.status}`, "Why this matters:", `  ${c.why}`);
      if (c.fix?.length) lines.push("", "What to do next:", ...c.fix.map((step, index) => `  ${index + 1}. ${step}`));
    }
  }
  return `${lines.join("\n")}\n`;
}

/** tunnel-client's `doctor --json`: `next` is one command, omitted on failure; a check's fix is its `next`. */
export function reportJson(report: DoctorReport): Record<string, unknown> {
  return {
    result: report.result,
    ...(report.failed.length ? { failed_checks: report.failed } : {}),
    ...(report.result === "ok" && report.next[0] ? { next: report.next[0] } : {}),
    checks: report.checks.map((c) => ({
      id: c.id,
      status: c.status,
      summary: c.summary,
      why: c.why,
      ...(c.fix?.length ? { next: c.fix } : {}),
    })),
  };
}
