/**
 * The settings table: each row ties one YAML key to its tunnel-client flag and environment
 * variables, its value kind and default. Precedence is flag > environment > YAML file >
 * default, row by row. Adding a setting is one row here plus its use in `load.ts`.
 *
 * Names follow tunnel-client (`docs/configuration.md`, `pkg/config`) so its invocations,
 * environments and profiles keep working; hyphenated aliases such as
 * `--control-plane-tunnel-id` are its hidden aliases.
 */
import type { FlagKind } from "./argv.ts";

export type SettingKind =
  | "string"
  /** A credential: resolved from `env:`/`file:`, reported as a secret, never echoed. */
  | "secret"
  | "int"
  | "bool"
  | "duration"
  | "list"
  | "headers"
  | "server-urls"
  | "commands"
  | "harpoon-targets";

export interface Setting {
  /** Dotted YAML path. */
  path: string;
  flag?: string;
  aliases?: string[];
  /** Environment variables, first non-empty wins. */
  env?: string[];
  /**
   * Variables read only after the YAML file: tunnel-client injects the file's `api_key` as
   * `CONTROL_PLANE_API_KEY`, so a file key beats `OPENAI_API_KEY`.
   */
  fallbackEnv?: string[];
  kind: SettingKind;
  /** How one environment variable splits into list items. */
  split?: RegExp;
  default?: unknown;
  help: string;
}

const COMMA_OR_SEMICOLON = /[,;]/;
const SEMICOLON_OR_NEWLINE = /[;\n\r]/;
const NEWLINE = /[\n\r]/;

export const DEFAULT_BASE_URL = "https://api.openai.com";
export const DEFAULT_MTLS_BASE_URL = "https://mtls.api.openai.com";
export const DEFAULT_LISTEN_ADDR = "127.0.0.1:8080";

