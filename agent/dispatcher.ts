/**
 * Runs polled commands against backends: a bounded queue of accepted commands
 * (queued + running ≤ `maxInflight`, which is what the poller asks the control plane
 * for) feeding a pool of `maxConcurrent` workers. Each command runs at most once, under
 * its deadline; its answers go out through the poster.
 *
 * Deadlines (docs/protocol.md "Commands"): receipt time + `response_timeout`. Expired on
 * arrival or while queued → dropped silently. Expiring during work → the exchange's
 * signal aborts and nothing is posted, ever: a late answer would reach a caller that has
 * already been told the call timed out. Likewise nothing is posted for a request the
 * client cancelled (`notifications/cancelled`, the backend says `cancelled`).
 *
 * Standalone streams (`airlock_stream_open`, the hub's `get-stream` extension) and modern
 * `subscriptions/listen` requests live as long as the client and the backend keep them open,
 * so they run beside the pool: no deadline, no worker slot, not counted in `maxInflight` (a long-lived stream must never
 * starve calls). They are bounded on their own by `maxStreams`; one more stream than that
 * ends the oldest (its client sees its stream end and may reconnect), so streams the hub
 * forgot without a cancel (a hub restart) cannot lock new clients out. Posts: a
 * `jsonrpc_notify` without `resp_json` once the backend's stream is open, one
 * `jsonrpc_notify` per server message, then `notify_ack` when it ends; a stream that never
 * opened gets the backend's status instead (405 when the backend has none). `airlock_cancel`
 * closes a stream and posts nothing more; shutdown ends every stream with `notify_ack`.
 *
 * This file is the queue and its slots; running one command is `dispatcher/execute.ts`,
 * what gets posted `dispatcher/answers.ts`.
 */
import { normalizeChannel, parseResponseTimeout } from "../shared/protocol/index.ts";
import type { DecodedCommand } from "../shared/protocol/index.ts";
import type { Logger } from "../shared/log.ts";
import { isLongLivedRequest } from "../shared/mcp/era.ts";
import type { Backend } from "./backends/types.ts";
import type { AgentEvents } from "./events.ts";
import { sleep as realSleep } from "./control-plane/backoff.ts";
import type { Sleep } from "./control-plane/backoff.ts";
import type { Poster } from "./control-plane/poster.ts";
import { baseReport, abortedOutcome, commandLogFields } from "./dispatcher/command.ts";
import type { AbortCause, Entry, Report } from "./dispatcher/command.ts";
import { execute } from "./dispatcher/execute.ts";
import type { ExecuteDeps, OAuthDiscoveryRun } from "./dispatcher/execute.ts";
import { traceFinished, traceReceived, traceStarted } from "./telemetry/command.ts";
import { TRACING_OFF, type Tracing } from "./telemetry/tracing.ts";

export interface DispatcherOptions {
  /** The backend serving a (normalised) channel, or undefined when none does. */
  backends: (channel: string) => Backend | undefined;
  poster: Poster;
  log: Logger;
  events?: AgentEvents;
  /** Accepted commands, queued + running (default 20). The poller never asks for more than the free part. */
  maxInflight?: number;
  /** Commands running at once (default 10). */
  maxConcurrent?: number;
  /** Standalone streams open at once, besides the commands (default {@link DEFAULT_MAX_STREAMS}). */
  maxStreams?: number;
  /** Monotonic ms; must be the clock the control-plane client stamps receipt times with (default `performance.now`). */
  now?: () => number;
  /** Deadline timers and the drain grace period. */
  sleep?: Sleep;
  /** How long a finished request id is remembered so a re-delivery is not run again (default 60 s). */
  dedupeWindowMs?: number;
  /** `mcp.connection_max_ttl`: no command holds its MCP exchange longer, whatever its `response_timeout`. */
  maxCommandMs?: number;
  /** Spans for each command (default off). */
  tracing?: Tracing;
  /** Answers `oauth_discovery` commands; without it they get 400 `unsupported_channel`. */
  oauthDiscovery?: OAuthDiscoveryRun;
}

