/**
 * `airlock hub`: the hub Worker (`relay/`) run locally in workerd through Miniflare, with
 * persistent Durable Object state, until SIGINT/SIGTERM. Agents poll it as their control
 * plane; MCP clients reach the private servers behind them at `<hub>/v1/mcp/<tunnel id>`.
 *
 * Credentials come only as `env:NAME` / `file:/path` references, so they stay out of the
 * process list and shell history; the hub hashes them before the Worker sees them and never
 * prints them. Node only: Miniflare drives workerd from Node.
 *
 * Flags are one table ({@link HUB_FLAGS}); each flag's value lands in {@link HubCommand}
 * through {@link readHubCommand}, so a new flag is one row there plus one field here.
 */
import process from "node:process";
import { homedir } from "node:os";
import { readFile, rm, writeFile, rename } from "node:fs/promises";
import { join, resolve } from "node:path";
import { TUNNEL_ID_PATTERN } from "../../shared/protocol/index.ts";
import { tracesUrl } from "../../shared/telemetry/sampling.ts";
import type { LocalHub, LocalHubOptions, LocalHubSettings, LocalOidc } from "../hub-local/run.ts";
import { parseDuration } from "../../shared/protocol/duration.ts";
import { CALLBACK_PATH, parseIdentitySettings } from "../../relay/identity/settings.ts";
import { referenceKind, type ReferenceContext } from "../config/secrets.ts";
import { secretFlag } from "./secret-flag.ts";
import { parseListenAddr } from "../runtime/serve.ts";
import { helpText, parseFlags, processIo, UsageError, withUsageErrors } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

/** Where `airlock hub` listens unless told otherwise: loopback only. */
export const DEFAULT_HUB_LISTEN = "127.0.0.1:8787";

/** The flags of `airlock hub`, in help order. */
export const HUB_FLAGS: Record<string, FlagSpec> = {
  listen: {
    kind: "string",
    value: "HOST:PORT",
    help: `address to serve agents and MCP clients on (default ${DEFAULT_HUB_LISTEN}; :0 picks a port)`,
  },
  "tunnel-id": {
    kind: "string",
    value: "ID",
    help: "the tunnel this hub serves: tunnel_ + 32 lowercase letters or digits (required)",
  },
  "agent-key": { kind: "string", value: "REF", help: "key agents present, as env:NAME or file:/path (required)" },
  "client-token": {
    kind: "string",
    value: "REF",
    help: "bearer token MCP clients present, as env:NAME or file:/path (required unless --pass-client-authorization)",
  },
  "pass-client-authorization": {
    kind: "bool",
    help: "pass the client's own Authorization to the MCP server; the hub token then travels in X-Airlock-Token",
  },
  "state-dir": {
    kind: "string",
    value: "DIR",
    help: "persistent hub state (default $XDG_STATE_HOME/airlock/hub, i.e. ~/.local/state/airlock/hub)",
  },
  "url-file": { kind: "string", value: "FILE", help: "write the hub's base URL here once it listens; removed on exit" },
  "log-level": {
    kind: "string",
    value: "LEVEL",
    help: "Worker and workerd log level: error, warn (default), info or debug",
  },
  upstream: {
    kind: "string",
    value: "URL",
    help: "relay mode: pass the tunnel to this upstream control plane (e.g. https://api.openai.com) with policy and audit on the way (docs/relay.md)",
  },
  "upstream-key": {
    kind: "string",
    value: "REF",
    help: "relay mode: the upstream's API key, as env:NAME or file:/path; agents never see it",
  },
  policy: {
    kind: "string",
    value: "FILE",
    help: "policy file (YAML or JSON, docs/policy.md) enforced on every command and response",
  },
  "auditor-token": {
    kind: "string",
    value: "REF",
    help: "token for the audit export <hub>/v1/audit/<tunnel id> and pin approval, as env:NAME or file:/path",
  },
  "admin-token": {
    kind: "string",
    value: "REF",
    help: "hub admin token for tunnel management at <hub>/v1/admin/tunnels (airlock admin tunnels --hub), as env:NAME or file:/path",
  },
  "audit-retain": {
    kind: "string",
    value: "N|all",
    help: "audit records the hub keeps; older ones are deleted once sealed in a segment (default 50000; all keeps every record; AIRLOCK_AUDIT_RETAIN_RECORDS)",
  },
  "response-timeout": {
    kind: "string",
    value: "DURATION",
    help: "how long an MCP request may take end to end, e.g. 10m (default 120s; AIRLOCK_HUB_RESPONSE_TIMEOUT_MS)",
  },
  liveness: {
    kind: "string",
    value: "DURATION",
    help: "an agent silent this long is gone and its calls fail (default 10s; AIRLOCK_HUB_AGENT_LIVENESS_MS)",
  },
  "max-request-bytes": {
    kind: "string",
    value: "N",
    help: "largest MCP client request body (default 4194304; AIRLOCK_HUB_MAX_REQUEST_BYTES)",
  },
  "max-response-bytes": {
    kind: "string",
    value: "N",
    help: "largest agent response post; agents answer bigger results with an error (default 16777216; AIRLOCK_HUB_MAX_RESPONSE_BYTES)",
  },
  "otlp-endpoint": {
    kind: "string",
    value: "URL",
    help: "send the hub's trace spans to this OTLP/HTTP collector, e.g. http://localhost:4318 (docs/observability.md)",
  },
  "otlp-headers": {
    kind: "string",
    value: "REF",
    help: "name=value,… headers for the collector (an API key), as env:NAME or file:/path",
  },
  "oidc-issuer": {
    kind: "string",
    value: "URL",
    help: "OAuth for MCP clients: people sign in at this OpenID provider (https, or http on loopback; docs/identity.md)",
  },
  "oidc-client-id": {
    kind: "string",
    value: "ID",
    help: "the hub's client id at the OpenID provider (with --oidc-issuer)",
  },
  "identity-signing-key": {
    kind: "string",
    value: "REF",
    help: "ES256 private key (JWK or PKCS#8 PEM) to sign X-Airlock-Identity for backends, as env:NAME or file:/path (docs/identity.md; off when absent)",
  },
  "oidc-client-secret": {
    kind: "string",
    value: "REF",
    help: "the hub's client secret at the OpenID provider, as env:NAME or file:/path (omit for a public client)",
  },
  "oidc-groups-claim": {
    kind: "string",
    value: "NAME",
    help: "the ID token claim listing the person's groups (default groups)",
  },
  "oauth-redirect-origins": {
    kind: "string",
    value: "LIST",
    help: "comma-separated https origins MCP clients may register redirect URIs on, or loopback (the default)",
  },
};

