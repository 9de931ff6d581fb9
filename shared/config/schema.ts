/**
 * The agent's YAML configuration file: OpenAI `tunnel-client`'s file format (every key it
 * accepts, so an existing profile loads unchanged) plus Airlock's `routes:` and `policy:`.
 *
 * Strict: an unknown key is an error that names its path and the nearest known key. This
 * file only describes shapes and per-value rules; layering (flags > env > file > defaults),
 * secret references and cross-field checks live in `agent/config/`.
 */
import { z } from "zod";
import { ChannelName } from "../protocol/channels.ts";
import { parseDuration } from "../protocol/duration.ts";
import { globProblem } from "../policy/glob.ts";

/** One problem found in a configuration document. */
export interface ConfigIssue {
  /** Key path in the document, e.g. `control_plane.tunnel_id` or `routes[0].backends[1].url`. */
  path: string;
  message: string;
}

/**
 * Go's yaml.v3 decodes any scalar into a string field, so `X-Debug: 1` or `tunnel_id: 123`
 * are strings to tunnel-client. Do the same; objects and lists stay errors.
 */
const Text = z.preprocess((v) => (typeof v === "number" || typeof v === "boolean" ? String(v) : v), z.string());

const YAML11_BOOLEANS: Record<string, boolean> = {
  true: true,
  yes: true,
  on: true,
  y: true,
  false: false,
  no: false,
  off: false,
  n: false,
};

/** yaml.v3 still reads YAML 1.1 booleans (`yes`, `off`) into typed bool fields. */
const Flag = z.preprocess(
  (v) => (typeof v === "string" && v.toLowerCase() in YAML11_BOOLEANS ? YAML11_BOOLEANS[v.toLowerCase()] : v),
  z.boolean(),
);

const Count = z.number().int("expected a whole number");
const PositiveCount = Count.positive("must be greater than zero");

/** Go-style duration (`30s`, `1m30s`, `250ms`), as milliseconds. */
export const Duration = Text.transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: "custom",
      message: `"${value}" is not a duration; write it Go-style, e.g. 30s, 1m30s or 250ms`,
    });
    return z.NEVER;
  }
  return ms;
});

/** Header name → value; values may be `env:NAME` / `file:/path` references. */
const HeaderValues = z.record(z.string().min(1, "header names cannot be empty"), Text);
const TextList = z.array(Text);

/** Backend names prefix aggregated tools as `name__tool`, so a double underscore would be ambiguous. */
export const BACKEND_NAME_PATTERN = /^[a-z0-9]+(?:[-_][a-z0-9]+)*$/;
export const BackendName = z
  .string()
  .max(64, "backend names are at most 64 characters")
  .regex(
    BACKEND_NAME_PATTERN,
    "backend names use lowercase letters and digits separated by single '-' or '_' (they prefix tools as name__tool)",
  );

/** A tool-name glob (`search*`), checked here so a bad pattern is a config error with its key path. */
const ToolGlob = z.string().superRefine((pattern, ctx) => {
  const problem = globProblem(pattern);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
const ToolFilter = z.strictObject({ allow: z.array(ToolGlob).optional(), deny: z.array(ToolGlob).optional() });

/**
 * How a stdio server's processes serve clients (agent/backends/stdio/sessions.ts): one child
 * per MCP session unless `share`, at most `max_sessions`, idle ones stopped after
 * `idle_timeout`; `pool_size` children take requests that carry no session.
 */
const StdioProcessModel = {
  share: Flag.optional(),
  max_sessions: PositiveCount.optional(),
  idle_timeout: Duration.optional(),
  pool_size: PositiveCount.optional(),
};

/** One MCP server behind a route: a stdio child (`command`) or a Streamable HTTP endpoint (`url`). */
export const BackendSpec = z
  .strictObject({
    name: BackendName,
    /** A string is split shell-like (quotes, escapes) but never run through a shell; a list is argv as-is. */
    command: z.union([Text, z.array(Text).min(1, "an argv list needs at least the program")]).optional(),
    env: HeaderValues.optional(),
    cwd: Text.optional(),
    url: Text.optional(),
    headers: HeaderValues.optional(),
    ca_file: Text.optional(),
    unix_socket: Text.optional(),
    http_proxy: Text.optional(),
    client_cert: Text.optional(),
    client_key: Text.optional(),
    tools: ToolFilter.optional(),
    timeout: Duration.optional(),
    max_concurrent_requests: PositiveCount.optional(),
    ...StdioProcessModel,
  })
  .superRefine((backend, ctx) => {
    const hasCommand = backend.command !== undefined;
    const hasUrl = backend.url !== undefined;
    if (hasCommand === hasUrl) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: hasCommand
          ? "set either command or url, not both"
          : "set command (a stdio server) or url (a Streamable HTTP server)",
      });
      return;
    }
    const wrong = hasCommand
      ? (["headers", "ca_file", "unix_socket", "http_proxy", "client_cert", "client_key"] as const).filter(
          (key) => backend[key] !== undefined,
        )
      : (["env", "cwd", "share", "max_sessions", "idle_timeout", "pool_size"] as const).filter(
          (key) => backend[key] !== undefined,
        );
    for (const key of wrong) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: hasCommand ? "only applies to url backends" : "only applies to command backends",
      });
    }
  });
