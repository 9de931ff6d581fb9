/**
 * `loadConfig`: command line + environment + YAML file + defaults → one validated
 * {@link AgentConfig}, with secrets resolved and listed for scrubbing. Precedence is
 * tunnel-client's: flags > environment > YAML > defaults, setting by setting (the table
 * in `flags.ts`). Every failure is a {@link ConfigError} (exit code 2) naming the key path,
 * where the value came from and what to do; no message ever carries a secret value.
 */
import { readFile as fsReadFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { validateConfigFile, type ConfigFile, type ConfigIssue } from "../../shared/config/schema.ts";
import {
  CLIENT_HEADERS,
  DEFAULT_CHANNEL,
  MAX_POLL_DEADLINE_MS,
  normalizeChannel,
  TUNNEL_ID_PATTERN,
} from "../../shared/protocol/index.ts";
import { scrubSecrets, type LogFormat, type LogLevel } from "../../shared/log.ts";
import { patternProblem } from "../../shared/policy/pattern.ts";
import type { McpCommandEntry, McpServerUrlEntry, HarpoonTargetEntry } from "../../shared/config/schema.ts";
import { parseListenAddr } from "../runtime/serve.ts";
import { parseArgv } from "./argv.ts";
import { ConfigError, configError } from "./errors.ts";
import {
  DEFAULT_BASE_URL,
  DEFAULT_LISTEN_ADDR,
  DEFAULT_MTLS_BASE_URL,
  flagKinds,
  settingForFlag,
  SETTINGS,
  SOURCE_FLAGS,
  type Setting,
} from "./flags.ts";
import { planConfigSource, type ConfigSourcePlan } from "./profiles.ts";
import { buildRoutes, checkChannelRules, HARPOON_CHANNEL, resolveUrl } from "./routes.ts";
import {
  noteUrlSecrets,
  resolvePathReference,
  resolveReference,
  resolveValueMap,
  type ReferenceContext,
} from "./secrets.ts";
import type { AgentConfig, ConfigRules, HarpoonTargetConfig, LoadedConfig, SettingSource } from "./types.ts";
import { parseRawSetting } from "./values.ts";

export interface LoadOptions {
  /** Arguments after the subcommand (`--control-plane.tunnel-id …`). `-h/--help` is ignored here. */
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Base for relative paths on the command line and in `file:` references. */
  cwd: string;
  /** Reads config files and `file:` references; defaults to the filesystem. */
  readFile?: (path: string) => Promise<string>;
  /** Home directory for `~` and the default profile directories; defaults to `$HOME`. */
  homeDir?: string;
  /**
   * Collect a missing or malformed tunnel id, an unusable API key and a missing main route in
   * {@link LoadedConfig.deferred} instead of throwing, so `doctor` and `init` can still check
   * everything else. The returned config then carries `""` for what could not be read.
   */
  lenient?: boolean;
}

/** Headers the agent sets itself on control-plane calls; extra headers may not replace them. */
const RESERVED_CONTROL_PLANE_HEADERS = new Set(
  [
    "Authorization",
    "Accept",
    "User-Agent",
    "X-Tunnel-Client-Wire-Protocol-Version",
    ...Object.values(CLIENT_HEADERS),
  ].map((h) => h.toLowerCase()),
);
const HARPOON_LABEL = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const LOG_LEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  warn: "warn",
  warning: "warn",
  error: "error",
};
/** tunnel-client's formats; unset is Go's default logger layout on stderr. */
const LOG_FORMATS: Record<string, LogFormat> = { "": "default", "struct-text": "text", text: "text", json: "json" };

/**
 * Settings tunnel-client has that Airlock accepts in its table but cannot honour: refused when
 * set, naming what to do, so nothing a profile asks for is silently dropped.
 */
const DEAD_SETTINGS: ReadonlyArray<{ path: string; active(r: Reader): boolean; why: string }> = [
  {
    path: "log.http_raw_unsafe",
    active: (r) => r.bool("log.http_raw_unsafe"),
    why: "Airlock never logs raw HTTP: it would put credentials and user data in logs. Remove it; --log.level debug shows each exchange without payloads",
  },
];

/** tunnel-client loads them: accepted with a warning saying what Airlock does instead; refused under strict_config. */
function checkDeadSettings(r: Reader, rules: ConfigRules): void {
  for (const setting of DEAD_SETTINGS) {
    if (!setting.active(r)) continue;
    if (rules.strict) throw r.fail(setting.path, `is not supported by Airlock: ${setting.why}`);
    rules.warnings.push(`${r.where(setting.path)} is ignored: ${setting.why}`);
  }
}

type Reader = ReturnType<typeof reader>;