/** The flags that set the hub's limits, and the {@link LocalHubSettings} field each sets. */
const SETTING_FLAGS = [
  ["response-timeout", "responseTimeoutMs", "duration"],
  ["liveness", "livenessMs", "duration"],
  ["max-request-bytes", "maxRequestBytes", "bytes"],
  ["max-response-bytes", "maxResponseBytes", "bytes"],
] as const;

/** The limits given as flags; a value that is not a positive duration or byte count is a usage error. */
function readSettings(flags: ParsedFlags): LocalHubSettings {
  const settings: LocalHubSettings = {};
  for (const [flag, field, kind] of SETTING_FLAGS) {
    const raw = flags.strings.get(flag);
    if (raw === undefined) continue;
    const value = kind === "duration" ? parseDuration(raw) : /^[0-9]+$/.test(raw) ? Number(raw) : undefined;
    if (value === undefined || !Number.isSafeInteger(value) || value <= 0) {
      throw new UsageError(
        `--${flag} "${raw}" is not ${kind === "duration" ? "a duration such as 90s or 10m" : "a positive number of bytes"}`,
      );
    }
    settings[field] = value;
  }
  return settings;
}

const SYNOPSIS =
  "airlock hub --tunnel-id ID --agent-key env:NAME (--client-token env:NAME | --oidc-issuer URL --oidc-client-id ID [--oidc-client-secret env:NAME] | --upstream URL --upstream-key env:NAME) [--policy FILE] [--auditor-token env:NAME] [--admin-token env:NAME] [--audit-retain N|all] [--identity-signing-key file:PATH] [--otlp-endpoint URL [--otlp-headers env:NAME]] [--listen HOST:PORT] [--state-dir DIR] [--url-file FILE] [--pass-client-authorization] [--response-timeout DURATION] [--liveness DURATION] [--max-request-bytes N] [--max-response-bytes N]";
