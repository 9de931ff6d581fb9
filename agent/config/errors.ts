/**
 * Configuration and usage errors. Both mean "the operator must change how Airlock is
 * started", so both exit with code 2. Messages never carry secret values: the loader
 * scrubs every resolved secret from them before they are thrown.
 */
import type { ConfigIssue } from "../../shared/config/schema.ts";

export const EXIT_USAGE = 2;

export class ConfigError extends Error {
  /** `usage`: bad command line (unknown flag, missing value); `config`: a bad or missing setting. */
  readonly kind: "usage" | "config";
  /** Key path of the first problem (`control_plane.tunnel_id`), or the flag for usage errors. */
  readonly path: string;
  /** Every problem found, when there were several. */
  readonly issues: ConfigIssue[];
  readonly exitCode = EXIT_USAGE;

  constructor(issues: ConfigIssue[], options: { kind?: "usage" | "config"; where?: string } = {}) {
    const first = issues[0] ?? { path: "", message: "invalid configuration" };
    const where = options.where ? ` (${options.where})` : "";
    const lines = issues.map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message));
    super(lines.length === 1 ? `${lines[0]}${where}` : `${issues.length} problems${where}:\n  ${lines.join("\n  ")}`);
    this.name = "ConfigError";
    this.kind = options.kind ?? "config";
    this.path = first.path;
    this.issues = issues;
  }
}

/** One problem at one key path. */
export function configError(path: string, message: string): ConfigError {
  return new ConfigError([{ path, message }]);
}
