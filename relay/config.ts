/**
 * The hub's configuration comes from Worker variables and secrets (`wrangler.toml`
 * `[vars]`, `wrangler secret put`, or the local runner's bindings). Secrets are stored
 * only as SHA-256 hashes: a leaked configuration does not leak a usable key.
 *
 *   AIRLOCK_TUNNELS                  JSON: tunnel id → {@link TunnelConfig} (required)
 *   AIRLOCK_HUB_AGENT_LIVENESS_MS    an agent counts as connected this long after its last poll (10000)
 *   AIRLOCK_HUB_MAX_POLL_HOLD_MS     upper bound on a poll's `timeout_ms` hold (30000)
 *   AIRLOCK_HUB_RESPONSE_TIMEOUT_MS  how long an MCP request may take end to end (120000)
 *   AIRLOCK_HUB_MAX_QUEUED           commands waiting for an agent, per tunnel (1000)
 *   AIRLOCK_HUB_MAX_REQUEST_BYTES    MCP client request body limit (4 MiB)
 *   AIRLOCK_HUB_MAX_RESPONSE_BYTES   agent response post body limit (16 MiB)
 *   AIRLOCK_HUB_SSE_KEEPALIVE_MS     comment line on idle SSE streams, also how a gone client is noticed (15000)
 *   AIRLOCK_HUB_SESSION_IDLE_MS      a pinned MCP session unused this long is forgotten (3600000)
 *   AIRLOCK_HUB_MAX_SESSIONS         pinned MCP sessions per tunnel; beyond, the least recently used goes (10000)
 *
 * Policy, audit and relay mode (docs/relay.md):
 *
 *   AIRLOCK_POLICY                   the policy, YAML or JSON text (docs/policy.md); unset = nothing is refused
 *   AIRLOCK_AUDIT                    `on` (default) or `off`: the per-tunnel hash-chained audit log
 *   AIRLOCK_AUDITOR_TOKEN_SHA256     comma-separated SHA-256 digests of auditor tokens valid for every tunnel
 *   AIRLOCK_AUDIT_SEGMENT_RECORDS    records per sealed segment exported to the AUDIT_ARCHIVE R2 bucket (1000)
 *   AIRLOCK_AUDIT_RETAIN_RECORDS     audit records kept; older ones go once sealed (all; `airlock hub`: 50000)
 *   AIRLOCK_UPSTREAM_KEY[_*]         a relay tunnel's upstream API key (named by its `upstream_key_secret`)
 *
 * Tunnel management (`/v1/admin/tunnels`, relay/admin/, docs/admin.md):
 *
 *   AIRLOCK_ADMIN_TOKEN_SHA256       comma-separated SHA-256 digests of hub admin tokens; unset = no management
 *
 * Tracing (docs/observability.md); off unless an endpoint is set:
 *
 *   AIRLOCK_OTLP_ENDPOINT            the collector's OTLP/HTTP base URL (`/v1/traces` is appended)
 *   AIRLOCK_OTLP_HEADERS             secret: `name=value,…` headers for the collector (an API key)
 *   AIRLOCK_OTEL_SERVICE_NAME        `service.name` of the hub's spans (airlock-hub)
 *   AIRLOCK_TRACES_SAMPLER[_ARG]     as OTEL_TRACES_SAMPLER[_ARG]; default always_on
 */
import { z } from "zod";
import { TUNNEL_ID_PATTERN } from "../shared/protocol/index.ts";

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase hex SHA-256 digest (64 characters)");

export const TunnelConfig = z
  .strictObject({
    name: z.string().default(""),
    description: z.string().default(""),
    /** SHA-256 (hex) of each key an agent may present as `Authorization: Bearer <key>`. */
    agent_key_sha256: z.array(Sha256Hex).min(1, "at least one agent key hash is required"),
    /** SHA-256 (hex) of each token an MCP client may present. */
    client_token_sha256: z.array(Sha256Hex).default([]),
    /**
     * When true the client's own `Authorization` header travels to the backend (for MCP
     * servers doing their own OAuth); the hub then reads the client token from
     * `X-Airlock-Token` instead, or admits every client when no token hash is configured.
     */
    pass_client_authorization: z.boolean().default(false),
    /**
     * Relay mode: the upstream control plane (e.g. `https://api.openai.com`, optionally with a
     * path prefix) this tunnel's polls and responses are passed to, after policy and audit.
     */
    upstream_url: z
      .url({ protocol: /^https?$/, error: "expected an http(s) URL such as https://api.openai.com" })
      .optional(),
    /**
     * The Worker secret holding the upstream API key (default `AIRLOCK_UPSTREAM_KEY`). Restricted to
     * `AIRLOCK_UPSTREAM_KEY…` names so a tunnel entry cannot send another secret (say AIRLOCK_TUNNELS) upstream.
     */
    upstream_key_secret: z
      .string()
      .regex(/^AIRLOCK_UPSTREAM_KEY[A-Z0-9_]*$/, "expected a secret name starting with AIRLOCK_UPSTREAM_KEY")
      .optional(),
    /** SHA-256 (hex) of each token an auditor may present to export this tunnel's audit log and approve pins. */
    auditor_token_sha256: z.array(Sha256Hex).optional(),
  })
  .refine((t) => t.pass_client_authorization || t.client_token_sha256.length > 0 || t.upstream_url !== undefined, {
    message:
      "client_token_sha256 needs at least one hash unless pass_client_authorization is true (or the tunnel relays to an upstream_url, or OAuth is on: AIRLOCK_OIDC_ISSUER)",
    path: ["client_token_sha256"],
  });