const DESCRIPTION = [
  "Runs the Airlock hub (the Worker in relay/) locally in workerd, with persistent state, until",
  "Ctrl-C. Agents use it as their control plane; MCP clients connect to <hub>/v1/mcp/<tunnel id>.",
  "Keys and tokens are given as env:NAME or file:/path references and are never printed.",
  "For production, deploy the same Worker with `wrangler deploy` (see docs/hub.md).",
].join("\n");

const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;

/** Everything `airlock hub` was asked to do, with secrets resolved. */
export interface HubCommand {
  host: string;
  port: number;
  tunnelId: string;
  agentKey: string;
  /** As written (`env:NAME`), for the hint on how to start an agent; never the value. */
  agentKeyRef: string;
  clientToken?: string;
  passClientAuthorization: boolean;
  stateDir: string;
  urlFile?: string;
  logLevel: NonNullable<LocalHubOptions["logLevel"]>;
  /** Relay mode: the upstream control plane and its key. */
  upstream?: { url: string; key: string };
  /** The policy text (already validated) and the file it came from. */
  policy?: { text: string; file: string };
  auditorToken?: string;
  /** Tunnel management (`/v1/admin/tunnels`). */
  adminToken?: string;
  /** Identity to backends: the signing key's text. */
  identitySigningKey?: string;
  /** `--audit-retain`: records kept, or "all". */
  auditRetain?: number | "all";
  /** Limits set by flags; the rest keep the Worker's defaults. */
  settings: LocalHubSettings;
  /** Tracing: the collector's OTLP/HTTP base URL and its headers. */
  otlp?: { endpoint: string; headers?: string };
  /** OAuth for MCP clients (relay/identity/). */
  oidc?: LocalOidc;
}

/** The default state directory: `$XDG_STATE_HOME/airlock/hub`, else `~/.local/state/airlock/hub`. */
export function defaultStateDir(env: CliIo["env"], home: string): string {
  const base = env.XDG_STATE_HOME?.trim() || join(home, ".local", "state");
  return join(base, "airlock", "hub");
}

/** Resolve a credential flag; literals are refused so keys never sit in argv. */
/** `--<name> env:NAME | file:/path`, resolved; the usage error's example is `env:AIRLOCK_<NAME>`. */
function hubSecret(flags: ParsedFlags, name: string, ctx: ReferenceContext): Promise<string | undefined> {
  return secretFlag(flags, name, ctx, `env:AIRLOCK_${name.replace("-", "_").toUpperCase()}`);
}

/** Validate the command line and resolve its references. */
export async function readHubCommand(flags: ParsedFlags, io: CliIo): Promise<HubCommand> {
  if (flags.positionals.length)
    throw new UsageError(`unexpected argument "${flags.positionals[0]}"; flags are written --name value`);
  const tunnelId = flags.strings.get("tunnel-id");
  if (!tunnelId) throw new UsageError("--tunnel-id is required, e.g. --tunnel-id tunnel_$(openssl rand -hex 16)");
  if (!TUNNEL_ID_PATTERN.test(tunnelId))
    throw new UsageError(
      `--tunnel-id "${tunnelId}" is not a tunnel id: write tunnel_ followed by 32 lowercase letters or digits`,
    );
  let listen: { hostname: string; port: number };
  try {
    listen = parseListenAddr(flags.strings.get("listen") ?? DEFAULT_HUB_LISTEN);
  } catch (error) {
    throw new UsageError(`--listen: ${(error as Error).message}`);
  }
  const logLevel = flags.strings.get("log-level") ?? "warn";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new UsageError(`--log-level "${logLevel}" is not one of ${LOG_LEVELS.join(", ")}`);
  const ctx: ReferenceContext = {
    env: io.env,
    cwd: io.cwd,
    readFile: (path) => readFile(path, "utf8"),
    secrets: new Set(),
  };
  const agentKey = await hubSecret(flags, "agent-key", ctx);
  if (!agentKey) throw new UsageError("--agent-key is required: the key agents present, as env:NAME or file:/path");
  const passClientAuthorization = flags.bools.has("pass-client-authorization");
  const clientToken = await hubSecret(flags, "client-token", ctx);
  const upstream = await readUpstream(flags, ctx);
  const policy = await readPolicyFlag(flags, io.cwd);
  const auditorToken = await hubSecret(flags, "auditor-token", ctx);
  const adminToken = await hubSecret(flags, "admin-token", ctx);
  const identitySigningKey = await hubSecret(flags, "identity-signing-key", ctx);
  const otlp = await readOtlp(flags, ctx);
  const oidc = await readOidc(flags, ctx);
  if (!clientToken && !passClientAuthorization && !upstream && !oidc) {
    throw new UsageError(
      "--client-token is required: the bearer token MCP clients present, as env:NAME or file:/path (or --oidc-issuer … for people to sign in, or --pass-client-authorization to leave authentication to the MCP server)",
    );
  }
  const stateDir = flags.strings.get("state-dir");
  const urlFile = flags.strings.get("url-file");
  const auditRetain = readAuditRetain(flags.strings.get("audit-retain"));
  return {
    // ":8787" (all interfaces) stays what the hub always bound: IPv4 0.0.0.0.
    host: listen.hostname || "0.0.0.0",
    port: listen.port,
    tunnelId,
    agentKey,
    agentKeyRef: flags.strings.get("agent-key")!,
    ...(clientToken ? { clientToken } : {}),
    passClientAuthorization,
    stateDir: stateDir ? resolve(io.cwd, stateDir) : defaultStateDir(io.env, io.homeDir ?? homedir()),
    ...(urlFile ? { urlFile: resolve(io.cwd, urlFile) } : {}),
    logLevel: logLevel as HubCommand["logLevel"],
    ...(upstream ? { upstream } : {}),
    ...(policy ? { policy } : {}),
    ...(auditorToken ? { auditorToken } : {}),
    ...(adminToken ? { adminToken } : {}),
    ...(identitySigningKey ? { identitySigningKey } : {}),
    ...(auditRetain !== undefined ? { auditRetain } : {}),
    settings: readSettings(flags),
    ...(otlp ? { otlp } : {}),
    ...(oidc ? { oidc } : {}),
  };
}

