/**
 * A tiny in-process {@link Backend} for tests where the MCP server is not the point
 * (dispatcher, poller, poster): every call is recorded and answers are scriptable.
 * Also a log capture and a deferred ("gate") to hold work until a test releases it.
 */
import type {
  Backend,
  BackendHealth,
  ExchangeResult,
  McpExchange,
  TerminationResult,
} from "../../agent/backends/types.ts";
import type { HeaderMap } from "../../shared/protocol/index.ts";
import { createLogger } from "../../shared/log.ts";
import type { Logger, LogRecord } from "../../shared/log.ts";

export interface TestBackend extends Backend {
  readonly exchanges: McpExchange[];
  readonly terminations: Array<{ headers: HeaderMap; signal: AbortSignal }>;
  /** How exchanges are answered; default: requests get `{result:{method}}` (200), everything else a 202 ack. */
  onExchange: (exchange: McpExchange) => Promise<ExchangeResult>;
  /** How session termination is answered; default 200. */
  onTerminate: (headers: HeaderMap, signal: AbortSignal) => Promise<TerminationResult>;
}

export function createTestBackend(name = "test"): TestBackend {
  const exchanges: McpExchange[] = [];
  const terminations: Array<{ headers: HeaderMap; signal: AbortSignal }> = [];
  const backend: TestBackend = {
    name,
    transport: "http",
    procAffinity: false,
    exchanges,
    terminations,
    onExchange: async ({ message }): Promise<ExchangeResult> => {
      if (!("id" in message) || typeof message.method !== "string") return { kind: "ack", status: 202, headers: {} };
      const reply = { jsonrpc: "2.0", id: message.id, result: { method: message.method } };
      return { kind: "response", status: 200, headers: { "Content-Type": ["application/json"] }, message: reply };
    },
    onTerminate: async () => ({ kind: "terminated", status: 200, headers: {} }),
    start: async () => {},
    exchange(exchange) {
      exchanges.push(exchange);
      return backend.onExchange(exchange);
    },
    terminateSession(headers, signal) {
      terminations.push({ headers, signal });
      return backend.onTerminate(headers, signal);
    },
    health: (): BackendHealth => ({ name, transport: "http", state: "up", restarts: 0, inflight: 0 }),
    close: async () => {},
  };
  return backend;
}

/** A promise a test resolves by hand. */
export interface Gate<T = void> {
  promise: Promise<T>;
  open(value: T): void;
}

export function createGate<T = void>(): Gate<T> {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** A logger that keeps its records for assertions. */
export function captureLog(): { log: Logger; records: LogRecord[]; text(): string } {
  const records: LogRecord[] = [];
  const log = createLogger({ level: "debug", sink: (_line, record) => records.push(record) });
  return { log, records, text: () => records.map((r) => JSON.stringify(r)).join("\n") };
}
