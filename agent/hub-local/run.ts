/**
 * Run the hub Worker locally: the real `relay/index.ts` bundle in workerd through
 * Miniflare, with the `TunnelHub` Durable Object's storage persisted under a state
 * directory. This is what `airlock hub` and `airlock demo` start; tests use it too.
 *
 * Node-only (it bundles with esbuild and drives Miniflare); never imported by the Worker.
 * It touches no network beyond the loopback listener: Miniflare's `cf` lookup is off.
 */
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { build } from "esbuild";
import { Log, LogLevel, Miniflare } from "miniflare";
import type { ArchiveBucket } from "../../relay/audit/sql.ts";
import { sha256Hex } from "../../shared/audit/digest.ts";
import type { HubVars } from "../../relay/config.ts";
import { startFrontProxy, type FrontProxy, type FrontTimeouts } from "./front.ts";
import { packageRoot } from "../runtime/package-root.ts";

/** One tunnel served by the local hub. Keys and tokens are given in plain text here and hashed before the Worker sees them. */
export interface LocalTunnel {
  id: string;
  agentKeys: string[];
  clientTokens: string[];
  name?: string;
  description?: string;
  passClientAuthorization?: boolean;
  /** Relay mode for this tunnel: the upstream control plane's base URL (default: the hub's `upstream` option). */
  upstream?: string;
  /** The upstream API key in plain text (default: the hub's `upstreamKey` option); it stays inside the Worker. */
  upstreamKey?: string;
}

/** Optional overrides of the hub's limits (the `AIRLOCK_HUB_*` variables, see relay/config.ts). */
export interface LocalHubSettings {
  livenessMs?: number;
  maxPollHoldMs?: number;
  responseTimeoutMs?: number;
  maxQueued?: number;
  maxRequestBytes?: number;
  maxResponseBytes?: number;
  sseKeepaliveMs?: number;
  sessionIdleMs?: number;
  maxSessions?: number;
}

export interface LocalHubOptions {
  /** Listen address; loopback by default. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  tunnels: LocalTunnel[];
  /** Durable Object storage (agents, session affinity) survives restarts here; in memory when absent. */
  stateDir?: string;
  settings?: LocalHubSettings;
  /** Worker and workerd log lines; silent below warnings by default. */
  logLevel?: "error" | "warn" | "info" | "debug";
  /** Relay mode for every tunnel: the upstream control plane's base URL (docs/relay.md). */
  upstream?: string;
  /** The upstream API key (plain text), for every relay tunnel without its own. */
  upstreamKey?: string;
  /** The policy, YAML or JSON text (`AIRLOCK_POLICY`, docs/policy.md). */
  policy?: string;
  /** An auditor token (plain text, hashed before the Worker sees it) valid for every tunnel's audit export. */
  auditorToken?: string;
  /** A hub admin token (plain text, hashed before the Worker sees it) for tunnel management (`/v1/admin/tunnels`). */
  adminToken?: string;
  /** Keep the audit log (default true; `AIRLOCK_AUDIT`). */
  audit?: boolean;
  /** Export sealed audit segments to an in-memory R2 bucket (`AUDIT_ARCHIVE`), readable through {@link LocalHub.archive}. */
  auditArchive?: boolean;
  /** Records per sealed segment (`AIRLOCK_AUDIT_SEGMENT_RECORDS`). */
  auditSegmentRecords?: number;
  /**
   * Audit records kept (`AIRLOCK_AUDIT_RETAIN_RECORDS`), or "all"; default
   * {@link DEFAULT_LOCAL_AUDIT_RETAIN}, so a long-running local hub's state dir stays bounded.
   */
  auditRetainRecords?: number | "all";
  /** How long the listener waits for a client's headers and whole request (408 after). */
  timeouts?: FrontTimeouts;
  /** Send the hub's spans to this OTLP/HTTP collector (`AIRLOCK_OTLP_ENDPOINT`, docs/observability.md). */
  otlpEndpoint?: string;
  /** `name=value,…` headers for the collector (`AIRLOCK_OTLP_HEADERS`), e.g. an API key. */
  otlpHeaders?: string;
  /** OAuth for MCP clients through this OpenID provider (docs/identity.md); off when absent. */
  oidc?: LocalOidc;
  /** Identity to backends: the ES256 private key (JWK JSON or PKCS#8 PEM) for `AIRLOCK_IDENTITY_SIGNING_KEY`; off when absent. */
  identitySigningKey?: string;
}