/** `mcp.oauth_trusted_origins`: each an http(s) origin (`https://auth.example:8443`), nothing more. */
function trustedOrigins(r: Reader): string[] {
  return r.list("mcp.oauth_trusted_origins").map((raw) => {
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      // Reported below with the entry.
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.href !== `${url.origin}/`)
      throw r.fail(
        "mcp.oauth_trusted_origins",
        `"${raw}" is not an origin; write scheme, host and port only, e.g. https://auth.example.com`,
      );
    return url.origin;
  });
}

/** tunnel-client's API key check. */
const OPENAI_KEY = /^[0-9A-Za-z_-]+$/;

/** OpenAI's own control plane (`api.openai.com`, `mtls.api.openai.com`, …). */
export function isOpenAiHost(baseUrl: string): boolean {
  const host = new URL(baseUrl).hostname.toLowerCase();
  return host === "openai.com" || host.endsWith(".openai.com");
}

export async function loadConfig(options: LoadOptions): Promise<LoadedConfig> {
  const readFile = options.readFile ?? ((path: string) => fsReadFile(path, "utf8"));
  const flags = readFlags(options.argv);
  const plan = planConfigSource({
    flags: Object.fromEntries(
      Object.keys(SOURCE_FLAGS).flatMap((name) => {
        const value = flags.get(name)?.at(-1);
        return value === undefined ? [] : [[name, value]];
      }),
    ),
    env: options.env,
    cwd: options.cwd,
    ...(options.homeDir !== undefined ? { homeDir: options.homeDir } : {}),
  });
  const warnings: string[] = [];
  const file = plan ? await readConfigFile(plan, readFile, warnings) : undefined;

  const secrets = new Set<string>();
  const ctx: ReferenceContext = { env: options.env, cwd: options.cwd, readFile, secrets };
  try {
    const rules: ConfigRules = { strict: strictConfig(flags, options.env, file), warnings };
    const layered = layer(flags, options.env, file, rules);
    const deferred: ConfigIssue[] | undefined = options.lenient ? [] : undefined;
    const config = await build(layered, file, ctx, rules, deferred);
    const loaded: LoadedConfig = {
      config,
      sources: Object.fromEntries([...layered].map(([path, { source }]) => [path, source])),
      secrets: [...secrets],
      warnings,
    };
    if (deferred)
      loaded.deferred = deferred.map((issue) => ({ path: issue.path, message: scrubSecrets(issue.message, secrets) }));
    return loaded;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // A value that failed validation may be a secret that was resolved a moment earlier.
    const thrown =
      secrets.size > 0
        ? new ConfigError(
            error.issues.map((issue) => ({ path: issue.path, message: scrubSecrets(issue.message, secrets) })),
            { kind: error.kind },
          )
        : error;
    // An empty variable that hid a profile value is often why a setting is missing: say so with the error.
    for (const note of warnings.filter((w) => w.includes(" is set but empty, so it hides ")))
      thrown.message += `\n  (${note})`;
    throw thrown;
  }
}

/** Tokenise argv against the settings table; unknown flags and missing values are one usage error. */
function readFlags(argv: readonly string[]): Map<string, string[]> {
  const parsed = parseArgv(argv, flagKinds());
  const issues = [
    ...parsed.unknown.map(({ flag, suggestion }) => ({
      path: flag,
      message: `unknown flag${suggestion ? `; did you mean ${suggestion}?` : ""}`,
    })),
    ...parsed.problems.map((message) => ({ path: "", message })),
    ...parsed.positionals.map((word) => ({
      path: "",
      message: `unexpected argument "${word}"; flags are written --name value`,
    })),
  ];
  if (issues.length) throw new ConfigError(issues, { kind: "usage", where: "run `airlock run --help` for the flags" });
  // A hidden alias (`--control-plane-tunnel-id`) counts only when the canonical flag is absent, as in tunnel-client.
  const canonical = new Map<string, string[]>();
  for (const [name, values] of parsed.values) {
    const setting = settingForFlag(name);
    const key = setting?.flag ?? name;
    if (key !== name && parsed.values.has(key)) continue;
    canonical.set(key, values);
  }
  return canonical;
}

interface LoadedFile {
  path: string;
  plan: ConfigSourcePlan;
  config: ConfigFile;
}