export const SETTINGS: readonly Setting[] = [
  {
    path: "ca_bundle",
    flag: "ca-bundle",
    env: ["CA_BUNDLE"],
    kind: "string",
    help: "PEM CA bundle added to system trust for outbound TLS",
  },
  {
    path: "http_proxy",
    flag: "http-proxy",
    env: ["TUNNEL_CLIENT_HTTP_PROXY"],
    kind: "string",
    help: "proxy for all outbound HTTP (url or env:VAR)",
  },

  {
    path: "control_plane.base_url",
    flag: "control-plane.base-url",
    aliases: ["control-plane-base-url"],
    env: ["CONTROL_PLANE_BASE_URL"],
    kind: "string",
    default: DEFAULT_BASE_URL,
    help: "control-plane host root",
  },
  {
    path: "control_plane.url_path",
    flag: "control-plane.url-path",
    aliases: ["control-plane-url-path"],
    env: ["CONTROL_PLANE_URL_PATH"],
    kind: "string",
    default: "",
    help: "path prefix before /v1/… (enterprise gateways)",
  },
  {
    path: "control_plane.tunnel_id",
    flag: "control-plane.tunnel-id",
    aliases: ["control-plane-tunnel-id"],
    env: ["CONTROL_PLANE_TUNNEL_ID"],
    kind: "string",
    help: "tunnel id: tunnel_ + 32 lowercase letters or digits (required)",
  },
  {
    path: "control_plane.api_key",
    flag: "control-plane.api-key",
    aliases: ["control-plane-api-key"],
    env: ["CONTROL_PLANE_API_KEY"],
    fallbackEnv: ["OPENAI_API_KEY"],
    kind: "secret",
    help: "runtime API key as env:NAME or file:/path (required)",
  },
  {
    path: "control_plane.organization_id",
    flag: "control-plane.organization-id",
    aliases: ["control-plane-organization-id"],
    env: ["CONTROL_PLANE_ORGANIZATION_ID"],
    kind: "string",
    help: "organization of an organization-backed tunnel (sent as OpenAI-Organization)",
  },
  {
    path: "control_plane.client_cert",
    flag: "control-plane.client-cert",
    aliases: ["control-plane-client-cert"],
    env: ["CONTROL_PLANE_CLIENT_CERT"],
    kind: "string",
    help: "PEM client certificate for control-plane mTLS",
  },
  {
    path: "control_plane.client_key",
    flag: "control-plane.client-key",
    aliases: ["control-plane-client-key"],
    env: ["CONTROL_PLANE_CLIENT_KEY"],
    kind: "string",
    help: "PEM client key for control-plane mTLS",
  },
  {
    path: "control_plane.http_proxy",
    flag: "control-plane.http-proxy",
    env: ["CONTROL_PLANE_HTTP_PROXY"],
    kind: "string",
    help: "proxy for the control plane (url or env:VAR)",
  },
  {
    path: "control_plane.max_inflight_requests",
    flag: "control-plane.max-inflight",
    env: ["CONTROL_PLANE_MAX_INFLIGHT_REQUESTS"],
    kind: "int",
    default: 20,
    help: "polled commands that may wait in the local queue (1..10000)",
  },
  {
    path: "control_plane.max_response_bytes",
    flag: "control-plane.max-response-bytes",
    env: ["CONTROL_PLANE_MAX_RESPONSE_BYTES"],
    kind: "int",
    help: "largest response post the control plane takes; a bigger result becomes a JSON-RPC error naming its size (default: what an Airlock hub advertises, or learned from a 413)",
  },
  {
    path: "control_plane.poll_timeout",
    flag: "control-plane.poll-timeout",
    env: ["CONTROL_PLANE_POLL_TIMEOUT"],
    kind: "duration",
    default: 30_000,
    help: "long-poll wait requested from the control plane",
  },
  {
    path: "control_plane.poll_deadline_guardrail",
    flag: "control-plane.poll-deadline-guardrail",
    env: ["CONTROL_PLANE_POLL_DEADLINE_GUARDRAIL"],
    kind: "duration",
    default: 5_000,
    help: "extra time before a poll is abandoned (< 1m)",
  },
  {
    path: "control_plane.poll_channels",
    flag: "control-plane.poll-channel",
    env: ["CONTROL_PLANE_POLL_CHANNELS"],
    kind: "list",
    split: COMMA_OR_SEMICOLON,
    help: "poll only these channels (repeatable)",
  },
  {
    path: "control_plane.extra_headers",
    flag: "control-plane.extra-headers",
    env: ["CONTROL_PLANE_EXTRA_HEADERS"],
    kind: "headers",
    split: COMMA_OR_SEMICOLON,
    help: "'Key: Value' sent to the control plane (repeatable; values may be env:/file:)",
  },

  {
    path: "log.level",
    flag: "log.level",
    env: ["LOG_LEVEL"],
    kind: "string",
    default: "info",
    help: "debug, info, warn or error",
  },
  {
    path: "log.format",
    flag: "log.format",
    env: ["LOG_FORMAT"],
    kind: "string",
    help: "json (one object per line, stdout) or struct-text (key=value, stdout); unset: Go's default layout on stderr, as tunnel-client",
  },
  {
    path: "log.file",
    flag: "log.file",
    env: ["LOG_FILE"],
    kind: "string",
    help: "append logs to this file (created 0600; struct-text unless --log.format is given)",
  },
  {
    path: "log.http_raw_unsafe",
    flag: "log.http-raw-unsafe",
    env: ["LOG_HTTP_RAW_UNSAFE"],
    kind: "bool",
    default: false,
    help: "log raw HTTP bodies and headers (ignored with a warning: Airlock never logs raw HTTP, it would put credentials in logs; refused under strict_config)",
  },

  {
    path: "health.listen_addr",
    flag: "health.listen-addr",
    aliases: ["health-listen-addr"],
    env: ["HEALTH_LISTEN_ADDR"],
    kind: "string",
    default: DEFAULT_LISTEN_ADDR,
    help: "host:port of /healthz /readyz /metrics /ui (:0 picks a port)",
  },
  {
    path: "health.unix_socket",
    flag: "health.unix-socket",
    aliases: ["health-unix-socket"],
    env: ["HEALTH_UNIX_SOCKET"],
    kind: "string",
    help: "serve health/admin on this Unix socket instead of TCP (a stale socket is removed; URL file gets http+unix://…)",
  },
  {
    path: "health.url_file",
    flag: "health.url-file",
    aliases: ["health-url-file"],
    env: ["HEALTH_URL_FILE"],
    kind: "string",
    help: "write the bound health base URL to this file",
  },
  {
    path: "health.show_details",
    flag: "health.show-details",
    env: ["HEALTH_SHOW_DETAILS"],
    kind: "bool",
    default: false,
    help: "detailed health by default (accepted; /readyz always gives reasons and backends)",
  },

  {
    path: "admin_ui.allow_remote",
    flag: "allow-remote-ui",
    env: ["ALLOW_REMOTE_UI"],
    kind: "bool",
    default: false,
    help: "serve the UI to non-loopback clients (needs admin_ui.allowed_hosts)",
  },
  {
    path: "admin_ui.allowed_hosts",
    flag: "admin-ui.allowed-host",
    env: ["ADMIN_UI_ALLOWED_HOSTS"],
    kind: "list",
    split: COMMA_OR_SEMICOLON,
    help: "host names the UI is reached by besides loopback ones (Host/Origin check; repeatable)",
  },
  {
    path: "admin_ui.open_browser",
    flag: "open-web-ui",
    env: ["OPEN_WEB_UI"],
    kind: "bool",
    default: false,
    help: "open the UI in a browser at startup",
  },
  {
    path: "admin_ui.log_buffer_events",
    flag: "admin-ui.log-buffer-events",
    env: ["ADMIN_UI_LOG_BUFFER_EVENTS"],
    kind: "int",
    default: 2000,
    help: "recent log events kept for the UI (1..100000)",
  },

  {
    path: "process.pid_file",
    flag: "pid.file",
    env: ["PID_FILE"],
    kind: "string",
    help: "write the process id to this file",
  },

  {
    path: "mcp.server_urls",
    flag: "mcp.server-url",
    aliases: ["mcp-server-url"],
    env: ["MCP_SERVER_URL"],
    kind: "server-urls",
    split: NEWLINE,
    help: "MCP server URL, or channel=…,url=…[,unix-socket=…,http-proxy=…,client-cert=…,client-key=…] (repeatable)",
  },
  {
    path: "mcp.commands",
    flag: "mcp.command",
    aliases: ["mcp-command"],
    env: ["MCP_COMMAND"],
    kind: "commands",
    split: NEWLINE,
    help: "stdio MCP command, or channel=…,command=… (repeatable)",
  },
  {
    path: "mcp.http_proxy",
    flag: "mcp.http-proxy",
    env: ["MCP_HTTP_PROXY"],
    kind: "string",
    help: "proxy for MCP HTTP servers (url or env:VAR)",
  },
  {
    path: "mcp.client_cert",
    flag: "mcp.client-cert",
    env: ["MCP_CLIENT_CERT"],
    kind: "string",
    help: "default PEM client certificate for MCP HTTP mTLS",
  },
  {
    path: "mcp.client_key",
    flag: "mcp.client-key",
    env: ["MCP_CLIENT_KEY"],
    kind: "string",
    help: "default PEM client key for MCP HTTP mTLS",
  },
  {
    path: "mcp.extra_headers",
    flag: "mcp.extra-headers",
    aliases: ["mcp-extra-headers"],
    env: ["MCP_EXTRA_HEADERS"],
    kind: "headers",
    split: COMMA_OR_SEMICOLON,
    help: "'Key: Value' sent to MCP HTTP servers (repeatable)",
  },
  {
    path: "mcp.discovery_extra_headers",
    flag: "mcp.discovery-extra-headers",
    aliases: ["mcp-discovery-extra-headers"],
    env: ["MCP_DISCOVERY_EXTRA_HEADERS"],
    kind: "headers",
    split: COMMA_OR_SEMICOLON,
    help: "'Key: Value' sent only on OAuth discovery and the MCP startup probe (repeatable)",
  },
  {
    path: "mcp.oauth_trusted_origins",
    kind: "list",
    help: "origins besides the main MCP server's that OAuth discovery may fetch metadata from and vouch for (file only)",
  },
  {
    path: "mcp.startup_wait_timeout",
    flag: "mcp.startup-wait-timeout",
    env: ["MCP_STARTUP_WAIT_TIMEOUT"],
    kind: "duration",
    default: 0,
    help: "before the first poll, wait up to this long for the main MCP server to answer (0: do not wait)",
  },
  {
    path: "mcp.stdio_send_initialized_notification",
    flag: "mcp.stdio-send-initialized-notification",
    env: ["MCP_STDIO_SEND_INITIALIZED_NOTIFICATION"],
    kind: "bool",
    default: false,
    help: "send notifications/initialized to stdio servers after initialize",
  },
  {
    path: "mcp.connection_max_ttl",
    flag: "mcp.connection-max-ttl",
    env: ["MCP_CONNECTION_MAX_TTL"],
    kind: "duration",
    default: 600_000,
    help: "longest a command may hold its MCP exchange; the call is cancelled after it",
  },
  {
    path: "mcp.timeout",
    flag: "mcp.timeout",
    env: ["MCP_TIMEOUT"],
    kind: "duration",
    help: "per-call limit for every MCP server, stdio or HTTP, alone or aggregated (a backend's own timeout: wins; default: none for stdio, 5m for HTTP)",
  },
  {
    path: "mcp.max_concurrent_requests",
    flag: "mcp.max-concurrent-requests",
    env: ["MCP_MAX_CONCURRENT_REQUESTS"],
    kind: "int",
    default: 10,
    help: "requests dispatched to MCP servers at once",
  },

  {
    path: "harpoon.targets",
    flag: "harpoon.target",
    env: ["HARPOON_TARGETS"],
    kind: "harpoon-targets",
    split: SEMICOLON_OR_NEWLINE,
    help: "label=…,url=…[,desc=…,unix-socket=…] (repeatable)",
  },
  {
    path: "harpoon.allow_plaintext_http",
    flag: "harpoon.allow-plaintext-http",
    env: ["HARPOON_ALLOW_PLAINTEXT_HTTP"],
    kind: "bool",
    default: false,
    help: "allow http:// targets",
  },
  {
    path: "harpoon.max_response_bytes",
    flag: "harpoon.max-response-bytes",
    env: ["HARPOON_MAX_RESPONSE_BYTES"],
    kind: "int",
    default: 102_400,
    help: "largest Harpoon response (≤ 102400)",
  },
  {
    path: "harpoon.max_redirects",
    flag: "harpoon.max-redirects",
    env: ["HARPOON_MAX_REDIRECTS"],
    kind: "int",
    default: 5,
    help: "redirects Harpoon follows (≤ 5)",
  },
  {
    path: "harpoon.http_proxy",
    flag: "harpoon.http-proxy",
    env: ["HARPOON_HTTP_PROXY"],
    kind: "string",
    help: "proxy for Harpoon (url or env:VAR)",
  },
  {
    path: "harpoon.additional_transports",
    flag: "harpoon.additional-transport",
    env: ["HARPOON_ADDITIONAL_TRANSPORTS"],
    kind: "list",
    split: SEMICOLON_OR_NEWLINE,
    help: "also serve Harpoon over http-streamable",
  },
  {
    path: "harpoon.capture_payloads",
    flag: "harpoon.capture-payloads",
    env: ["HARPOON_CAPTURE_PAYLOADS"],
    kind: "bool",
    default: false,
    help: "keep Harpoon payloads for the UI (debugging only)",
  },
  {
    path: "harpoon.hosts_include_suffix",
    flag: "harpoon.hosts-include-suffix",
    env: ["HARPOON_HOSTS_INCLUDE_SUFFIX"],
    kind: "list",
    split: SEMICOLON_OR_NEWLINE,
    help: "host suffixes treated as private for OAuth auto-registration; discovery may also fetch from them (repeatable)",
  },
  {
    path: "harpoon.hosts_include_regex",
    flag: "harpoon.hosts-include-regex",
    env: ["HARPOON_HOSTS_INCLUDE_REGEX"],
    kind: "list",
    split: SEMICOLON_OR_NEWLINE,
    help: "host patterns treated as private for OAuth auto-registration; discovery may also fetch from them (repeatable)",
  },
  {
    path: "harpoon.hosts_include_loopback",
    flag: "harpoon.hosts-include-loopback",
    env: ["HARPOON_HOSTS_INCLUDE_LOOPBACK"],
    kind: "bool",
    default: true,
    help: "treat loopback addresses as private for OAuth auto-registration",
  },
  {
    path: "harpoon.hosts_include_private",
    flag: "harpoon.hosts-include-private",
    env: ["HARPOON_HOSTS_INCLUDE_PRIVATE"],
    kind: "bool",
    default: true,
    help: "treat RFC 1918 / ULA addresses as private for OAuth auto-registration",
  },

  {
    path: "proxy.check_interval",
    flag: "proxy.check-interval",
    env: ["PROXY_CHECK_INTERVAL"],
    kind: "duration",
    default: 60_000,
    help: "interval between background checks of each configured proxy (TCP, then CONNECT; proxy_* metrics)",
  },

  {
    path: "cloudflared.managed",
    flag: "cloudflared.managed",
    env: ["CLOUDFLARED_MANAGED"],
    kind: "bool",
    default: false,
    help: "tunnel-client's Cloudflare companion (accepted, ignored: Airlock needs no cloudflared)",
  },
  {
    path: "cloudflared.token",
    flag: "cloudflared.token",
    env: ["CLOUDFLARED_TUNNEL_TOKEN"],
    kind: "string",
    help: "Cloudflare tunnel token reference (accepted, ignored: Airlock needs no cloudflared)",
  },
  {
    path: "cloudflared.path",
    flag: "cloudflared.path",
    env: ["CLOUDFLARED_PATH"],
    kind: "string",
    help: "cloudflared binary (accepted, ignored: Airlock needs no cloudflared)",
  },
  {
    path: "cloudflared.ready_timeout",
    flag: "cloudflared.ready-timeout",
    env: ["CLOUDFLARED_READY_TIMEOUT"],
    kind: "duration",
    default: 30_000,
    help: "cloudflared readiness wait (accepted, ignored: Airlock needs no cloudflared)",
  },

  {
    path: "policy",
    flag: "policy",
    env: ["AIRLOCK_POLICY"],
    kind: "string",
    help: "Airlock policy file (YAML or JSON)",
  },
  {
    path: "strict_config",
    flag: "strict-config",
    env: ["AIRLOCK_STRICT_CONFIG"],
    kind: "bool",
    default: false,
    help: "Airlock's stricter rules instead of tunnel-client's: refuse shell syntax in MCP commands, channels starting with '_' or '-', unknown --harpoon.target keys and settings Airlock cannot honour; a set-but-empty variable does not hide the profile's value",
  },
];