export type BackendSpec = z.output<typeof BackendSpec>;

/** One channel of the routing table; several backends are aggregated under namespaced names. */
export const RouteSpec = z
  .strictObject({
    channel: ChannelName,
    backends: z.array(BackendSpec).min(1, "a route needs at least one backend"),
  })
  .superRefine((route, ctx) => {
    const seen = new Set<string>();
    route.backends.forEach((backend, index) => {
      if (seen.has(backend.name))
        ctx.addIssue({
          code: "custom",
          path: ["backends", index, "name"],
          message: `backend "${backend.name}" is already defined on channel ${route.channel}; names must be unique per channel`,
        });
      seen.add(backend.name);
    });
  });
export type RouteSpec = z.output<typeof RouteSpec>;

const Routes = z.array(RouteSpec).superRefine((routes, ctx) => {
  const seen = new Set<string>();
  routes.forEach((route, index) => {
    if (seen.has(route.channel))
      ctx.addIssue({
        code: "custom",
        path: [index, "channel"],
        message: `channel ${route.channel} has two routes; put all its backends in one route`,
      });
    seen.add(route.channel);
  });
});

/** `mcp.server_urls[]` (tunnel-client): one Streamable HTTP server per channel. */
export const McpServerUrlEntry = z.strictObject({
  channel: Text.optional(),
  url: Text,
  unix_socket: Text.optional(),
  http_proxy: Text.optional(),
  client_cert: Text.optional(),
  client_key: Text.optional(),
});
export type McpServerUrlEntry = z.output<typeof McpServerUrlEntry>;

/**
 * `mcp.commands[]` (tunnel-client): one stdio server per channel. `env` is Airlock's: the
 * variables the child gets on top of the allowlisted minimum (values may be references).
 */
export const McpCommandEntry = z.strictObject({
  channel: Text.optional(),
  command: Text,
  env: HeaderValues.optional(),
  ...StdioProcessModel,
});
export type McpCommandEntry = z.output<typeof McpCommandEntry>;

/** `harpoon.targets[]`: labelled HTTP targets of the built-in allowlisted HTTP client. */
export const HarpoonTargetEntry = z.strictObject({
  label: Text,
  url: Text.optional(),
  description: Text.optional(),
  unix_socket: Text.optional(),
  /** tunnel-client `config_version: 2` request templates; accepted, not run by Airlock. */
  template: z.record(z.string(), z.unknown()).optional(),
});
export type HarpoonTargetEntry = z.output<typeof HarpoonTargetEntry>;

