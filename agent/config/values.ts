/**
 * Flag and environment values are strings; this turns them into the same shapes the YAML
 * schema produces, following tunnel-client's syntaxes (`Key: Value` headers,
 * `channel=…,url=…` MCP entries, `label=…,url=…` Harpoon targets, Go durations and bools).
 * Error messages name the flag or variable but never echo an entry, which may hold a secret.
 */
import type { HarpoonTargetEntry, McpCommandEntry, McpServerUrlEntry } from "../../shared/config/schema.ts";
import { parseDuration } from "../../shared/protocol/duration.ts";
import { configError } from "./errors.ts";
import type { Setting } from "./flags.ts";
import type { ConfigRules } from "./types.ts";

/**
 * Parse the raw values one layer gave for `setting`. `values` are every flag occurrence,
 * or the single environment value (split into items for list kinds). `origin` names the
 * flag or variable in errors; `path` is the YAML key path.
 */
export function parseRawSetting(
  setting: Setting,
  values: string[],
  origin: string,
  fromEnv: boolean,
  rules: ConfigRules = { strict: false, warnings: [] },
): unknown {
  const items =
    fromEnv && setting.split
      ? values
          .flatMap((v) => v.split(setting.split!))
          .map((v) => v.trim())
          .filter(Boolean)
      : values;
  const last = (values.at(-1) ?? "").trim();
  const fail = (message: string) => configError(setting.path, `${origin}: ${message}`);
  switch (setting.kind) {
    case "string":
    case "secret":
      return last;
    case "int": {
      if (!/^[+-]?[0-9]+$/.test(last)) throw fail(`expected a whole number, got "${last}"`);
      return Number(last);
    }
    case "bool": {
      const value = parseGoBool(last);
      if (value === undefined) throw fail(`expected true or false, got "${last}"`);
      return value;
    }
    case "duration": {
      const ms = parseDuration(last);
      if (ms === undefined) throw fail(`"${last}" is not a duration; write it Go-style, e.g. 30s, 1m30s or 250ms`);
      return ms;
    }
    case "list":
      return items.map((v) => v.trim()).filter(Boolean);
    case "headers":
      return parseHeaderEntries(items, fail);
    case "server-urls":
      return items.map((entry, index) => parseServerUrlEntry(entry, (m) => fail(`entry ${index + 1}: ${m}`)));
    case "commands":
      return items.map((entry, index) => parseCommandEntry(entry, (m) => fail(`entry ${index + 1}: ${m}`)));
    case "harpoon-targets":
      return items.map((entry, index) =>
        parseHarpoonTarget(entry, (m) => fail(`entry ${index + 1}: ${m}`), {
          strict: rules.strict,
          warn: (m) => rules.warnings.push(`${setting.path}: ${origin}: entry ${index + 1}: ${m}`),
        }),
      );
  }
}

/**
 * `AIRLOCK_STRICT_CONFIG` for commands that load no profile (`admin`): on when it parses as
 * true. The agent's own loader also reads `--strict-config` and `strict_config`.
 */
export function strictConfigFromEnv(env: Readonly<Record<string, string | undefined>>): boolean {
  return parseGoBool((env.AIRLOCK_STRICT_CONFIG ?? "").trim()) === true;
}

/** Go's `strconv.ParseBool`. */
export function parseGoBool(value: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  return undefined;
}

type Fail = (message: string) => Error;

function parseHeaderEntries(entries: string[], fail: Fail): Record<string, string> {
  const headers: Record<string, string> = {};
  entries.forEach((entry, index) => {
    const colon = entry.indexOf(":");
    if (colon === -1) throw fail(`header ${index + 1} is not 'Key: Value'`);
    const name = entry.slice(0, colon).trim();
    const value = entry.slice(colon + 1).trim();
    if (!name) throw fail(`header ${index + 1} has an empty name`);
    if (!value) throw fail(`header ${name} has an empty value`);
    headers[name] = value;
  });
  return headers;
}

/**
 * `key=value,key=value` pairs; keys lower-cased, values unquoted. An unknown key is an error
 * unless `unknown` says otherwise (tunnel-client ignores unknown Harpoon target keys).
 */