/** Flags that choose the configuration file rather than set a value. */
export const SOURCE_FLAGS = {
  config: { env: ["AIRLOCK_CONFIG", "TUNNEL_CLIENT_CONFIG"], help: "YAML config file" },
  profile: {
    env: ["AIRLOCK_PROFILE", "TUNNEL_CLIENT_PROFILE"],
    help: "profile name, loaded from the profile directory",
  },
  "profile-file": { env: ["AIRLOCK_PROFILE_FILE", "TUNNEL_CLIENT_PROFILE_FILE"], help: "a profile YAML file" },
  "profile-dir": {
    env: ["AIRLOCK_PROFILE_DIR", "TUNNEL_CLIENT_PROFILE_DIR"],
    help: "profile directory (default $XDG_CONFIG_HOME/airlock/profiles, then $XDG_CONFIG_HOME/tunnel-client)",
  },
} as const;

/** Every flag the loader accepts, with its alias names, for the tokenizer. */
export function flagKinds(): Map<string, FlagKind> {
  const kinds = new Map<string, FlagKind>();
  for (const name of Object.keys(SOURCE_FLAGS)) kinds.set(name, "string");
  for (const setting of SETTINGS) {
    for (const name of [setting.flag, ...(setting.aliases ?? [])]) {
      if (name) kinds.set(name, setting.kind === "bool" ? "bool" : "string");
    }
  }
  return kinds;
}