export type TunnelConfig = z.infer<typeof TunnelConfig>;

const Tunnels = z.record(z.string(), TunnelConfig);
/** With OAuth on people sign in, so a tunnel needs no static client token: the same fields, without that check. */
const OAuthTunnels = z.record(z.string(), z.strictObject(TunnelConfig.shape));

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const Settings = z.object({
  AIRLOCK_HUB_AGENT_LIVENESS_MS: positiveInt(10_000),
  AIRLOCK_HUB_MAX_POLL_HOLD_MS: positiveInt(30_000),
  AIRLOCK_HUB_RESPONSE_TIMEOUT_MS: positiveInt(120_000),
  AIRLOCK_HUB_MAX_QUEUED: positiveInt(1000),
  AIRLOCK_HUB_MAX_REQUEST_BYTES: positiveInt(4 * 1024 * 1024),
  AIRLOCK_HUB_MAX_RESPONSE_BYTES: positiveInt(16 * 1024 * 1024),
  AIRLOCK_HUB_SSE_KEEPALIVE_MS: positiveInt(15_000),
  AIRLOCK_HUB_SESSION_IDLE_MS: positiveInt(60 * 60 * 1000),
  AIRLOCK_HUB_MAX_SESSIONS: positiveInt(10_000),
});

/** Limits and timings, the same for every tunnel of one deployment. */
export interface HubSettings {
  livenessMs: number;
  maxPollHoldMs: number;
  responseTimeoutMs: number;
  maxQueued: number;
  maxRequestBytes: number;
  maxResponseBytes: number;
  sseKeepaliveMs: number;
  /** A pinned session unused this long is forgotten; its next request gets 404 and the client re-initializes. */
  sessionIdleMs: number;
  /** Pinned sessions kept per tunnel, least recently used evicted first: bounds Durable Object storage. */
  maxSessions: number;
}

/** The environment variables the hub reads; all strings, as Workers deliver them. */
export interface HubVars {
  AIRLOCK_TUNNELS?: string;
  AIRLOCK_HUB_AGENT_LIVENESS_MS?: string;
  AIRLOCK_HUB_MAX_POLL_HOLD_MS?: string;
  AIRLOCK_HUB_RESPONSE_TIMEOUT_MS?: string;
  AIRLOCK_HUB_MAX_QUEUED?: string;
  AIRLOCK_HUB_MAX_REQUEST_BYTES?: string;
  AIRLOCK_HUB_MAX_RESPONSE_BYTES?: string;
  AIRLOCK_HUB_SSE_KEEPALIVE_MS?: string;
  AIRLOCK_HUB_SESSION_IDLE_MS?: string;
  AIRLOCK_HUB_MAX_SESSIONS?: string;
  AIRLOCK_POLICY?: string;
  AIRLOCK_AUDIT?: string;
  AIRLOCK_AUDITOR_TOKEN_SHA256?: string;
  AIRLOCK_AUDIT_SEGMENT_RECORDS?: string;
  AIRLOCK_AUDIT_RETAIN_RECORDS?: string;
  /** Digests of hub admin tokens: they may create, change and delete runtime tunnels (relay/admin/). */
  AIRLOCK_ADMIN_TOKEN_SHA256?: string;
  /** Tracing (relay/telemetry/tracing.ts, docs/observability.md). */
  AIRLOCK_OTLP_ENDPOINT?: string;
  AIRLOCK_OTLP_HEADERS?: string;
  AIRLOCK_OTEL_SERVICE_NAME?: string;
  AIRLOCK_TRACES_SAMPLER?: string;
  AIRLOCK_TRACES_SAMPLER_ARG?: string;
}