async function readConfigFile(
  plan: ConfigSourcePlan,
  readFile: (path: string) => Promise<string>,
  warnings: string[],
): Promise<LoadedFile> {
  let text: string | undefined;
  let path = plan.candidates[0]!;
  for (const candidate of plan.candidates) {
    try {
      text = await readFile(candidate);
      path = candidate;
      break;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === "ENOENT") continue;
      throw configError(
        plan.origin,
        `cannot read ${candidate}${typeof code === "string" ? ` (${code})` : ""}; check its permissions`,
      );
    }
  }
  if (text === undefined) {
    const what =
      plan.kind === "profile"
        ? `profile "${plan.profileName}" not found; looked for ${plan.candidates.join(" and ")}`
        : `${plan.candidates[0]} does not exist`;
    throw configError(
      plan.origin,
      `${what}; create it or pass the right ${plan.kind === "profile" ? "--profile/--profile-dir" : `--${plan.kind}`}`,
    );
  }
  // The YAML parser loads only when there is a file to parse: a run configured by flags and
  // environment alone (containers, the bench) never holds it.
  const { parseAllDocuments } = await import("./yaml-documents.ts");
  const documents = parseAllDocuments(text, { uniqueKeys: true });
  const list = Array.isArray(documents) ? documents : [];
  const first = list[0];
  const syntax = first?.errors[0];
  if (syntax) {
    const at = syntax.linePos?.[0];
    const message = syntax.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    throw configError(at ? `line ${at.line}, column ${at.col}` : "", `${message} (YAML syntax in ${path})`);
  }
  const document: unknown = first ? first.toJS({ maxAliasCount: 100 }) : {};
  if (document !== null && document !== undefined && (typeof document !== "object" || Array.isArray(document))) {
    throw configError("", `${path} must be a YAML mapping of settings (config_version, control_plane, mcp, …)`);
  }
  const result = validateConfigFile(document);
  if (!result.ok) throw new ConfigError(result.issues, { where: `in ${path}` });
  if (list.length > 1) {
    if (result.config.config_version === 2)
      throw configError("", `${path} holds several YAML documents; config_version 2 allows exactly one`);
    warnings.push(`${path} holds several YAML documents; only the first is read`);
  }
  return { path, plan, config: result.config };
}

interface LayeredValue {
  value: unknown;
  source: SettingSource;
}

/**
 * `strict_config` is read before everything else because it decides how the other settings
 * are layered (flag > environment > file > off; an empty variable counts as unset).
 */
function strictConfig(flags: Map<string, string[]>, env: LoadOptions["env"], file: LoadedFile | undefined): boolean {
  const setting = SETTINGS.find((s) => s.path === "strict_config")!;
  const flag = flags.get(setting.flag!);
  if (flag) return parseRawSetting(setting, flag, `--${setting.flag}`, false) === true;
  const name = setting.env!.find((n) => (env[n] ?? "").trim() !== "");
  if (name) return parseRawSetting(setting, [env[name]!], name, true) === true;
  return file?.config.strict_config === true;
}

/** Pick each setting's value from the highest layer that has one. */
function layer(
  flags: Map<string, string[]>,
  env: LoadOptions["env"],
  file: LoadedFile | undefined,
  rules: ConfigRules,
): Map<string, LayeredValue> {
  const out = new Map<string, LayeredValue>();
  const fromEnv = (names: readonly string[] | undefined, setting: Setting) => {
    let empty: string | undefined;
    for (const name of names ?? []) {
      const raw = env[name];
      if (raw !== undefined && raw.trim() !== "")
        return { value: parseRawSetting(setting, [raw], name, true, rules), source: { layer: "env", name } } as const;
      if (raw !== undefined) empty ??= name;
    }
    // tunnel-client reads the profile as fallback variables, so one set to "" (compose's
    // `${UNSET}`) hides the profile's value and the default applies. strict_config skips it instead.
    return empty !== undefined && !rules.strict ? { shadowedBy: empty } : undefined;
  };
  for (const setting of SETTINGS) {
    const flagValues = setting.flag ? flags.get(setting.flag) : undefined;
    let chosen: LayeredValue | undefined;
    if (flagValues) {
      const origin = `--${setting.flag}`;
      if (setting.kind === "secret" && !flagValues.every((v) => /^\s*(env|file):/i.test(v))) {
        throw configError(
          setting.path,
          `${origin} takes a reference, env:NAME or file:/path, so the key stays out of the process list; or set ${setting.env?.[0] ?? "it in the config file"}`,
        );
      }
      chosen = {
        value: parseRawSetting(setting, flagValues, origin, false, rules),
        source: { layer: "flag", name: origin },
      };
    }
    const env = chosen ? undefined : fromEnv(setting.env, setting);
    const fileValue = file ? valueAt(file.config, setting.path) : undefined;
    if (env && "shadowedBy" in env) {
      if (fileValue !== undefined)
        rules.warnings.push(
          `${env.shadowedBy} is set but empty, so it hides ${setting.path} from ${file!.path} and the default applies, as in tunnel-client; unset the variable to use the profile's value (or set strict_config)`,
        );
    } else {
      chosen ??= env;
      if (!chosen && fileValue !== undefined)
        chosen = { value: fileValue, source: { layer: "file", name: file!.path } };
    }
    // A fallback variable set to "" is simply unset (tunnel-client's envOrDefault).
    const fallback = chosen ? undefined : fromEnv(setting.fallbackEnv, setting);
    if (fallback && !("shadowedBy" in fallback)) chosen = fallback;
    if (!chosen && setting.default !== undefined) chosen = { value: setting.default, source: { layer: "default" } };
    if (chosen) out.set(setting.path, chosen);
  }
  if (file?.config.routes) out.set("routes", { value: file.config.routes, source: { layer: "file", name: file.path } });
  return out;
}