export const ConfigFile = z.strictObject({
  config_version: z
    .union([z.literal(1), z.literal(2)], { message: "config_version must be 1 (or 2 for Harpoon templates)" })
    .optional(),
  ca_bundle: Text.optional(),
  http_proxy: Text.optional(),
  control_plane: z
    .strictObject({
      base_url: Text.optional(),
      url_path: Text.optional(),
      tunnel_id: Text.optional(),
      api_key: Text.optional(),
      organization_id: Text.optional(),
      client_cert: Text.optional(),
      client_key: Text.optional(),
      http_proxy: Text.optional(),
      max_inflight_requests: Count.optional(),
      max_response_bytes: Count.optional(),
      poll_timeout: Duration.optional(),
      poll_deadline_guardrail: Duration.optional(),
      poll_channels: TextList.optional(),
      extra_headers: HeaderValues.optional(),
    })
    .optional(),
  log: z
    .strictObject({
      level: Text.optional(),
      format: Text.optional(),
      file: Text.optional(),
      http_raw_unsafe: Flag.optional(),
    })
    .optional(),
  health: z
    .strictObject({
      listen_addr: Text.optional(),
      unix_socket: Text.optional(),
      url_file: Text.optional(),
      show_details: Flag.optional(),
    })
    .optional(),
  admin_ui: z
    .strictObject({
      allow_remote: Flag.optional(),
      allowed_hosts: TextList.optional(),
      open_browser: Flag.optional(),
      log_buffer_events: Count.optional(),
    })
    .optional(),
  process: z.strictObject({ pid_file: Text.optional() }).optional(),
  mcp: z
    .strictObject({
      server_urls: z.array(McpServerUrlEntry).optional(),
      commands: z.array(McpCommandEntry).optional(),
      http_proxy: Text.optional(),
      client_cert: Text.optional(),
      client_key: Text.optional(),
      extra_headers: HeaderValues.optional(),
      discovery_extra_headers: HeaderValues.optional(),
      oauth_trusted_origins: TextList.optional(),
      startup_wait_timeout: Duration.optional(),
      stdio_send_initialized_notification: Flag.optional(),
      connection_max_ttl: Duration.optional(),
      max_concurrent_requests: Count.optional(),
      timeout: Duration.optional(),
    })
    .optional(),
  harpoon: z
    .strictObject({
      targets: z.array(HarpoonTargetEntry).optional(),
      allow_plaintext_http: Flag.optional(),
      max_response_bytes: Count.optional(),
      max_redirects: Count.optional(),
      http_proxy: Text.optional(),
      additional_transports: TextList.optional(),
      capture_payloads: Flag.optional(),
      hosts_include_suffix: TextList.optional(),
      hosts_include_regex: TextList.optional(),
      hosts_include_loopback: Flag.optional(),
      hosts_include_private: Flag.optional(),
    })
    .optional(),
  proxy: z.strictObject({ check_interval: Duration.optional() }).optional(),
  cloudflared: z
    .strictObject({
      managed: Flag.optional(),
      token: Text.optional(),
      path: Text.optional(),
      ready_timeout: Duration.optional(),
    })
    .optional(),
  /** Airlock: the routing table (channel → one or more backends). */
  routes: Routes.optional(),
  /** Airlock: its stricter config rules instead of tunnel-client's (docs/migrating.md, "Stricter on request"). */
  strict_config: Flag.optional(),
  /** Airlock: a policy file path, or the policy inline; validated by `shared/policy`. */
  policy: z
    .union([z.string(), z.record(z.string(), z.unknown())], {
      message: "policy is a file path or an inline policy object",
    })
    .optional(),
});
export type ConfigFile = z.output<typeof ConfigFile>;

/**
 * YAML `null` (an empty `health:` section, a template's blank value) means "not set", as it
 * does for tunnel-client's pointer fields. Drop null members of mappings; list items stay.
 */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) if (member !== null) out[key] = dropNulls(member);
  return out;
}

/** Validate a parsed YAML document. `null`/empty documents are an empty configuration. */
export function validateConfigFile(
  document: unknown,
): { ok: true; config: ConfigFile } | { ok: false; issues: ConfigIssue[] } {
  const result = ConfigFile.safeParse(dropNulls(document ?? {}));
  if (result.success) return { ok: true, config: result.data };
  return { ok: false, issues: describeIssues(result.error.issues, ConfigFile) };
}

/** `control_plane.extra_headers`, `routes[0].backends[1]` */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Turn zod issues into path + message pairs, with "did you mean" for misspelt keys. */
export function describeIssues(issues: ReadonlyArray<z.core.$ZodIssue>, schema: z.ZodType): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      const known = knownKeys(schema, issue.path);
      for (const key of issue.keys) {
        const guess = closestMatch(key, known);
        out.push({
          path: formatPath([...issue.path, key]),
          message: `unknown key${guess ? `; did you mean ${guess}?` : ""}`,
        });
      }
      continue;
    }
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      // Report the branch that got furthest, not "invalid input".
      const deepest = issue.errors.flat().sort((a, b) => b.path.length - a.path.length)[0];
      if (deepest && deepest.path.length > 0) {
        out.push(...describeIssues([{ ...deepest, path: [...issue.path, ...deepest.path] }], schema));
        continue;
      }
    }
    out.push({ path: formatPath(issue.path), message: issue.message.replace(/^Invalid input: /, "") });
  }
  return out;
}

type SchemaDef = {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  options?: z.ZodType[];
};

const defOf = (schema: z.ZodType): SchemaDef => (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;

/** The object, array and record schemas under wrappers (optional, preprocess, refine, union). */
function structural(schema: z.ZodType): z.ZodType[] {
  const def = defOf(schema);
  if (def.type === "object" || def.type === "array" || def.type === "record") return [schema];
  return [def.innerType, def.in, def.out, ...(def.options ?? [])].filter((s) => s !== undefined).flatMap(structural);
}

/** The keys the object schema at `path` accepts. */
function knownKeys(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  let current = structural(schema);
  for (const part of path) {
    current = current.flatMap((s) => {
      const def = defOf(s);
      const next = typeof part === "number" ? def.element : (def.shape?.[String(part)] ?? def.valueType);
      return next ? structural(next) : [];
    });
  }
  return [...new Set(current.flatMap((s) => Object.keys(defOf(s).shape ?? {})))];
}

/** The candidate nearest to `word` by edit distance, when it is plausibly a typo of it. */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}
