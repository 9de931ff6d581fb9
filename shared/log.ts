/**
 * Structured logging on web-standard APIs only. Lines go to a sink (the agent picks
 * stdout, stderr or a file); every line is scrubbed of known secret values before it
 * leaves, so a secret that slips into an error message still never reaches a log.
 *
 * The three layouts are tunnel-client's (Go's log/slog), so log pipelines keep parsing:
 * - `json`: `{"time":"…","level":"INFO","msg":"…",…}` (slog's JSONHandler),
 * - `text` (`struct-text`): `time=… level=INFO msg="…" key=value` (slog's TextHandler),
 * - `default` (no format set): `2026/01/02 15:04:05 INFO msg key=value` (Go's default logger).
 * Records handed to the sink keep lower-case levels; only the printed line is upper case.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "text" | "default";
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogRecord {
  time: string;
  level: LogLevel;
  msg: string;
  [field: string]: unknown;
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines carry `fields` as well. */
  child(fields: LogFields): Logger;
  /** Change the threshold at runtime (the admin UI's level switch). */
  setLevel(level: LogLevel): void;
  readonly level: LogLevel;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Receives each finished line (without newline). Defaults to `console.error`. */
  sink?: (line: string, record: LogRecord) => void;
  /** Values that must never be printed; replaced by `[REDACTED]` wherever they appear. */
  secrets?: () => Iterable<string>;
  now?: () => Date;
}

/** Replace every occurrence of each secret (at least 4 characters long) in `text`. */
export function scrubSecrets(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4 && out.includes(secret)) out = out.split(secret).join("[REDACTED]");
  }
  return out;
}

function errorFields(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/** slog quotes a text value when it is empty or holds a space, `=`, `"` or a control character. */
function textValue(value: unknown): string {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "null");
  // deno-lint-ignore no-control-regex
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must be quoted
  return text === "" || /[\s="\u0000-\u001f\u007f]/.test(text) ? JSON.stringify(text) : text;
}

function attrs(rest: Record<string, unknown>): string[] {
  return Object.entries(rest).map(([key, value]) => `${key}=${textValue(value)}`);
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** Go's default logger timestamp: local time, `2006/01/02 15:04:05`. */
function goLogTime(date: Date): string {
  return `${date.getFullYear()}/${pad(date.getMonth() + 1)}/${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function formatLine(format: LogFormat | undefined, record: LogRecord, at: Date): string {
  const { time, level, msg, ...rest } = record;
  const upper = level.toUpperCase();
  if (format === "text") return [`time=${time}`, `level=${upper}`, `msg=${textValue(msg)}`, ...attrs(rest)].join(" ");
  if (format === "default") return [goLogTime(at), upper, msg, ...attrs(rest)].join(" ");
  return JSON.stringify({ time, level: upper, msg, ...rest });
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const state = { level: options.level ?? "info" };
  return makeLogger(options, bound, state);
}

function makeLogger(options: LoggerOptions, bound: LogFields, state: { level: LogLevel }): Logger {
  const sink = options.sink ?? ((line: string) => console.error(line));
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < LEVELS[state.level]) return;
    const at = now();
    const record: LogRecord = { time: at.toISOString(), level, msg, ...bound };
    for (const [key, value] of Object.entries(fields ?? {})) record[key] = errorFields(value);
    let line = formatLine(options.format, record, at);
    if (options.secrets) {
      const scrubbed = scrubSecrets(line, options.secrets());
      if (scrubbed !== line) {
        line = scrubbed;
        for (const key of Object.keys(record)) {
          record[key] = JSON.parse(scrubSecrets(JSON.stringify(record[key]) ?? "null", options.secrets()));
        }
      }
    }
    sink(line, record);
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => makeLogger(options, { ...bound, ...fields }, state),
    setLevel: (level) => {
      state.level = level;
    },
    get level() {
      return state.level;
    },
  };
}

/** A logger that drops everything; for tests and library defaults. */
export const silentLogger: Logger = createLogger({ sink: () => {}, level: "error" });