/** The `AIRLOCK_OIDC_*` settings of a local hub; the secret in plain text (it stays inside the Worker). */
export interface LocalOidc {
  issuer: string;
  clientId: string;
  clientSecret?: string;
  groupsClaim?: string;
  /** `AIRLOCK_OAUTH_REDIRECT_ORIGINS`: comma-separated https origins, or `loopback` (the default). */
  redirectOrigins?: string;
  /** `AIRLOCK_OAUTH_ACCESS_TOKEN_TTL`: access-token lifetime in seconds (at least 60); the library's hour when absent. */
  accessTokenTtl?: number;
  /** `AIRLOCK_OAUTH_REAUTH_AFTER`: seconds a grant lives when the provider gave no refresh token (default a day). */
  reauthAfter?: number;
  /** `AIRLOCK_OAUTH_CIMD_ORIGINS`: origins whose client metadata documents the hub fetches. */
  cimdOrigins?: string;
  /** `AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK=1`: admit http loopback origins there (tests). */
  cimdAllowLoopback?: boolean;
}

export interface LocalHub {
  /** Base URL, e.g. `http://127.0.0.1:8787/` (agents: `control_plane.base_url`; clients: `<url>v1/mcp/<tunnel id>`). */
  url: URL;
  /** The sealed-segment bucket, when started with `auditArchive`: object keys and texts. */
  archive?: { keys(): Promise<string[]>; text(key: string): Promise<string | undefined> };
  close(): Promise<void>;
}

/** The compatibility settings `wrangler.toml` declares; kept in one place for the local runner. */
export const COMPATIBILITY_DATE = "2026-04-20";
export const COMPATIBILITY_FLAGS = ["enable_request_signal"];

let bundled: Promise<string> | undefined;