export interface DispatcherStats {
  /** Accepted and not finished: queued + running. */
  pending: number;
  queued: number;
  running: number;
  maxInflight: number;
  maxConcurrent: number;
  /** Standalone streams open (they take no slot). */
  streams: number;
  maxStreams: number;
  draining: boolean;
  /** Finished request ids kept for the dedupe window (forgotten at the first delivery after it). */
  remembered: number;
}

export interface Dispatcher {
  /** How many more commands the queue takes (what the next poll may ask for). */
  freeSlots(): number;
  /** Resolves once `freeSlots() > 0`, or when `signal` aborts. */
  whenSlotFree(signal?: AbortSignal): Promise<void>;
  /**
   * Accept every command of one poll answer, even beyond the free slots (the poll limit
   * is only a hint; the control plane may not deliver a dropped command again).
   * `receivedAt` is the poll's receipt time on the `now` clock.
   */
  submit(commands: readonly DecodedCommand[], receivedAt: number): void;
  /**
   * Stop accepting commands; let accepted work finish for up to `graceMs`; then abort what
   * is left, which posts nothing. Resolves when nothing is pending or all of it is aborted.
   */
  drain(graceMs: number): Promise<void>;
  stats(): DispatcherStats;
}

const ABORT_WORDS: Record<AbortCause, string> = {
  deadline: "command deadline passed; abandoning it, nothing is posted",
  shutdown: "abandoning command at shutdown",
  cancelled: "abandoning a cancelled command, nothing is posted",
};

/**
 * Standalone streams per agent by default: each holds one connection to an HTTP backend
 * and one pending request at the hub, and MCP clients open one per session.
 */
export const DEFAULT_MAX_STREAMS = 32;

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  return new CommandDispatcher(options);
}

class CommandDispatcher implements Dispatcher {
  readonly #maxInflight: number;
  readonly #maxConcurrent: number;
  readonly #maxStreams: number;
  readonly #now: () => number;
  readonly #sleep: Sleep;
  readonly #dedupeWindowMs: number;
  readonly #maxCommandMs: number;
  readonly #log: Logger;
  readonly #events: AgentEvents;
  readonly #execute: ExecuteDeps;
  readonly #tracing: Tracing;
  /** Accepted commands not finished (queued + running), by request id. */
  readonly #active = new Map<string, Entry>();
  readonly #queue: Entry[] = [];
  /** Standalone streams, oldest first. */
  readonly #streams = new Map<string, Entry>();
  /** Finished request id → when it may be forgotten. */
  readonly #recent = new Map<string, number>();
  #running = 0;
  #draining = false;
  #slotWaiters: Array<() => void> = [];
  #idleWaiters: Array<() => void> = [];

