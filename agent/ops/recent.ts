/**
 * Bounded memories for the admin UI and the support bundle: the last finished calls (fed by
 * {@link AgentEvents.commandFinished}) and the last log records (fed as a logger sink).
 * Both are rings: old entries fall out, memory stays flat however long the agent runs.
 * Calls keep names and numbers only, never payloads; log records arrive already scrubbed
 * of secrets by the logger.
 */
import type { AgentEvents, CommandReport } from "../events.ts";
import type { LogLevel, LogRecord } from "../../shared/log.ts";

/** One finished command, as the UI lists it: the dispatcher's report and when it finished (epoch ms). */
export type CallRecord = CommandReport & { at: number };

export interface RecentCalls {
  /** Give to the dispatcher (with `combineEvents` alongside the metrics). */
  readonly events: AgentEvents;
  /** Newest first. */
  list(): CallRecord[];
}

class Ring<T> {
  private items: T[] = [];
  private readonly capacity: number;
  constructor(capacity: number) {
    this.capacity = capacity;
  }
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }
  all(): T[] {
    return [...this.items];
  }
}

export function createRecentCalls(options: { capacity?: number; now?: () => number } = {}): RecentCalls {
  const ring = new Ring<CallRecord>(Math.max(1, options.capacity ?? 200));
  const now = options.now ?? Date.now;
  return {
    events: {
      commandFinished(report) {
        ring.push({ ...report, at: now() });
      },
    },
    list: () => ring.all().reverse(),
  };
}

/** One log record as the UI's tail shows it; `seq` grows by one per record. */
export interface LogEntry {
  seq: number;
  time: string;
  level: LogLevel;
  msg: string;
  /** The record's other fields (backend, error, …). */
  fields: Record<string, unknown>;
}

export interface LogTail {
  /** A logger sink: `createLogger({ sink: (line, record) => { toStderr(line); tail.sink(line, record); } })`. */
  sink(line: string, record: LogRecord): void;
  /** Entries after `seq` (0 for all kept), oldest first, at most `limit`. */
  since(seq: number, limit?: number): LogEntry[];
}

export function createLogTail(capacity = 2000): LogTail {
  const ring = new Ring<LogEntry>(Math.max(1, capacity));
  let seq = 0;
  return {
    sink(_line, record) {
      const { time, level, msg, ...fields } = record;
      ring.push({ seq: ++seq, time, level, msg, fields });
    },
    since(after, limit = 500) {
      const entries = ring.all().filter((entry) => entry.seq > after);
      return entries.slice(Math.max(0, entries.length - limit));
    },
  };
}