/** Bundle the Worker once per process (esbuild, the same tool wrangler uses). */
export function bundleWorker(): Promise<string> {
  bundled ??= build({
    entryPoints: [join(packageRoot(), "relay/index.ts")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:workers"],
    logLevel: "silent",
  }).then((result) => result.outputFiles[0]!.text);
  bundled.catch(() => {
    bundled = undefined;
  });
  return bundled;
}

/** Audit records a local hub keeps by default (~1 KB each on disk, two per call: about 50 MB). */
export const DEFAULT_LOCAL_AUDIT_RETAIN = 50_000;

/** The Worker variables for a set of tunnels and settings, with every secret replaced by its digest. */
export async function hubBindings(
  tunnels: LocalTunnel[],
  settings: LocalHubSettings = {},
  relay: Pick<
    LocalHubOptions,
    | "upstream"
    | "upstreamKey"
    | "policy"
    | "auditorToken"
    | "adminToken"
    | "audit"
    | "auditSegmentRecords"
    | "auditRetainRecords"
    | "otlpEndpoint"
    | "otlpHeaders"
    | "oidc"
    | "identitySigningKey"
  > = {},
): Promise<HubVars & Record<string, string>> {
  const config: Record<string, unknown> = {};
  const upstreamKeys: Record<string, string> = {};
  for (const [index, tunnel] of tunnels.entries()) {
    const upstream = tunnel.upstream ?? relay.upstream;
    const upstreamKey = tunnel.upstreamKey ?? relay.upstreamKey;
    if (upstream !== undefined && upstreamKey === undefined)
      throw new Error(`tunnel ${tunnel.id} relays to ${upstream} but has no upstream key`);
    const keySecret = `AIRLOCK_UPSTREAM_KEY_${index}`;
    if (upstream !== undefined) upstreamKeys[keySecret] = upstreamKey!;
    config[tunnel.id] = {
      name: tunnel.name ?? tunnel.id,
      description: tunnel.description ?? "Local Airlock hub tunnel",
      agent_key_sha256: await Promise.all(tunnel.agentKeys.map(sha256Hex)),
      client_token_sha256: await Promise.all(tunnel.clientTokens.map(sha256Hex)),
      pass_client_authorization: tunnel.passClientAuthorization ?? false,
      ...(upstream !== undefined ? { upstream_url: upstream, upstream_key_secret: keySecret } : {}),
    };
  }
  const vars: HubVars & Record<string, string> = { AIRLOCK_TUNNELS: JSON.stringify(config), ...upstreamKeys };
  if (relay.policy !== undefined) vars.AIRLOCK_POLICY = relay.policy;
  if (relay.auditorToken !== undefined) vars.AIRLOCK_AUDITOR_TOKEN_SHA256 = await sha256Hex(relay.auditorToken);
  if (relay.adminToken !== undefined) vars.AIRLOCK_ADMIN_TOKEN_SHA256 = await sha256Hex(relay.adminToken);
  if (relay.audit !== undefined) vars.AIRLOCK_AUDIT = relay.audit ? "on" : "off";
  if (relay.auditSegmentRecords !== undefined) vars.AIRLOCK_AUDIT_SEGMENT_RECORDS = String(relay.auditSegmentRecords);
  vars.AIRLOCK_AUDIT_RETAIN_RECORDS = String(relay.auditRetainRecords ?? DEFAULT_LOCAL_AUDIT_RETAIN);
  if (relay.otlpEndpoint !== undefined) vars.AIRLOCK_OTLP_ENDPOINT = relay.otlpEndpoint;
  if (relay.otlpHeaders !== undefined) vars.AIRLOCK_OTLP_HEADERS = relay.otlpHeaders;
  if (relay.identitySigningKey !== undefined) vars.AIRLOCK_IDENTITY_SIGNING_KEY = relay.identitySigningKey;
  if (relay.oidc) {
    vars.AIRLOCK_OIDC_ISSUER = relay.oidc.issuer;
    vars.AIRLOCK_OIDC_CLIENT_ID = relay.oidc.clientId;
    if (relay.oidc.clientSecret !== undefined) vars.AIRLOCK_OIDC_CLIENT_SECRET = relay.oidc.clientSecret;
    if (relay.oidc.groupsClaim !== undefined) vars.AIRLOCK_OIDC_GROUPS_CLAIM = relay.oidc.groupsClaim;
    if (relay.oidc.redirectOrigins !== undefined) vars.AIRLOCK_OAUTH_REDIRECT_ORIGINS = relay.oidc.redirectOrigins;
    if (relay.oidc.accessTokenTtl !== undefined)
      vars.AIRLOCK_OAUTH_ACCESS_TOKEN_TTL = String(relay.oidc.accessTokenTtl);
    if (relay.oidc.reauthAfter !== undefined) vars.AIRLOCK_OAUTH_REAUTH_AFTER = String(relay.oidc.reauthAfter);
    if (relay.oidc.cimdOrigins !== undefined) vars.AIRLOCK_OAUTH_CIMD_ORIGINS = relay.oidc.cimdOrigins;
    if (relay.oidc.cimdAllowLoopback) vars.AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK = "1";
  }
  const names: Array<[keyof LocalHubSettings, keyof HubVars]> = [
    ["livenessMs", "AIRLOCK_HUB_AGENT_LIVENESS_MS"],
    ["maxPollHoldMs", "AIRLOCK_HUB_MAX_POLL_HOLD_MS"],
    ["responseTimeoutMs", "AIRLOCK_HUB_RESPONSE_TIMEOUT_MS"],
    ["maxQueued", "AIRLOCK_HUB_MAX_QUEUED"],
    ["maxRequestBytes", "AIRLOCK_HUB_MAX_REQUEST_BYTES"],
    ["maxResponseBytes", "AIRLOCK_HUB_MAX_RESPONSE_BYTES"],
    ["sseKeepaliveMs", "AIRLOCK_HUB_SSE_KEEPALIVE_MS"],
    ["sessionIdleMs", "AIRLOCK_HUB_SESSION_IDLE_MS"],
    ["maxSessions", "AIRLOCK_HUB_MAX_SESSIONS"],
  ];
  for (const [option, variable] of names) {
    const value = settings[option];
    if (value !== undefined) vars[variable] = String(value);
  }
  return vars;
}

/** workerd reports every client that hangs up mid-stream; that is normal for SSE and long polls. */
const DISCONNECT_NOISE = /disconnected: ::(write|read)\(|Broken pipe|Connection reset by peer/;

function forwardLines(stream: Readable, out: NodeJS.WritableStream): void {
  let buffered = "";
  let dropping = false;
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      // A dropped error line is followed by its `stack:` line.
      if (DISCONNECT_NOISE.test(line) || (dropping && line.startsWith("stack:"))) {
        dropping = true;
        continue;
      }
      dropping = false;
      if (line.trim()) out.write(`${line}\n`);
    }
  });
}