/** `--audit-retain N|all`. */
function readAuditRetain(raw: string | undefined): HubCommand["auditRetain"] {
  if (raw === undefined) return undefined;
  if (raw.trim().toLowerCase() === "all") return "all";
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(
      `--audit-retain "${raw}" is not a record count: write a positive number (e.g. --audit-retain 50000) or all to keep every record`,
    );
  }
  return value;
}

/** `--otlp-endpoint URL` with an optional `--otlp-headers REF`. */
async function readOtlp(flags: ParsedFlags, ctx: ReferenceContext): Promise<HubCommand["otlp"]> {
  const endpoint = flags.strings.get("otlp-endpoint");
  const headers = await hubSecret(flags, "otlp-headers", ctx);
  if (endpoint === undefined) {
    if (headers !== undefined)
      throw new UsageError("--otlp-headers needs --otlp-endpoint: the collector the headers are for");
    return undefined;
  }
  const url = tracesUrl(endpoint, false);
  if ("message" in url) throw new UsageError(`--otlp-endpoint: ${url.message}`);
  return { endpoint, ...(headers ? { headers } : {}) };
}

/** `--oidc-issuer URL --oidc-client-id ID [--oidc-client-secret REF]`, checked by the Worker's own parser. */
async function readOidc(flags: ParsedFlags, ctx: ReferenceContext): Promise<LocalOidc | undefined> {
  const issuer = flags.strings.get("oidc-issuer");
  const clientSecret = await hubSecret(flags, "oidc-client-secret", ctx);
  const rest = ["oidc-client-id", "oidc-groups-claim", "oauth-redirect-origins"].filter((name) =>
    flags.strings.has(name),
  );
  if (issuer === undefined) {
    if (rest.length || clientSecret !== undefined)
      throw new UsageError(`--${rest[0] ?? "oidc-client-secret"} configures OAuth sign-in: give --oidc-issuer URL too`);
    return undefined;
  }
  const oidc: LocalOidc = {
    issuer,
    clientId: flags.strings.get("oidc-client-id") ?? "",
    ...(clientSecret !== undefined ? { clientSecret } : {}),
    ...(flags.strings.has("oidc-groups-claim") ? { groupsClaim: flags.strings.get("oidc-groups-claim")! } : {}),
    ...(flags.strings.has("oauth-redirect-origins")
      ? { redirectOrigins: flags.strings.get("oauth-redirect-origins")! }
      : {}),
  };
  try {
    parseIdentitySettings({
      AIRLOCK_OIDC_ISSUER: oidc.issuer,
      AIRLOCK_OIDC_CLIENT_ID: oidc.clientId,
      AIRLOCK_OAUTH_REDIRECT_ORIGINS: oidc.redirectOrigins,
    });
  } catch (error) {
    const flag = (error as Error).message
      .replace("AIRLOCK_OIDC_ISSUER", "--oidc-issuer")
      .replace(/AIRLOCK_OIDC_CLIENT_ID is not set/, "--oidc-client-id is required")
      .replace("AIRLOCK_OAUTH_REDIRECT_ORIGINS", "--oauth-redirect-origins");
    throw new UsageError(flag);
  }
  return oidc;
}