/** The canonical flag an alias stands for (`control-plane-tunnel-id` → `control-plane.tunnel-id`). */
export function settingForFlag(name: string): Setting | undefined {
  return SETTINGS.find((setting) => setting.flag === name || setting.aliases?.includes(name));
}

/** `--flags` help for `airlock run --help`: flag, environment variable, default, meaning. */
export function flagUsage(): string {
  const rows: Array<[string, string, string]> = [];
  for (const [name, { env, help }] of Object.entries(SOURCE_FLAGS)) rows.push([`--${name}`, env.join(", "), help]);
  for (const setting of SETTINGS) {
    if (!setting.flag) continue;
    const fallback =
      setting.default === undefined || setting.default === "" ? "" : ` (default ${formatDefault(setting)})`;
    rows.push([
      `--${setting.flag}${setting.kind === "bool" ? "" : " VALUE"}`,
      (setting.env ?? []).join(", "),
      setting.help + fallback,
    ]);
  }
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, env, help]) => `  ${flag.padEnd(width)}  ${help}${env ? ` [${env}]` : ""}`).join("\n");
}

function formatDefault(setting: Setting): string {
  if (setting.kind !== "duration" || typeof setting.default !== "number") return String(setting.default);
  const ms = setting.default;
  return ms % 60_000 === 0 && ms > 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * The configuration reference as a Markdown table (YAML key, flag, environment, default,
 * meaning). The README embeds it between markers and a test keeps the two identical.
 */
export function configReference(): string {
  const cell = (text: string) => text.replaceAll("|", "\\|");
  const rows = SETTINGS.map((setting) => {
    const flags = [setting.flag, ...(setting.aliases ?? [])]
      .filter(Boolean)
      .map((flag) => `\`--${flag}\``)
      .slice(0, 1);
    const env = [...(setting.env ?? []), ...(setting.fallbackEnv ?? [])].map((name) => `\`${name}\``).join(", ");
    const fallback = setting.default === undefined || setting.default === "" ? "" : `\`${formatDefault(setting)}\``;
    return `| \`${setting.path}\` | ${flags.join("")} | ${env} | ${cell(fallback)} | ${cell(setting.help)} |`;
  });
  return ["| YAML key | flag | environment | default | meaning |", "|---|---|---|---|---|", ...rows].join("\n");
}