function keyValues(
  entry: string,
  allowed: readonly string[],
  fail: Fail,
  unknown: (key: string) => "ignore" | "refuse" = () => "refuse",
): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const part of entry.split(",")) {
    if (!part.trim()) continue;
    const eq = part.indexOf("=");
    if (eq === -1) throw fail("expected key=value pairs separated by commas");
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part
      .slice(eq + 1)
      .trim()
      .replace(/^["']|["']$/g, "");
    if (!allowed.includes(key)) {
      if (unknown(key) === "ignore") continue;
      throw fail(`unsupported key "${key}" (use ${allowed.join(", ")})`);
    }
    if (!value) throw fail(`${key} is empty`);
    pairs.set(key, value);
  }
  return pairs;
}

const SERVER_URL_KEYS = ["channel", "url", "unix-socket", "http-proxy", "client-cert", "client-key"] as const;
const QUALIFIED = /^\s*(channel|url|command|unix-socket|http-proxy|client-cert|client-key)=/i;

/** `https://…` (channel main) or `channel=…,url=…,unix-socket=…,http-proxy=…,client-cert=…,client-key=…`. */
export function parseServerUrlEntry(entry: string, fail: Fail): McpServerUrlEntry {
  if (!QUALIFIED.test(entry)) return { url: entry.trim() };
  const pairs = keyValues(entry, SERVER_URL_KEYS, fail);
  const url = pairs.get("url");
  if (!url) throw fail("url= is missing");
  const out: McpServerUrlEntry = { url };
  const channel = pairs.get("channel");
  if (channel) out.channel = channel;
  const optional = {
    "unix-socket": "unix_socket",
    "http-proxy": "http_proxy",
    "client-cert": "client_cert",
    "client-key": "client_key",
  } as const;
  for (const [key, field] of Object.entries(optional)) {
    const value = pairs.get(key);
    if (value) out[field] = value;
  }
  return out;
}

/**
 * `npx -y server` (channel main), `channel=tools,command=npx -y server` or
 * `command=npx -y server,channel=tools`. The command keeps its commas, so only a leading
 * `channel=` or a trailing `,channel=` is split off, as tunnel-client does.
 */
export function parseCommandEntry(entry: string, fail: Fail): McpCommandEntry {
  const text = entry.trim();
  if (!QUALIFIED.test(text)) return { command: text };
  let channel = "";
  let command: string;
  if (/^channel=/i.test(text)) {
    const comma = text.indexOf(",");
    if (comma === -1) throw fail("command= is missing");
    channel = text.slice("channel=".length, comma).trim();
    const rest = text.slice(comma + 1).trim();
    if (!/^command=/i.test(rest)) throw fail("expected channel=NAME,command=COMMAND");
    command = rest.slice("command=".length).trim();
  } else if (/^command=/i.test(text)) {
    command = text.slice("command=".length).trim();
    const at = command.toLowerCase().lastIndexOf(",channel=");
    if (at !== -1) {
      channel = command.slice(at + ",channel=".length).trim();
      command = command.slice(0, at).trim();
    }
  } else {
    throw fail("stdio entries take only channel= and command=");
  }
  for (const key of ["url", "unix-socket", "http-proxy", "client-cert", "client-key"]) {
    if (command.toLowerCase().includes(`,${key}=`)) throw fail(`${key} does not apply to a stdio command`);
  }
  if (!command) throw fail("command is empty");
  return channel ? { channel, command } : { command };
}

/** `description` is what the YAML key is called; tunnel-client's flag ignores it, Airlock takes it as `desc`. */
const HARPOON_KEYS = ["label", "url", "desc", "description", "unix-socket"] as const;

/**
 * `label=auth,url=https://auth.example.com,desc=Auth server[,unix-socket=…]`. An unknown key
 * is ignored with a warning, as tunnel-client ignores it; refused under `strict`.
 */
export function parseHarpoonTarget(
  entry: string,
  fail: Fail,
  rules: { strict: boolean; warn(message: string): void } = { strict: true, warn: () => {} },
): HarpoonTargetEntry {
  const pairs = keyValues(entry, HARPOON_KEYS, fail, (key) => {
    if (rules.strict) return "refuse";
    rules.warn(
      `unknown key "${key}" is ignored, as tunnel-client ignores it (the keys are ${HARPOON_KEYS.join(", ")}); set strict_config to refuse it`,
    );
    return "ignore";
  });
  const label = pairs.get("label");
  if (!label || !pairs.get("url")) throw fail("label= and url= are required");
  const out: HarpoonTargetEntry = { label, url: pairs.get("url")! };
  const description = pairs.get("desc") ?? pairs.get("description");
  if (description) out.description = description;
  const socket = pairs.get("unix-socket");
  if (socket) out.unix_socket = socket;
  return out;
}