/** `--upstream URL` with `--upstream-key REF`: both or neither. */
async function readUpstream(flags: ParsedFlags, ctx: ReferenceContext): Promise<HubCommand["upstream"]> {
  const url = flags.strings.get("upstream");
  const key = await hubSecret(flags, "upstream-key", ctx);
  if (url === undefined) {
    if (key !== undefined) throw new UsageError("--upstream-key is for relay mode: give --upstream URL too");
    return undefined;
  }
  if (!/^https?:\/\/[^/]/i.test(url) || !URL.canParse(url))
    throw new UsageError(`--upstream "${url}" is not an http(s) URL; e.g. --upstream https://api.openai.com`);
  if (key === undefined)
    throw new UsageError(
      "--upstream needs --upstream-key env:NAME (the upstream's API key; agents keep their own key)",
    );
  return { url, key };
}

/** `--policy FILE`, parsed here so a bad policy is a usage error naming the path, not a failing Worker. */
async function readPolicyFlag(flags: ParsedFlags, cwd: string): Promise<HubCommand["policy"]> {
  const given = flags.strings.get("policy");
  if (given === undefined) return undefined;
  const file = resolve(cwd, given);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(
      `--policy: cannot read ${file} (${(error as { code?: string }).code ?? (error as Error).message})`,
    );
  }
  const { parsePolicy } = await import("../../shared/policy/index.ts");
  const parsed = parsePolicy(text, { source: file });
  if (!parsed.ok) throw new UsageError(`--policy: the policy is invalid:\n  ${parsed.errors.join("\n  ")}`);
  return { text, file };
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * Run `start` and drop the SIGINT/SIGTERM listeners it installed. Miniflare's exit hook
 * exits the process on those signals at once (status 130/143), before the hub or an agent
 * in the same process could shut down in order; the caller then owns them and must close
 * what it started. Miniflare's `exit` listener stays, so workerd still dies with us.
 */
export async function withOwnSignals<T>(start: () => Promise<T>): Promise<T> {
  const before = new Map(SIGNALS.map((name) => [name, new Set(process.listeners(name))]));
  try {
    return await start();
  } finally {
    for (const name of SIGNALS) {
      for (const listener of process.listeners(name)) if (!before.get(name)!.has(listener)) process.off(name, listener);
    }
  }
}

/** Start the local hub a {@link HubCommand} describes (Miniflare is loaded only here). */
export async function startHub(command: HubCommand): Promise<LocalHub> {
  const { startLocalHub } = await import("../hub-local/run.ts");
  return withOwnSignals(() =>
    startLocalHub({
      host: command.host,
      port: command.port,
      stateDir: command.stateDir,
      logLevel: command.logLevel,
      settings: command.settings,
      tunnels: [
        {
          id: command.tunnelId,
          agentKeys: [command.agentKey],
          clientTokens: command.clientToken ? [command.clientToken] : [],
          name: "Local Airlock hub",
          passClientAuthorization: command.passClientAuthorization,
        },
      ],
      ...(command.upstream ? { upstream: command.upstream.url, upstreamKey: command.upstream.key } : {}),
      ...(command.policy ? { policy: command.policy.text } : {}),
      ...(command.auditorToken ? { auditorToken: command.auditorToken } : {}),
      ...(command.adminToken ? { adminToken: command.adminToken } : {}),
      ...(command.identitySigningKey ? { identitySigningKey: command.identitySigningKey } : {}),
      ...(command.auditRetain !== undefined ? { auditRetainRecords: command.auditRetain } : {}),
      ...(command.otlp
        ? {
            otlpEndpoint: command.otlp.endpoint,
            ...(command.otlp.headers ? { otlpHeaders: command.otlp.headers } : {}),
          }
        : {}),
      ...(command.oidc ? { oidc: command.oidc } : {}),
    }),
  );
}

/** The MCP ingress URL of a tunnel on a hub. */
export function mcpUrl(hub: URL, tunnelId: string, channel?: string): URL {
  return new URL(`v1/mcp/${tunnelId}${channel ? `/${channel}` : ""}`, hub);
}