function valueAt(root: unknown, path: string): unknown {
  let node = root;
  for (const key of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Typed reads of the layered values (their shapes are guaranteed by the schema and `values.ts`). */
function reader(layered: Map<string, LayeredValue>) {
  const get = (path: string) => layered.get(path)?.value;
  const where = (path: string) => {
    const source = layered.get(path)?.source;
    if (!source || source.layer === "default") return path;
    return `${path} (from ${source.name})`;
  };
  return {
    where,
    fail: (path: string, message: string) => configError(where(path), message),
    has: (path: string) => layered.has(path),
    /** Set by a flag, the environment or the file (not a default). */
    explicit: (path: string) => {
      const source = layered.get(path)?.source;
      return source !== undefined && source.layer !== "default";
    },
    str: (path: string) => {
      const value = get(path);
      return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
    },
    num: (path: string) => get(path) as number,
    bool: (path: string) => get(path) === true,
    list: (path: string) => (get(path) as string[] | undefined) ?? [],
    map: (path: string) => get(path) as Record<string, string> | undefined,
    entries: <T>(path: string) => get(path) as T[] | undefined,
  };
}

/** What every section of {@link build} reads from: the layered values, the file, and typed, checked reads of them. */
type BuildContext = ReturnType<typeof buildContext>;

function buildContext(
  layered: Map<string, LayeredValue>,
  file: LoadedFile | undefined,
  ctx: ReferenceContext,
  rules: ConfigRules,
  deferred?: ConfigIssue[],
) {
  const r = reader(layered);
  const warnings = rules.warnings;
  const optionalRef = async (path: string) => {
    const value = r.str(path);
    return value === undefined ? undefined : resolveReference(value, r.where(path), ctx);
  };
  return {
    r,
    layered,
    file,
    ctx,
    warnings,
    rules,
    /** Throw, or in lenient mode record and carry on. */
    defer: (error: ConfigError) => {
      if (!deferred) throw error;
      deferred.push(...error.issues);
    },
    optionalRef,
    optionalPath: async (path: string) => {
      const value = r.str(path);
      return value === undefined ? undefined : resolvePathReference(value, r.where(path), ctx);
    },
    /** A proxy URL may carry credentials: they join the secrets scrubbed from every message. */
    proxy: async (path: string, fallback?: string) => {
      const value = (await optionalRef(path)) ?? fallback;
      if (value) noteUrlSecrets(value, ctx.secrets);
      return value;
    },
    range: (path: string, min: number, max: number) => {
      const value = r.num(path);
      if (!(value >= min && value <= max))
        throw r.fail(
          path,
          max === Infinity
            ? `must be at least ${min}, got ${value}`
            : `must be between ${min} and ${max}, got ${value}`,
        );
      return value;
    },
  };
}

/**
 * The sections run in a fixed order (control plane, MCP, Harpoon, channels, operator surface,
 * then the remaining values), so with several mistakes the same one is reported first every time.
 */
async function build(
  layered: Map<string, LayeredValue>,
  file: LoadedFile | undefined,
  ctx: ReferenceContext,
  rules: ConfigRules,
  deferred?: ConfigIssue[],
): Promise<AgentConfig> {
  const b = buildContext(layered, file, ctx, rules, deferred);
  const controlPlane = await controlPlaneSection(b);
  const mcp = await mcpSection(b, controlPlane.globalProxy);
  const harpoon = await harpoonSection(b);
  const pollChannels = pollChannelsSection(b, mcp.routes, harpoon.targets);
  const operator = await operatorSection(b);
  const config = await assembleConfig(b, { controlPlane, mcp, harpoon, operator });
  await optionalSettings(b, config, { controlPlane, pollChannels });
  return config;
}

/** Tunnel id and API key: the two values doctor/init may defer in lenient mode. */
async function credentialsSection({ r, ctx, defer }: BuildContext): Promise<{ tunnelId: string; apiKey: string }> {
  const tunnelId = r.str("control_plane.tunnel_id") ?? "";
  if (!tunnelId)
    defer(
      configError(
        "control_plane.tunnel_id",
        "a tunnel id is required; set --control-plane.tunnel-id, CONTROL_PLANE_TUNNEL_ID or control_plane.tunnel_id",
      ),
    );
  else if (!TUNNEL_ID_PATTERN.test(tunnelId))
    defer(
      r.fail(
        "control_plane.tunnel_id",
        `"${tunnelId}" is not a tunnel id; expected tunnel_ followed by 32 lowercase letters or digits`,
      ),
    );
  const apiKeyRaw = r.str("control_plane.api_key");
  let apiKey = "";
  if (!apiKeyRaw)
    defer(
      configError(
        "control_plane.api_key",
        "an API key is required; set CONTROL_PLANE_API_KEY, --control-plane.api-key env:NAME|file:/path, or control_plane.api_key",
      ),
    );
  else {
    try {
      apiKey = await resolveReference(apiKeyRaw, r.where("control_plane.api_key"), ctx, { secret: true });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      defer(error);
    }
  }
  return { tunnelId, apiKey };
}

type ControlPlaneSection = Awaited<ReturnType<typeof controlPlaneSection>>;

async function controlPlaneSection(b: BuildContext) {
  const { r, ctx, warnings, defer, optionalRef, optionalPath, range } = b;
  const { tunnelId, apiKey } = await credentialsSection(b);
  const clientCert = await optionalPath("control_plane.client_cert");
  const clientKey = await optionalPath("control_plane.client_key");
  if ((clientCert === undefined) !== (clientKey === undefined))
    throw r.fail(
      clientCert ? "control_plane.client_cert" : "control_plane.client_key",
      "client_cert and client_key go together; set both or neither",
    );
  let baseUrl = await resolveUrl(
    r.str("control_plane.base_url") ?? DEFAULT_BASE_URL,
    r.where("control_plane.base_url"),
    ctx,
  );
  const base = new URL(baseUrl);
  if (base.pathname !== "/" || base.search || base.hash) {
    warnings.push(
      `control_plane.base_url is a host root; its path "${base.pathname}${base.search}" is ignored (put a prefix in control_plane.url_path)`,
    );
  }
  baseUrl = base.origin;
  if (clientCert && baseUrl === DEFAULT_BASE_URL) baseUrl = DEFAULT_MTLS_BASE_URL;
  // tunnel-client refuses a mangled OpenAI key at start instead of at the first poll (401). An
  // Airlock hub's agent key is the operator's own string, so the rule applies to OpenAI only.
  if (apiKey && isOpenAiHost(baseUrl) && !OPENAI_KEY.test(apiKey)) {
    defer(
      configError(
        r.where("control_plane.api_key"),
        "the API key is malformed: OpenAI keys hold only letters, digits, '-' and '_' (no spaces, quotes or line breaks); check what the variable or file holds",
      ),
    );
  }
  const urlPath = normalizeUrlPath(
    (await optionalRef("control_plane.url_path")) ?? "",
    r.where("control_plane.url_path"),
  );

  const pollTimeoutMs = range("control_plane.poll_timeout", 1, MAX_POLL_DEADLINE_MS);
  const pollDeadlineGuardrailMs = range("control_plane.poll_deadline_guardrail", 1, 59_999);
  if (pollTimeoutMs + pollDeadlineGuardrailMs > MAX_POLL_DEADLINE_MS) {
    throw r.fail(
      "control_plane.poll_timeout",
      `poll_timeout plus poll_deadline_guardrail must be at most ${MAX_POLL_DEADLINE_MS / 1000}s`,
    );
  }
  // The global proxy is the fallback for the control plane, MCP and Harpoon proxies alike.
  const globalProxy = await b.proxy("http_proxy");
  return {
    tunnelId,
    apiKey,
    clientCert,
    clientKey,
    baseUrl,
    urlPath,
    pollTimeoutMs,
    pollDeadlineGuardrailMs,
    globalProxy,
  };
}

type McpSection = Awaited<ReturnType<typeof mcpSection>>;

/** MCP defaults and routes. */
async function mcpSection(
  { r, layered, file, ctx, warnings, rules, optionalPath, proxy, range }: BuildContext,
  globalProxy: string | undefined,
) {
  const extraHeaders = await resolveValueMap(r.map("mcp.extra_headers"), r.where("mcp.extra_headers"), ctx, {
    headers: true,
  });
  const mcpProxy = await proxy("mcp.http_proxy", globalProxy);
  const mcpCert = await optionalPath("mcp.client_cert");
  const mcpKey = await optionalPath("mcp.client_key");
  if ((mcpCert === undefined) !== (mcpKey === undefined))
    throw r.fail(
      mcpCert ? "mcp.client_cert" : "mcp.client_key",
      "client_cert and client_key go together; set both or neither",
    );
  const origin = (path: string) => {
    const source = layered.get(path)?.source;
    return source?.layer === "flag" || source?.layer === "env" ? source.name! : "config file";
  };
  const serverUrls = r.entries<McpServerUrlEntry>("mcp.server_urls");
  const commands = r.entries<McpCommandEntry>("mcp.commands");
  const routes = await buildRoutes(
    {
      ...(layered.has("routes") ? { routes: file?.config.routes ?? [] } : {}),
      ...(serverUrls ? { serverUrls: { entries: serverUrls, origin: origin("mcp.server_urls") } } : {}),
      ...(commands ? { commands: { entries: commands, origin: origin("mcp.commands") } } : {}),
      mcpHttp: {
        headers: extraHeaders,
        ...(mcpProxy ? { httpProxy: mcpProxy } : {}),
        ...(mcpCert ? { clientCert: mcpCert, clientKey: mcpKey! } : {}),
      },
      rules,
    },
    ctx,
  );
  // One per-call limit for every backend, whatever its kind or route; a backend's own `timeout` wins.
  const mcpTimeout = r.has("mcp.timeout") ? range("mcp.timeout", 1, Infinity) : undefined;
  for (const backend of routes.flatMap((route) => route.backends)) {
    if (mcpTimeout !== undefined && backend.timeoutMs === undefined) backend.timeoutMs = mcpTimeout;
  }
  if (mcpCert && !routes.some((route) => route.backends.some((b) => b.transport === "http"))) {
    warnings.push("mcp.client_cert/client_key are set but no MCP server is reached over HTTP; they are unused");
  }
  return { routes, extraHeaders };
}

type HarpoonSection = Awaited<ReturnType<typeof harpoonSection>>;

async function harpoonSection({ r, ctx, warnings }: BuildContext) {
  const allowPlaintextHttp = r.bool("harpoon.allow_plaintext_http");
  const targets: HarpoonTargetConfig[] = [];
  for (const [index, entry] of (r.entries<HarpoonTargetEntry>("harpoon.targets") ?? []).entries()) {
    const where = `harpoon.targets[${index}]`;
    if (!HARPOON_LABEL.test(entry.label))
      throw configError(
        `${where}.label`,
        `"${entry.label}" is not a valid label: lowercase letters, digits, '-' and '_' (at most 64)`,
      );
    if (entry.template !== undefined) {
      warnings.push(
        `${where} (${entry.label}) is a request template; Airlock's Harpoon serves exact-URL targets only, so it is skipped`,
      );
      continue;
    }
    if (!entry.url) throw configError(`${where}.url`, "a target needs a url");
    const url = await resolveUrl(entry.url, `${where}.url`, ctx);
    if (!allowPlaintextHttp && !url.toLowerCase().startsWith("https:"))
      throw configError(`${where}.url`, "must be https (or set harpoon.allow_plaintext_http)");
    const target: HarpoonTargetConfig = { label: entry.label, url };
    if (entry.description) target.description = entry.description;
    if (entry.unix_socket)
      target.unixSocket = await resolvePathReference(entry.unix_socket, `${where}.unix_socket`, ctx);
    targets.push(target);
  }
  const additionalTransports = r.list("harpoon.additional_transports").map((t) => t.toLowerCase());
  for (const transport of additionalTransports) {
    if (transport !== "http-streamable")
      throw r.fail(
        "harpoon.additional_transports",
        `unsupported transport "${transport}"; only http-streamable exists`,
      );
  }
  const hostsIncludeRegex = r.list("harpoon.hosts_include_regex");
  for (const pattern of hostsIncludeRegex) {
    const problem = patternProblem(pattern.trim());
    if (problem && pattern.trim() !== "") throw r.fail("harpoon.hosts_include_regex", `"${pattern}" is ${problem}`);
  }
  return { targets, allowPlaintextHttp, additionalTransports, hostsIncludeRegex };
}

/** Which channels get polled; each needs something to serve it. `undefined`: every served channel. */
function pollChannelsSection(
  { r, rules, defer }: BuildContext,
  routes: McpSection["routes"],
  targets: HarpoonTargetConfig[],
): string[] | undefined {
  const served = new Set(routes.map((route) => route.channel));
  if (targets.length > 0) served.add(HARPOON_CHANNEL);
  if (!r.has("control_plane.poll_channels")) {
    if (!served.has(DEFAULT_CHANNEL)) {
      defer(
        configError(
          "mcp",
          routes.length === 0
            ? "the main channel needs an MCP server; set --mcp.server-url or --mcp.command (MCP_SERVER_URL / MCP_COMMAND, mcp.server_urls / mcp.commands) or add a routes: entry for channel main; for a first run without a server of your own, `airlock run --embedded-mcp-stub` serves a demo one"
            : "the main channel needs an MCP server; add channel=main to one --mcp.server-url or --mcp.command entry, or a routes: entry for channel main (or list the channels to poll in control_plane.poll_channels)",
        ),
      );
    }
    return undefined;
  }
  const seen = new Set<string>();
  for (const name of r.list("control_plane.poll_channels")) {
    if (normalizeChannel(name) !== name)
      throw r.fail(
        "control_plane.poll_channels",
        `"${name}" is not a canonical channel name: lowercase letters, digits, '-' and '_'`,
      );
    if (seen.has(name)) throw r.fail("control_plane.poll_channels", `${name} is listed twice`);
    checkChannelRules(name, r.where("control_plane.poll_channels"), rules);
    // tunnel-client lets `harpoon` be polled beside `main` before it has a target (OAuth discovery adds them).
    const bootstrap = name === HARPOON_CHANNEL && r.list("control_plane.poll_channels").includes("main");
    if (!served.has(name) && !bootstrap)
      throw r.fail(
        "control_plane.poll_channels",
        `nothing serves channel ${name}; add a route${name === HARPOON_CHANNEL ? " or a harpoon target" : ""} for it or remove it`,
      );
    seen.add(name);
  }
  if (seen.size === 0)
    throw r.fail("control_plane.poll_channels", "is empty; list at least one channel or remove the setting");
  return [...seen].sort();
}

type OperatorSection = Awaited<ReturnType<typeof operatorSection>>;

/** Operator surface and logging. */
async function operatorSection({ r, warnings, rules, optionalRef }: BuildContext) {
  const listenAddr = (await optionalRef("health.listen_addr")) ?? DEFAULT_LISTEN_ADDR;
  try {
    parseListenAddr(listenAddr);
  } catch (error) {
    throw r.fail("health.listen_addr", (error as Error).message);
  }
  checkDeadSettings(r, rules);
  const levelText = (r.str("log.level") ?? "info").toLowerCase();
  const level = LOG_LEVELS[levelText];
  if (!level) throw r.fail("log.level", `"${levelText}" is not a log level; use debug, info, warn or error`);
  // tunnel-client: a log file is written as struct-text unless a format is given.
  const formatText = (r.str("log.format") ?? (r.str("log.file") ? "struct-text" : "")).toLowerCase();
  const format = LOG_FORMATS[formatText];
  if (!format) throw r.fail("log.format", `"${formatText}" is not a log format; use json or struct-text`);
  if (
    r.bool("cloudflared.managed") ||
    r.str("cloudflared.token") ||
    r.str("cloudflared.path") ||
    r.explicit("cloudflared.ready_timeout")
  ) {
    warnings.push(
      "cloudflared.* configures tunnel-client's Cloudflare companion; Airlock does not run cloudflared and needs none (it reaches the control plane by outbound HTTPS long polls only), so these settings are ignored; remove them when convenient",
    );
  }
  return { listenAddr, level, format };
}

/** The config's always-present values, from the sections plus the plain range-checked settings. */
async function assembleConfig(
  { r, file, ctx, rules, range }: BuildContext,
  parts: { controlPlane: ControlPlaneSection; mcp: McpSection; harpoon: HarpoonSection; operator: OperatorSection },
): Promise<AgentConfig> {
  const { controlPlane: cp, mcp, harpoon, operator } = parts;
  const config: AgentConfig = {
    configVersion: file?.config.config_version ?? 1,
    strictConfig: rules.strict,
    controlPlane: {
      baseUrl: cp.baseUrl,
      urlPath: cp.urlPath,
      tunnelId: cp.tunnelId,
      apiKey: cp.apiKey,
      maxInflight: range("control_plane.max_inflight_requests", 1, 10_000),
      pollTimeoutMs: cp.pollTimeoutMs,
      pollDeadlineGuardrailMs: cp.pollDeadlineGuardrailMs,
      ...(r.has("control_plane.max_response_bytes")
        ? { maxResponseBytes: range("control_plane.max_response_bytes", 1024, Number.MAX_SAFE_INTEGER) }
        : {}),
      extraHeaders: await resolveValueMap(
        r.map("control_plane.extra_headers"),
        r.where("control_plane.extra_headers"),
        ctx,
        { headers: true, reserved: RESERVED_CONTROL_PLANE_HEADERS },
      ),
    },
    mcp: {
      maxConcurrentRequests: range("mcp.max_concurrent_requests", 1, Infinity),
      connectionMaxTtlMs: range("mcp.connection_max_ttl", 1, Infinity),
      startupWaitTimeoutMs: range("mcp.startup_wait_timeout", 0, Infinity),
      stdioSendInitializedNotification: r.bool("mcp.stdio_send_initialized_notification"),
      extraHeaders: mcp.extraHeaders,
      discoveryExtraHeaders: await resolveValueMap(
        r.map("mcp.discovery_extra_headers"),
        r.where("mcp.discovery_extra_headers"),
        ctx,
        { headers: true },
      ),
      oauthTrustedOrigins: trustedOrigins(r),
    },
    routes: mcp.routes,
    harpoon: {
      targets: harpoon.targets,
      allowPlaintextHttp: harpoon.allowPlaintextHttp,
      maxResponseBytes: range("harpoon.max_response_bytes", 1, 102_400),
      maxRedirects: range("harpoon.max_redirects", 0, 5),
      additionalTransports: harpoon.additionalTransports,
      capturePayloads: r.bool("harpoon.capture_payloads"),
      hostsIncludeSuffix: r.list("harpoon.hosts_include_suffix"),
      hostsIncludeRegex: harpoon.hostsIncludeRegex,
      hostsIncludeLoopback: r.bool("harpoon.hosts_include_loopback"),
      hostsIncludePrivate: r.bool("harpoon.hosts_include_private"),
    },
    health: { listenAddr: operator.listenAddr, showDetails: r.bool("health.show_details") },
    adminUi: {
      allowRemote: r.bool("admin_ui.allow_remote"),
      allowedHosts: r.list("admin_ui.allowed_hosts"),
      openBrowser: r.bool("admin_ui.open_browser"),
      logBufferEvents: range("admin_ui.log_buffer_events", 1, 100_000),
    },
    log: { level: operator.level, format: operator.format, httpRawUnsafe: r.bool("log.http_raw_unsafe") },
    process: {},
    proxy: { checkIntervalMs: range("proxy.check_interval", 1, Infinity) },
  };
  // Widening the peer must not drop the Host/Origin checks (DNS rebinding), so it needs the names to check against.
  if (config.adminUi.allowRemote && config.adminUi.allowedHosts.length === 0) {
    throw r.fail(
      "admin_ui.allowed_hosts",
      "--allow-remote-ui needs the host names the UI is reached by: set admin_ui.allowed_hosts (--admin-ui.allowed-host agent.example.internal)",
    );
  }
  return config;
}

/** Values the config carries only when set (optional keys stay absent rather than `undefined`). */
async function optionalSettings(
  b: BuildContext,
  config: AgentConfig,
  parts: { controlPlane: ControlPlaneSection; pollChannels: string[] | undefined },
): Promise<void> {
  const { r, file, ctx, proxy, optionalPath } = b;
  const { clientCert, clientKey, globalProxy } = parts.controlPlane;
  const cp = config.controlPlane;
  const organizationId = r.str("control_plane.organization_id");
  if (organizationId) cp.organizationId = organizationId;
  if (parts.pollChannels) cp.pollChannels = parts.pollChannels;
  const cpProxy = await proxy("control_plane.http_proxy", globalProxy);
  if (cpProxy) cp.httpProxy = cpProxy;
  if (clientCert && clientKey) Object.assign(cp, { clientCert, clientKey });
  const harpoonProxy = await proxy("harpoon.http_proxy", globalProxy);
  if (harpoonProxy) config.harpoon.httpProxy = harpoonProxy;
  const urlFile = r.str("health.url_file");
  if (urlFile) config.health.urlFile = resolve(ctx.cwd, urlFile);
  // tunnel-client: a socket replaces the TCP listener (health.listen_addr is then unused).
  // In a profile, tunnel-client reads `file:` here as the file holding the path (its YAML layer
  // resolves health.unix_socket like listen_addr), not as the path itself.
  const socketInFile = b.layered.get("health.unix_socket")?.source.layer === "file";
  const unixSocket = socketInFile
    ? await b.optionalRef("health.unix_socket")
    : await optionalPath("health.unix_socket");
  if (unixSocket) config.health.unixSocket = resolve(ctx.cwd, unixSocket);
  const logFile = r.str("log.file");
  if (logFile) config.log.file = resolve(ctx.cwd, logFile);
  const pidFile = r.str("process.pid_file");
  if (pidFile) config.process.pidFile = resolve(ctx.cwd, pidFile);
  const caBundle = await optionalPath("ca_bundle");
  if (caBundle) config.caBundle = caBundle;
  const policy = policySetting(b);
  if (policy !== undefined) config.policy = policy;
  if (file) {
    config.file = { path: file.path, kind: file.plan.kind };
    if (file.plan.profileName) config.file.profileName = file.plan.profileName;
  }
}

/** An inline policy from the file, or the path of a policy file. */
function policySetting({ layered, file, ctx }: BuildContext): AgentConfig["policy"] {
  const policy = layered.get("policy");
  if (file?.config.policy !== undefined && typeof file.config.policy === "object" && policy?.source.layer === "file") {
    return file.config.policy;
  }
  if (typeof policy?.value === "string" && policy.value.trim()) {
    // A policy named in a profile sits beside it; one named on the command line is relative to the working directory.
    const base = policy.source.layer === "file" && file ? dirname(file.path) : ctx.cwd;
    return isAbsolute(policy.value) ? policy.value : resolve(base, policy.value.trim());
  }
  return undefined;
}

/** tunnel-client's url_path rule: an absolute path without query or fragment; `/` means none. */
function normalizeUrlPath(raw: string, where: string): string {
  const value = raw.trim();
  if (value === "" || value === "/") return "";
  if (!value.startsWith("/") || value.startsWith("//") || /[?#]/.test(value)) {
    throw configError(where, "must be a path such as /gateway/us (starting with '/', no host, query or fragment)");
  }
  return value.replace(/\/+$/, "");
}
