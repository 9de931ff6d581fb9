/**
 * `airlock cloudflared version | config --token-file PATH [...]`: tunnel-client's Cloudflare
 * companion commands. Airlock runs no companion (it reaches the control plane by outbound HTTPS
 * long polls only), so `version` says so and fails: a script checking the bundled pin must not
 * read success. `config` is useful without a companion — it renders the token-free YAML for an
 * operator who runs cloudflared directly — so it renders the same file tunnel-client does.
 */
import { parseDuration } from "../../shared/protocol/duration.ts";
import { defineCommand, UsageError } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

/** What `cloudflared version` prints instead of a pin. */
export const NO_COMPANION =
  "airlock bundles no cloudflared and starts none: the agent reaches the control plane by outbound HTTPS long polls only, " +
  "so nothing needs an inbound tunnel. The cloudflared.* settings are accepted and ignored (docs/migrating.md). " +
  "To run cloudflared yourself, `airlock cloudflared config --token-file PATH` renders its config.\n";

/** The choices tunnel-client's `cloudflared config` validates, with its defaults first. */
const CHOICES = {
  "log-level": ["info", "debug", "warn", "error", "fatal"],
  "transport-log-level": ["warn", "debug", "info", "error", "fatal"],
  protocol: ["auto", "http2", "quic"],
  "edge-ip-version": ["auto", "4", "6"],
} as const;

const FLAGS: Record<string, FlagSpec> = {
  "token-file": {
    kind: "string",
    value: "PATH",
    help: "config: where cloudflared reads the tunnel token (never read or printed here); required",
  },
  "metrics-address": {
    kind: "string",
    value: "HOST:PORT",
    help: "config: cloudflared's metrics and readiness listener (default 127.0.0.1:20241)",
  },
  "log-level": { kind: "string", value: "LEVEL", help: "config: debug, info, warn, error or fatal (default info)" },
  "transport-log-level": {
    kind: "string",
    value: "LEVEL",
    help: "config: debug, info, warn, error or fatal (default warn)",
  },
  protocol: { kind: "string", value: "P", help: "config: auto, http2 or quic (default auto)" },
  "edge-ip-version": { kind: "string", value: "V", help: "config: auto, 4 or 6 (default auto)" },
  retries: { kind: "string", value: "N", help: "config: connection/protocol retries, ≥ 0 (default 5)" },
  "grace-period": { kind: "string", value: "DURATION", help: "config: shutdown budget, > 0 (default 30s)" },
};

export const main = defineCommand({
  name: "cloudflared",
  synopsis: "airlock cloudflared (version | config --token-file PATH [--metrics-address HOST:PORT] [...])",
  description:
    "tunnel-client's Cloudflare companion commands. Airlock runs no cloudflared: `version` says so and exits 1. " +
    "`config` prints a token-free cloudflared YAML for running cloudflared yourself, as tunnel-client does.",
  flags: FLAGS,
  // tunnel-client (cobra) exits 1 on any error, flags included.
  usageExit: 1,
  run: cloudflared,
});

async function cloudflared(flags: ParsedFlags, io: CliIo): Promise<number> {
  const [sub, ...rest] = flags.positionals;
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
  if (sub === "version") {
    io.stdout(NO_COMPANION);
    return 1;
  }
  if (sub !== "config")
    throw new UsageError(
      `unknown cloudflared command ${sub === undefined ? "(none)" : `"${sub}"`}; use \`airlock cloudflared version\` or \`airlock cloudflared config --token-file PATH\``,
    );
  io.stdout(renderCloudflaredConfig(readConfig(flags)));
  return 0;
}

export interface CloudflaredConfig {
  tokenFile: string;
  metricsAddress: string;
  logLevel: string;
  transportLogLevel: string;
  protocol: string;
  edgeIpVersion: string;
  retries: number;
  gracePeriodMs: number;
}

/** A one-line, non-empty value (it lands in YAML), trimmed. */
function scalar(name: string, value: string): string {
  const text = value.trim();
  if (text === "") throw new UsageError(`--${name} must not be empty`);
  if (/[\0\r\n]/.test(text)) throw new UsageError(`--${name} must be a single line`);
  return text;
}

function choice(flags: ParsedFlags, name: keyof typeof CHOICES): string {
  const allowed: readonly string[] = CHOICES[name];
  const value = scalar(name, flags.strings.get(name) ?? allowed[0]!);
  if (!allowed.includes(value))
    throw new UsageError(`invalid --${name} "${value}"; expected one of ${[...allowed].sort().join(", ")}`);
  return value;
}

function readConfig(flags: ParsedFlags): CloudflaredConfig {
  const tokenFile = flags.strings.get("token-file");
  if (tokenFile === undefined || tokenFile.trim() === "") throw new UsageError("--token-file is required");
  const metricsAddress = scalar("metrics-address", flags.strings.get("metrics-address") ?? "127.0.0.1:20241");
  const address = /^(.+):(\d+)$/.exec(metricsAddress);
  if (!address || address[1]!.replace(/^\[|\]$/g, "").trim() === "")
    throw new UsageError("--metrics-address must be HOST:PORT with a host, e.g. 127.0.0.1:20241");
  if (Number(address[2]) < 1 || Number(address[2]) > 65535)
    throw new UsageError("--metrics-address port must be between 1 and 65535");
  const retries = Number(flags.strings.get("retries") ?? "5");
  if (!Number.isInteger(retries) || retries < 0) throw new UsageError("--retries must be a non-negative integer");
  const grace = flags.strings.get("grace-period");
  const gracePeriodMs = grace === undefined ? 30_000 : parseDuration(grace);
  if (gracePeriodMs === undefined || gracePeriodMs <= 0)
    throw new UsageError("--grace-period must be a positive duration such as 30s");
  return {
    tokenFile: scalar("token-file", tokenFile),
    metricsAddress,
    logLevel: choice(flags, "log-level"),
    transportLogLevel: choice(flags, "transport-log-level"),
    protocol: choice(flags, "protocol"),
    edgeIpVersion: choice(flags, "edge-ip-version"),
    retries,
    gracePeriodMs,
  };
}

/** Go's `time.Duration.String()` for whole milliseconds: `30s`, `1m30s`, `1h0m0s`, `1.5s`, `250ms`. */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = `${(ms % 60_000) / 1000}s`;
  if (hours) return `${hours}h${minutes}m${seconds}`;
  return minutes ? `${minutes}m${seconds}` : seconds;
}

/** tunnel-client's standalone config, line for line; values quoted as Go's `strconv.Quote` does for them. */
export function renderCloudflaredConfig(config: CloudflaredConfig): string {
  const quote = (value: string) => JSON.stringify(value);
  return [
    "# Generated by airlock cloudflared config.",
    "# Token-free by design: the file references a token path but never embeds the token.",
    "# Run directly with: TUNNEL_MANAGEMENT_DIAGNOSTICS=false cloudflared tunnel --config /etc/cloudflared/config.yml run",
    `token-file: ${quote(config.tokenFile)}`,
    "no-autoupdate: true",
    `metrics: ${quote(config.metricsAddress)}`,
    `loglevel: ${quote(config.logLevel)}`,
    `transport-loglevel: ${quote(config.transportLogLevel)}`,
    `protocol: ${quote(config.protocol)}`,
    `edge-ip-version: ${quote(config.edgeIpVersion)}`,
    `retries: ${config.retries}`,
    `grace-period: ${quote(goDuration(config.gracePeriodMs))}`,
    "",
  ].join("\n");
}