/** A hub base URL as agents want it for `control_plane.base_url`: the origin, no trailing slash. */
export function controlPlaneBase(hub: URL): string {
  return hub.origin;
}

/** What the operator sees once the hub listens. No secret is ever part of it. */
export function hubBanner(hub: URL, command: HubCommand): string {
  const base = controlPlaneBase(hub);
  const key = command.agentKeyRef;
  const envName = referenceKind(key) === "env" ? key.trim().slice(4).trim() : undefined;
  const auth = command.passClientAuthorization
    ? `clients send their own Authorization (passed to the MCP server)${command.clientToken ? "; the hub token goes in X-Airlock-Token" : ""}`
    : command.clientToken
      ? "clients send Authorization: Bearer <client token>"
      : "clients sign in (OAuth); there is no static client token";
  const lines = [
    `Airlock hub listening on ${base}`,
    `  tunnel    ${command.tunnelId}`,
    `  MCP URL   ${mcpUrl(hub, command.tunnelId).href}`,
    `            ${auth}`,
    `  state     ${command.stateDir}`,
    "",
    "Point an agent at it (the agent presents the same key the hub was given):",
    `  ${envName ? `${envName}=… ` : ""}airlock run --control-plane.base-url ${base} \\`,
    `    --control-plane.tunnel-id ${command.tunnelId} --control-plane.api-key ${key} \\`,
    `    --mcp.command "npx -y @modelcontextprotocol/server-everything"`,
    "",
    "Stop with Ctrl-C.",
  ];
  const extra = [
    ...(command.upstream
      ? [`  relay     to ${command.upstream.url} (MCP clients reach the tunnel there, not here)`]
      : []),
    ...(command.policy ? [`  policy    ${command.policy.file}`] : []),
    ...(command.auditorToken
      ? [`  audit     ${new URL(`v1/audit/${command.tunnelId}`, hub).href}  (airlock audit verify <url> --token …)`]
      : []),
    ...(command.adminToken
      ? [`  admin     ${new URL("v1/admin/tunnels", hub).href}  (airlock admin tunnels … --hub ${base} --token …)`]
      : []),
    ...(command.otlp ? [`  traces    ${command.otlp.endpoint}`] : []),
    ...(command.oidc
      ? [
          `  sign-in   OAuth for MCP clients; people sign in at ${command.oidc.issuer}`,
          `            register this redirect URI for client ${command.oidc.clientId} at the provider: ${new URL(CALLBACK_PATH, hub).href}`,
        ]
      : []),
  ];
  lines.splice(5, 0, ...extra);
  if (command.host !== "127.0.0.1" && command.host !== "::1" && command.host !== "localhost") {
    lines.splice(
      5,
      0,
      `  note      listening on ${command.host}, not only loopback: anyone who can reach it may try the tokens`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Write `text` to `path` atomically (readers never see a half-written URL). */
export async function writeUrlFile(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${text}\n`, { mode: 0o644 });
  await rename(temp, path);
}

/** Resolves with the first of SIGINT / SIGTERM. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handlers = SIGNALS.map((name) => {
      const handler = () => {
        for (const [i, other] of SIGNALS.entries()) process.off(other, handlers[i]!);
        resolve(name);
      };
      process.once(name, handler);
      return handler;
    });
  });
}

export function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  return withUsageErrors("hub", io, () => hub(argv, io));
}

async function hub(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("hub", argv, HUB_FLAGS);
  if (flags.help) {
    io.stdout(helpText(SYNOPSIS, DESCRIPTION, HUB_FLAGS));
    return 0;
  }
  const command = await readHubCommand(flags, io);
  let running: LocalHub;
  try {
    running = await startHub(command);
  } catch (error) {
    io.stderr(`airlock hub: ${(error as Error).message}\n`);
    return 1;
  }
  // Listen for signals before announcing: a script may stop the hub as soon as it reads the URL.
  const signalled = untilSignal();
  if (command.urlFile) await writeUrlFile(command.urlFile, controlPlaneBase(running.url));
  io.stdout(hubBanner(running.url, command));
  const signal = await signalled;
  io.stdout(`\n${signal} received: stopping the hub (state kept in ${command.stateDir})\n`);
  await running.close();
  if (command.urlFile) await rm(command.urlFile, { force: true });
  return 0;
}
