/**
 * The agent's configuration after layering, validation and secret resolution: what every
 * other part of the agent reads. Durations are milliseconds; references are resolved;
 * `mcp.server_urls` / `mcp.commands` have become routes.
 */
import type { LogFormat, LogLevel } from "../../shared/log.ts";
import type { ConfigIssue } from "../../shared/config/schema.ts";

/**
 * `strict: false` is tunnel-client's behaviour (the default, so its profiles keep working);
 * `strict: true` is Airlock's stricter one (`strict_config`). What the lenient rules let
 * through is reported in `warnings`.
 */
export interface ConfigRules {
  strict: boolean;
  warnings: string[];
}

export interface ToolFilter {
  /** Glob patterns (`search*`); when present, only matching tools are exposed. */
  allow?: string[];
  deny?: string[];
}

interface BackendBase {
  /** Unique per channel; prefixes aggregated names as `name__tool` when a channel has several backends. */
  name: string;
  tools?: ToolFilter;
  /** Per-request limit for this backend, on top of the command's own deadline. */
  timeoutMs?: number;
  /** Requests this backend may run at once (besides the global `mcp.maxConcurrentRequests`). */
  maxConcurrentRequests?: number;
}

export interface StdioBackendConfig extends BackendBase {
  transport: "stdio";
  /** argv; never run through a shell. */
  command: string[];
  /** Extra environment for the child, references resolved. */
  env: Record<string, string>;
  cwd?: string;
  /** One child for every client (`share: true`) instead of one per MCP session. */
  share?: boolean;
  /** Session children kept at once (`max_sessions`). */
  maxSessions?: number;
  /** A session child idle this long is stopped (`idle_timeout`). */
  idleTimeoutMs?: number;
  /** Children for requests without a session (`pool_size`). */
  poolSize?: number;
}

export interface HttpBackendConfig extends BackendBase {
  transport: "http";
  url: string;
  /** Complete static headers for this backend (for `mcp.server_urls` this already includes `mcp.extra_headers`). */
  headers: Record<string, string>;
  caFile?: string;
  unixSocket?: string;
  httpProxy?: string;
  clientCert?: string;
  clientKey?: string;
}

export type BackendConfig = StdioBackendConfig | HttpBackendConfig;

export interface RouteConfig {
  channel: string;
  backends: BackendConfig[];
  /** Where the route was declared, for `doctor` and error messages. */
  origin: "routes" | "mcp.server_urls" | "mcp.commands";
}

export interface HarpoonTargetConfig {
  label: string;
  url: string;
  description?: string;
  unixSocket?: string;
}

export interface AgentConfig {
  configVersion: 1 | 2;
  /** `strict_config`: Airlock's stricter rules instead of tunnel-client's (docs/migrating.md). */
  strictConfig: boolean;
  controlPlane: {
    /** Host root (`https://api.openai.com`), no path. */
    baseUrl: string;
    /** `""` or a prefix such as `/gateway/us`, placed before `/v1/…`. */
    urlPath: string;
    tunnelId: string;
    apiKey: string;
    organizationId?: string;
    /** Local queue capacity for polled commands (tunnel-client `max_inflight_requests`). */
    maxInflight: number;
    pollTimeoutMs: number;
    pollDeadlineGuardrailMs: number;
    /** The largest response post the control plane takes (`control_plane.max_response_bytes`); unset: advertised or learned. */
    maxResponseBytes?: number;
    /** When set, poll only these channels (sorted); otherwise unscoped polling. */
    pollChannels?: string[];
    extraHeaders: Record<string, string>;
    /** Effective proxy (control-plane specific, else global). */
    httpProxy?: string;
    clientCert?: string;
    clientKey?: string;
  };
  mcp: {
    maxConcurrentRequests: number;
    connectionMaxTtlMs: number;
    startupWaitTimeoutMs: number;
    stdioSendInitializedNotification: boolean;
    /** Already merged into the headers of backends that came from `mcp.server_urls`. */
    extraHeaders: Record<string, string>;
    discoveryExtraHeaders: Record<string, string>;
    oauthTrustedOrigins: string[];
  };
  /** The routing table: one entry per channel, in declaration order. */
  routes: RouteConfig[];
  harpoon: {
    /** Harpoon's channel (`harpoon`) is served only when this is not empty. */
    targets: HarpoonTargetConfig[];
    allowPlaintextHttp: boolean;
    maxResponseBytes: number;
    maxRedirects: number;
    httpProxy?: string;
    additionalTransports: string[];
    capturePayloads: boolean;
    hostsIncludeSuffix: string[];
    hostsIncludeRegex: string[];
    hostsIncludeLoopback: boolean;
    hostsIncludePrivate: boolean;
  };
  health: {
    /** `host:port` as configured; `parseListenAddr` in `agent/runtime/serve.ts` splits it. */
    listenAddr: string;
    unixSocket?: string;
    urlFile?: string;
    showDetails: boolean;
  };
  adminUi: { allowRemote: boolean; allowedHosts: string[]; openBrowser: boolean; logBufferEvents: number };
  log: { level: LogLevel; format: LogFormat; file?: string; httpRawUnsafe: boolean };
  process: { pidFile?: string };
  proxy: { checkIntervalMs: number };
  caBundle?: string;
  /** A policy file path (absolute) or an inline policy object; validated by `shared/policy`. */
  policy?: string | Record<string, unknown>;
  /** The YAML file this run used, if any. */
  file?: { path: string; kind: "config" | "profile" | "profile-file"; profileName?: string };
}

/** Which layer set a key: `--flag`, an environment variable, the file, or the default. */
export interface SettingSource {
  layer: "flag" | "env" | "file" | "default";
  /** The flag (`--control-plane.tunnel-id`), variable (`CONTROL_PLANE_TUNNEL_ID`) or file path. */
  name?: string;
}

export interface LoadedConfig {
  config: AgentConfig;
  /** YAML key path → where its value came from (only keys that have a value). */
  sources: Record<string, SettingSource>;
  /** Every resolved secret value (API key, credential headers, referenced values), for log scrubbing. */
  secrets: string[];
  /** Accepted but ignored or surprising settings, as sentences. */
  warnings: string[];
  /**
   * Only with `loadConfig({ lenient: true })`: problems with the tunnel id, the API key or the
   * main route that were recorded instead of thrown (empty when there were none).
   */
  deferred?: ConfigIssue[];
}