const LOG_LEVELS = { error: LogLevel.ERROR, warn: LogLevel.WARN, info: LogLevel.INFO, debug: LogLevel.DEBUG } as const;

/** Start the hub in workerd; resolves once it accepts connections. */
export async function startLocalHub(options: LocalHubOptions): Promise<LocalHub> {
  if (options.tunnels.length === 0) throw new Error("startLocalHub: configure at least one tunnel");
  const script = await bundleWorker();
  const bindings = await hubBindings(options.tunnels, options.settings, options);
  let persist: string | false = false;
  let kvPersist: string | false = false;
  if (options.stateDir) {
    persist = join(options.stateDir, "durable-objects");
    kvPersist = join(options.stateDir, "oauth-kv");
    await mkdir(persist, { recursive: true });
    await mkdir(kvPersist, { recursive: true });
  }
  const secret = randomBytes(32).toString("hex");
  const miniflare = new Miniflare({
    name: "airlock-hub",
    modules: true,
    script,
    compatibilityDate: COMPATIBILITY_DATE,
    compatibilityFlags: COMPATIBILITY_FLAGS,
    bindings: { ...bindings, AIRLOCK_INTERNAL_SECRET: secret },
    durableObjects: {
      TUNNEL_HUB: { className: "TunnelHub", useSQLite: true },
      AUDIT_LOG: { className: "AuditLog", useSQLite: true },
      TUNNEL_REGISTRY: { className: "TunnelRegistry", useSQLite: true },
    },
    ...(options.auditArchive ? { r2Buckets: [ARCHIVE_BINDING] } : {}),
    durableObjectsPersist: persist,
    // OAuth grants, tokens and registered clients (relay/identity/); unused while OAuth is off.
    kvNamespaces: ["OAUTH_KV"],
    kvPersist,
    // workerd itself only listens on loopback; clients reach it through the front proxy.
    host: "127.0.0.1",
    port: 0,
    // Without this Miniflare downloads request metadata from workers.cloudflare.com.
    cf: false,
    // For profiling the Worker's CPU (bench/workerd-profile.ts): Chrome DevTools protocol on loopback.
    ...(process.env.AIRLOCK_HUB_INSPECTOR_PORT
      ? { inspectorPort: Number(process.env.AIRLOCK_HUB_INSPECTOR_PORT) }
      : {}),
    log: new Log(LOG_LEVELS[options.logLevel ?? "warn"]),
    handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
      forwardLines(stdout, process.stdout);
      forwardLines(stderr, process.stderr);
    },
  });
  const where = `${options.host ?? "127.0.0.1"}:${options.port ?? 0}`;
  let front: FrontProxy;
  try {
    const upstream = await miniflare.ready;
    front = await startFrontProxy({
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 0,
      upstream,
      secret,
      vars: bindings,
      ...(options.timeouts ? { timeouts: options.timeouts } : {}),
    });
  } catch (error) {
    await miniflare.dispose().catch(() => {});
    throw new Error(`the local hub could not start on ${where}: ${(error as Error).message}`);
  }
  let closed: Promise<void> | undefined;
  return {
    url: front.url,
    ...(options.auditArchive ? { archive: localArchive(miniflare) } : {}),
    close: () => (closed ??= front.close().then(() => miniflare.dispose())),
  };
}

const ARCHIVE_BINDING = "AUDIT_ARCHIVE";

function localArchive(miniflare: Miniflare): NonNullable<LocalHub["archive"]> {
  // Miniflare's own types need @cloudflare/workers-types; the audit log's view of R2 is enough.
  const bucket = async () => (await miniflare.getR2Bucket(ARCHIVE_BINDING)) as unknown as ArchiveBucket;
  return {
    keys: async () => (await (await bucket()).list()).objects.map((object) => object.key),
    text: async (key) => {
      const object = await (await bucket()).get(key);
      return object ? object.text() : undefined;
    },
  };
}
