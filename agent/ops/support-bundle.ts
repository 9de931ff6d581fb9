/**
 * The support bundle: one JSON document an operator can attach to a ticket. It holds the
 * configuration with every credential replaced, readiness, recent calls (names and numbers
 * only), the recent log records, a metrics snapshot and versions. Redaction happens twice:
 * structurally (API key, header and environment values, URL credentials and query strings)
 * and then by scrubbing every known secret value from the whole text, so a secret that
 * ended up somewhere unexpected (an error message, a backend's stderr) is caught too.
 */
import type { AgentConfig } from "../config/types.ts";
import { scrubSecrets } from "../../shared/log.ts";
import { RUNTIME, VERSION } from "../version.ts";
import type { Readiness } from "./app.ts";
import type { CallRecord, LogEntry } from "./recent.ts";
import { REDACTED } from "../../shared/audit/redact.ts";

export interface SupportBundleInput {
  config: AgentConfig;
  warnings?: readonly string[];
  readiness: Readiness;
  calls: readonly CallRecord[];
  logs: readonly LogEntry[];
  /** Prometheus text exposition at the time of the download. */
  metrics: string;
  secrets: Iterable<string>;
  instanceId?: string;
  startedAt: number;
  now: number;
}

/** Key names whose values are credentials or may carry them, wherever they appear in the config. */
const SECRET_MAPS = new Set(["headers", "extraHeaders", "discoveryExtraHeaders", "env"]);
const SECRET_VALUES = new Set(["apiKey"]);

/** A deep copy of the config with credentials replaced by {@link REDACTED}. */
export function redactConfig(config: AgentConfig): unknown {
  return redact(config, "");
}

function redact(value: unknown, key: string): unknown {
  if (SECRET_VALUES.has(key)) return value === "" ? "" : REDACTED;
  if (Array.isArray(value)) return value.map((item) => redact(item, ""));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [name, member] of Object.entries(value)) {
      out[name] = SECRET_MAPS.has(key) ? REDACTED : redact(member, name);
    }
    return out;
  }
  if (typeof value === "string") return redactUrl(value);
  return value;
}

/** `https://user:pass@host/p?token=x` → `https://[REDACTED]@host/p?[REDACTED]`; other strings unchanged. */
export function redactUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  const auth = url.username || url.password ? `${REDACTED}@` : "";
  const query = url.search ? `?${REDACTED}` : "";
  return `${url.protocol}//${auth}${url.host}${url.pathname}${query}`;
}

/** Build the bundle and return it as scrubbed JSON text. */
export function buildSupportBundle(input: SupportBundleInput): string {
  const bundle = {
    kind: "airlock-support-bundle",
    version: 1,
    createdAt: new Date(input.now).toISOString(),
    airlock: {
      version: VERSION,
      runtime: RUNTIME,
      ...(input.instanceId ? { instanceId: input.instanceId } : {}),
      startedAt: new Date(input.startedAt).toISOString(),
      uptimeSeconds: Math.max(0, Math.floor((input.now - input.startedAt) / 1000)),
    },
    readiness: input.readiness,
    config: redactConfig(input.config),
    configWarnings: input.warnings ?? [],
    recentCalls: input.calls,
    logs: input.logs,
    metrics: input.metrics,
  };
  // In JSON text a secret with quotes or backslashes appears escaped: scrub both spellings.
  const secrets = [...input.secrets].flatMap((secret) => [secret, JSON.stringify(secret).slice(1, -1)]);
  return scrubSecrets(JSON.stringify(bundle, null, 2), secrets);
}

/** `airlock-support-20260101T120000Z.json` */
export function supportBundleName(now: number): string {
  return `airlock-support-${new Date(now)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}.json`;
}
