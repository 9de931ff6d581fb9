/**
 * Doctor's output: one aligned line per check, a result line, the next commands; with
 * `--explain` each check that did not pass adds what it means and how to fix it.
 */
import type { DoctorReport } from "./types.ts";

export function formatReport(report: DoctorReport, explain: boolean): string {
  const width = Math.min(34, Math.max(...report.checks.map((c) => c.id.length)));
  const lines: string[] = [];
  for (const c of report.checks) {
    lines.push(`${c.status.padEnd(4)}  ${c.id.padEnd(width)}  ${c.summary}`);
    if (explain && c.status !== "PASS") {
      lines.push(`      means: ${c.why}`);
      for (const [index, step] of (c.fix ?? []).entries()) lines.push(`      ${index === 0 ? "fix:  " : "      "}${index + 1}. ${step}`);
    }
  }
  lines.push("");
  if (report.result === "ok") {
    const warned = report.checks.filter((c) => c.status === "WARN").length;
    lines.push(`RESULT ok${warned ? ` (${warned} warning${warned > 1 ? "s" : ""}${explain ? "" : "; --explain says why"})` : ""}`);
  } else {
    lines.push(`RESULT fail: ${report.failed.join(", ")}`);
    if (!explain) lines.push("Run again with --explain for what each failure means and how to fix it.");
  }
  for (const step of report.next) lines.push(`NEXT   ${step}`);
  return lines.join("\n") + "\n";
}
