/**
 * Structured logging on web-standard APIs only. Lines go to a sink (stderr in the
 * agent); every line is scrubbed of known secret values before it leaves, so a
 * secret that slips into an error message still never reaches a log.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "text";
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogRecord { time: string; level: LogLevel; msg: string; [field: string]: unknown }

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

function textLine(record: LogRecord): string {
  const { time, level, msg, ...rest } = record;
  const extras = Object.entries(rest).map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
  return [time, level.toUpperCase().padEnd(5), msg, ...extras].join(" ");
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
    const record: LogRecord = { time: now().toISOString(), level, msg, ...bound };
    for (const [key, value] of Object.entries(fields ?? {})) record[key] = errorFields(value);
    let line = options.format === "text" ? textLine(record) : JSON.stringify(record);
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
    setLevel: (level) => { state.level = level; },
    get level() { return state.level; },
  };
}

/** A logger that drops everything; for tests and library defaults. */
export const silentLogger: Logger = createLogger({ sink: () => {} , level: "error" });