  constructor(options: DispatcherOptions) {
    this.#maxInflight = Math.max(1, options.maxInflight ?? 20);
    this.#maxConcurrent = Math.max(1, options.maxConcurrent ?? 10);
    this.#maxStreams = Math.max(1, options.maxStreams ?? DEFAULT_MAX_STREAMS);
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? realSleep;
    this.#dedupeWindowMs = options.dedupeWindowMs ?? 60_000;
    this.#maxCommandMs = options.maxCommandMs ?? Infinity;
    this.#log = options.log;
    this.#events = options.events ?? {};
    this.#tracing = options.tracing ?? TRACING_OFF;
    this.#execute = {
      backends: options.backends,
      poster: options.poster,
      log: options.log,
      endStream: (entry, why) => this.#endStream(entry, why),
      tracing: this.#tracing,
      ...(options.oauthDiscovery ? { oauthDiscovery: options.oauthDiscovery } : {}),
    };
  }

  freeSlots(): number {
    return this.#draining ? 0 : Math.max(0, this.#maxInflight - this.#active.size);
  }

  whenSlotFree(signal?: AbortSignal): Promise<void> {
    if (this.freeSlots() > 0 || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = () => {
        signal?.removeEventListener("abort", wake);
        this.#slotWaiters = this.#slotWaiters.filter((w) => w !== wake);
        resolve();
      };
      this.#slotWaiters.push(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  submit(commands: readonly DecodedCommand[], receivedAt: number): void {
    const at = this.#now();
    for (const [id, until] of this.#recent) if (until <= at) this.#recent.delete(id);
    for (const decoded of commands) this.#accept(decoded, receivedAt);
    this.#queueChanged();
    this.#pump();
  }

  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    // Streams never end by themselves: end them now, so their clients see it and can go elsewhere.
    for (const entry of this.#streams.values()) this.#endStream(entry, "the agent is shutting down");
    if (this.#idle()) return;
    if (graceMs > 0) {
      const grace = new AbortController();
      const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      await Promise.race([idle, this.#sleep(graceMs, grace.signal)]);
      grace.abort();
    }
    if (this.#idle()) return;
    this.#log.warn(
      "shutdown grace period over: abandoning commands still in progress (nothing more is posted for them)",
      { pending: this.#active.size, streams: this.#streams.size },
    );
    for (const entry of [...this.#active.values(), ...this.#streams.values()]) this.#abort(entry, "shutdown");
  }

  stats(): DispatcherStats {
    return {
      pending: this.#active.size,
      queued: this.#queue.length,
      running: this.#running,
      maxInflight: this.#maxInflight,
      maxConcurrent: this.#maxConcurrent,
      streams: this.#streams.size,
      maxStreams: this.#maxStreams,
      draining: this.#draining,
      remembered: this.#recent.size,
    };
  }

  #queueChanged(): void {
    this.#events.queueChanged?.(this.#active.size, this.#running);
  }

  #idle(): boolean {
    return this.#active.size === 0 && this.#streams.size === 0;
  }

  #settle(): void {
    if (this.freeSlots() > 0) {
      const waiters = this.#slotWaiters;
      this.#slotWaiters = [];
      for (const wake of waiters) wake();
    }
    if (this.#idle()) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #report(fields: Report, receivedAt: number): void {
    this.#events.commandFinished?.({ ...fields, durationMs: Math.max(0, this.#now() - receivedAt) });
  }

  /** Remember a request id so a re-delivery within the dedupe window is not run. */
  #remember(requestId: string): void {
    this.#recent.set(requestId, this.#now() + this.#dedupeWindowMs);
  }

  /** Release a command's slot (once) and report how it ended. */
  #finish(entry: Entry, fields: Report): void {
    if (entry.state === "done") return;
    if (entry.state === "running") this.#running--;
    else if (this.#queue.includes(entry)) this.#queue.splice(this.#queue.indexOf(entry), 1);
    (entry.state === "streaming" ? this.#streams : this.#active).delete(entry.command.request_id);
    entry.state = "done";
    entry.timer.abort();
    this.#remember(entry.command.request_id);
    if (entry.trace) traceFinished(this.#tracing, entry.trace, entry.command.request_id, fields.outcome);
    this.#report(fields, entry.receivedAt);
    this.#queueChanged();
    this.#settle();
    this.#pump();
  }

  /**
   * Abort a command and free its slot at once: its result is discarded whenever the
   * backend returns, so a backend slow to honour the signal cannot hold the pool.
   */
  #abort(entry: Entry, cause: AbortCause): void {
    if (entry.posting.signal.aborted) return;
    entry.cause = cause;
    entry.controller.abort(cause);
    entry.posting.abort(cause);
    this.#log.debug(ABORT_WORDS[cause], {
      ...commandLogFields(entry.command),
      state: entry.state,
    });
    this.#finish(entry, baseReport(entry, abortedOutcome(entry)));
  }

  /** Ask a stream's backend side to end; that it ended is still posted. */
  #endStream(entry: Entry, why: string): void {
    if (entry.controller.signal.aborted) return;
    this.#log.info(`ending a standalone stream: ${why}`, commandLogFields(entry.command));
    entry.controller.abort(why);
  }

  #start(entry: Entry): void {
    if (entry.trace) traceStarted(this.#tracing, entry.trace, entry.command.request_id);
    void execute(this.#execute, entry)
      .catch((error: unknown) => {
        this.#log.error("dispatcher failed while handling a command", { ...commandLogFields(entry.command), error });
        return baseReport(entry, "failure");
      })
      .then((fields) => this.#finish(entry, fields));
  }

  #pump(): void {
    while (this.#running < this.#maxConcurrent && this.#queue.length > 0) {
      const entry = this.#queue.shift()!;
      entry.state = "running";
      this.#running++;
      this.#queueChanged();
      this.#start(entry);
    }
  }

  #openStream(entry: Entry): void {
    const open = [...this.#streams.values()].filter((stream) => !stream.controller.signal.aborted);
    if (open.length >= this.#maxStreams)
      this.#endStream(
        open[0]!,
        `this agent keeps at most ${this.#maxStreams} standalone streams open and a new one arrived`,
      );
    this.#streams.set(entry.command.request_id, entry);
    this.#start(entry);
  }

  #accept(decoded: DecodedCommand, receivedAt: number): void {
    if (decoded.kind === "cancel") {
      const entry = this.#active.get(decoded.cancelRequestId) ?? this.#streams.get(decoded.cancelRequestId);
      this.#log.info("the hub cancelled a command: its client went away", {
        request_id: decoded.cancelRequestId,
        reason: decoded.reason,
        found: entry !== undefined,
      });
      if (entry) this.#abort(entry, "cancelled");
      // Remember the id even when the command has not arrived yet, so a late delivery never runs.
      else this.#remember(decoded.cancelRequestId);
      return;
    }
    if (decoded.kind === "unknown" || decoded.kind === "invalid") {
      if (decoded.kind === "unknown")
        this.#log.warn("ignoring a command of unknown type", {
          request_id: decoded.requestId,
          command_type: decoded.commandType,
        });
      else this.#log.warn("ignoring a malformed command", { request_id: decoded.requestId, reason: decoded.reason });
      this.#report(
        {
          requestId: decoded.requestId ?? "",
          channel: "",
          outcome: "ignored",
          ...(decoded.kind === "unknown" ? { commandType: decoded.commandType } : {}),
        },
        receivedAt,
      );
      return;
    }
    const command = decoded.command;
    const requestId = command.request_id;
    if (this.#active.has(requestId) || this.#streams.has(requestId) || this.#recent.has(requestId)) {
      this.#log.info("ignoring a repeated delivery of a command already taken", commandLogFields(command));
      return;
    }
    const controller = new AbortController();
    // A modern subscriptions/listen lives as long as a GET stream does: it runs beside the pool too.
    const isStream =
      decoded.kind === "stream" || (command.command_type === "jsonrpc" && isLongLivedRequest(command.jsonrpc));
    const entry: Entry = {
      command,
      channel: normalizeChannel(command.channel),
      receivedAt,
      controller,
      posting: isStream ? new AbortController() : controller,
      timer: new AbortController(),
      state: isStream ? "streaming" : "queued",
    };
    if (this.#draining) {
      this.#log.warn("shutting down: not taking a command", commandLogFields(command));
      this.#remember(requestId);
      this.#report(baseReport(entry, "undelivered"), receivedAt);
      return;
    }
    if (this.#tracing.enabled)
      entry.trace = traceReceived(this.#tracing, command, entry.channel, this.#now() - receivedAt);
    // A stream has no deadline, whatever the command says.
    if (isStream) this.#openStream(entry);
    else this.#enqueue(entry);
  }

  /** Queue a command under its deadline; one already past it is dropped. */
  #enqueue(entry: Entry): void {
    const { command, receivedAt } = entry;
    const requestId = command.request_id;
    const timeout = Math.min(parseResponseTimeout(command.response_timeout) ?? Infinity, this.#maxCommandMs);
    if (timeout !== Infinity) entry.deadline = receivedAt + timeout;
    if (entry.deadline !== undefined && entry.deadline <= this.#now()) {
      this.#log.debug("command expired before it could start; dropped", {
        ...commandLogFields(command),
        response_timeout: command.response_timeout,
      });
      this.#remember(requestId);
      if (entry.trace) traceFinished(this.#tracing, entry.trace, requestId, "expired");
      this.#report(baseReport(entry, "expired"), receivedAt);
      return;
    }
    this.#active.set(requestId, entry);
    this.#queue.push(entry);
    if (entry.deadline !== undefined) {
      const remaining = entry.deadline - this.#now();
      void this.#sleep(remaining, entry.timer.signal).then(() => {
        if (!entry.timer.signal.aborted) this.#abort(entry, "deadline");
      });
    }
  }
}