export interface HubConfig {
  settings: HubSettings;
  tunnels: ReadonlyMap<string, TunnelConfig>;
}

/** Thrown for an invalid configuration; the message names the variable and key path. */
export class HubConfigError extends Error {
  override name = "HubConfigError";
}

function describe(error: z.ZodError, root: string): string {
  return error.issues.map((issue) => `${[root, ...issue.path.map(String)].join(".")}: ${issue.message}`).join("; ");
}

/** Parse the settings alone (the Durable Object needs them, not the tunnels). */
export function parseSettings(vars: HubVars): HubSettings {
  const picked = Object.fromEntries(Object.keys(Settings.shape).map((k) => [k, vars[k as keyof HubVars] || undefined]));
  const parsed = Settings.safeParse(picked);
  if (!parsed.success) throw new HubConfigError(`invalid hub setting: ${describe(parsed.error, "env")}`);
  const s = parsed.data;
  return {
    livenessMs: s.AIRLOCK_HUB_AGENT_LIVENESS_MS,
    maxPollHoldMs: s.AIRLOCK_HUB_MAX_POLL_HOLD_MS,
    responseTimeoutMs: s.AIRLOCK_HUB_RESPONSE_TIMEOUT_MS,
    maxQueued: s.AIRLOCK_HUB_MAX_QUEUED,
    maxRequestBytes: s.AIRLOCK_HUB_MAX_REQUEST_BYTES,
    maxResponseBytes: s.AIRLOCK_HUB_MAX_RESPONSE_BYTES,
    sseKeepaliveMs: s.AIRLOCK_HUB_SSE_KEEPALIVE_MS,
    sessionIdleMs: s.AIRLOCK_HUB_SESSION_IDLE_MS,
    maxSessions: s.AIRLOCK_HUB_MAX_SESSIONS,
  };
}

/** Parse `AIRLOCK_TUNNELS`; `oauth` (an OpenID issuer is configured) lets tunnels go without client tokens. */
export function parseTunnels(
  raw: string | undefined,
  { oauth = false }: { oauth?: boolean } = {},
): Map<string, TunnelConfig> {
  if (!raw || raw.trim() === "") {
    throw new HubConfigError("AIRLOCK_TUNNELS is not set: configure at least one tunnel (see relay/README.md)");
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    throw new HubConfigError(`AIRLOCK_TUNNELS is not valid JSON (${(error as Error).message})`);
  }
  // Checked here rather than in the schema: zod reports a bad record key without naming it.
  for (const id of Object.keys(json !== null && typeof json === "object" ? json : {})) {
    if (!TUNNEL_ID_PATTERN.test(id)) {
      throw new HubConfigError(
        `invalid AIRLOCK_TUNNELS: AIRLOCK_TUNNELS.${id.slice(0, 80)}: tunnel ids are "tunnel_" + 32 lowercase letters or digits`,
      );
    }
  }
  const parsed = (oauth ? OAuthTunnels : Tunnels).safeParse(json);
  if (!parsed.success)
    throw new HubConfigError(`invalid AIRLOCK_TUNNELS: ${describe(parsed.error, "AIRLOCK_TUNNELS")}`);
  return new Map(Object.entries(parsed.data));
}

/** The variables the configuration is parsed from. */
const CONFIG_VARS = [...Object.keys(Settings.shape), "AIRLOCK_TUNNELS", "AIRLOCK_OIDC_ISSUER"] as Array<
  keyof (HubVars & { AIRLOCK_OIDC_ISSUER?: string })
>;

let cached: { values: unknown[]; config: HubConfig } | undefined;

/**
 * The whole configuration, parsed once per isolate for a given set of variables
 * (Workers reuse isolates; parsing on every request would be wasted work). Every request
 * asks, so the check compares the variables' values with `===` — the same strings from the
 * same environment compare at once — rather than serialising them into a key (which, with
 * the tunnels' JSON in it, was the Worker's largest JavaScript item per request).
 */
export function loadConfig(vars: HubVars & { AIRLOCK_OIDC_ISSUER?: string }): HubConfig {
  if (cached && CONFIG_VARS.every((name, index) => vars[name] === cached!.values[index])) return cached.config;
  const values = CONFIG_VARS.map((name) => vars[name]);
  const oauth = Boolean(vars.AIRLOCK_OIDC_ISSUER?.trim());
  const config = { settings: parseSettings(vars), tunnels: parseTunnels(vars.AIRLOCK_TUNNELS, { oauth }) };
  cached = { values, config };
  return config;
}
