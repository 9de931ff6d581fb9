/**
 * Runs polled commands against backends: a bounded queue of accepted commands
 * (queued + running ≤ `maxInflight`, which is what the poller asks the control plane
 * for) feeding a pool of `maxConcurrent` workers. Each command runs at most once, under
 * its deadline; its answers go out through the poster.
 *
 * Deadlines (PROTOCOL.md "Commands"): receipt time + `response_timeout`. Expired on
 * arrival or while queued → dropped silently. Expiring during work → the exchange's
 * signal aborts and nothing is posted, ever: a late answer would reach a caller that has
 * already been told the call timed out. Likewise nothing is posted for a request the
 * client cancelled (`notifications/cancelled`, the backend says `cancelled`).
 *
 * Standalone streams (`airlock_stream_open`, the hub's `get-stream` extension) live as
 * long as the client and the backend keep them open, so they run beside the pool: no
 * deadline, no worker slot, not counted in `maxInflight` (a long-lived stream must never
 * starve calls). They are bounded on their own by `maxStreams`; one more stream than that
 * ends the oldest (its client sees its stream end and may reconnect), so streams the hub
 * forgot without a cancel (a hub restart) cannot lock new clients out. Posts: a
 * `jsonrpc_notify` without `resp_json` once the backend's stream is open, one
 * `jsonrpc_notify` per server message, then `notify_ack` when it ends; a stream that never
 * opened gets the backend's status instead (405 when the backend has none). `airlock_cancel`
 * closes a stream and posts nothing more; shutdown ends every stream with `notify_ack`.
 */
import {
  failureMessage, failureStatus, headerValue, normalizeChannel, parseResponseTimeout,
} from "../shared/protocol/index.ts";
import { AIRLOCK_STREAM_OPEN } from "../shared/protocol/index.ts";
import type {
  DecodedCommand, FailureSpec, HeaderMap, JsonRpcCommand, KnownCommand, SessionTerminationCommand, StreamOpenCommand,
} from "../shared/protocol/index.ts";
import { isObject } from "../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../shared/jsonrpc.ts";
import type { Logger } from "../shared/log.ts";
import type { Backend, ExchangeResult, StreamResult, TerminationResult } from "./backends/types.ts";
import type { AgentEvents, CommandOutcome, CommandReport } from "./events.ts";
import { sleep as realSleep } from "./control-plane/backoff.ts";
import type { Sleep } from "./control-plane/backoff.ts";
import type { FinalAnswer, Poster, PostOutcome, ResponseStream } from "./control-plane/poster.ts";

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

/** Why a command's signal aborted. */
type AbortCause = "deadline" | "shutdown" | "cancelled";

interface Entry {
  command: KnownCommand | StreamOpenCommand;
  /** Normalised channel; undefined when the name is invalid. */
  channel: string | undefined;
  receivedAt: number;
  deadline?: number;
  /** Stops the backend's work. */
  controller: AbortController;
  /**
   * Stops posting. The same controller for a command (once its work is abandoned nothing
   * is posted); a stream's own, so a stream told to end still posts that it ended.
   */
  posting: AbortController;
  /** Cancels the deadline timer once the command is done. */
  timer: AbortController;
  /** `streaming`: a standalone stream, outside the queue and the worker pool. */
  state: "queued" | "running" | "streaming" | "done";
  cause?: AbortCause;
}

/** The JSON-RPC method and the tool/prompt name or resource URI a message targets, for reports. */
export function describeCall(message: unknown): { method?: string; target?: string } {
  if (!isObject(message) || typeof message.method !== "string") return {};
  const params = isObject(message.params) ? message.params : {};
  const target = message.method === "tools/call" || message.method === "prompts/get"
    ? params.name
    : message.method.startsWith("resources/") ? params.uri : undefined;
  return typeof target === "string" ? { method: message.method, target } : { method: message.method };
}

/** The command's `X-Request-Id`, which the response post echoes as `X-Client-Request-Id`. */
function clientRequestId(headers: HeaderMap | null | undefined): { clientRequestId?: string } {
  const value = headerValue(headers, "X-Request-Id");
  return value ? { clientRequestId: value } : {};
}

/** At most this much of an invalid channel name is quoted back. */
const MAX_QUOTED_CHANNEL = 80;

/**
 * Standalone streams per agent by default: each holds one connection to an HTTP backend
 * and one pending request at the hub, and MCP clients open one per session.
 */
export const DEFAULT_MAX_STREAMS = 32;

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const maxInflight = Math.max(1, options.maxInflight ?? 20);
  const maxConcurrent = Math.max(1, options.maxConcurrent ?? 10);
  const maxStreams = Math.max(1, options.maxStreams ?? DEFAULT_MAX_STREAMS);
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? realSleep;
  const dedupeWindowMs = options.dedupeWindowMs ?? 60_000;
  const log = options.log;
  const events = options.events ?? {};

  const active = new Map<string, Entry>();
  const queue: Entry[] = [];
  /** Standalone streams, oldest first. */
  const streams = new Map<string, Entry>();
  /** Finished request id → when it may be forgotten. */
  const recent = new Map<string, number>();
  let running = 0;
  let draining = false;
  let slotWaiters: Array<() => void> = [];
  let idleWaiters: Array<() => void> = [];

  const queueChanged = () => events.queueChanged?.(active.size, running);

  const freeSlots = () => (draining ? 0 : Math.max(0, maxInflight - active.size));
  const idle = () => active.size === 0 && streams.size === 0;

  function settle() {
    if (freeSlots() > 0) {
      const waiters = slotWaiters;
      slotWaiters = [];
      for (const wake of waiters) wake();
    }
    if (idle()) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  function report(fields: Omit<CommandReport, "durationMs">, receivedAt: number) {
    events.commandFinished?.({ ...fields, durationMs: Math.max(0, now() - receivedAt) });
  }

  function baseReport(entry: Entry, outcome: CommandOutcome): Omit<CommandReport, "durationMs"> {
    const { command } = entry;
    const call = command.command_type === "jsonrpc" ? describeCall(command.jsonrpc)
      : command.command_type === AIRLOCK_STREAM_OPEN ? { method: AIRLOCK_STREAM_OPEN } : {};
    const notification = command.command_type === "jsonrpc" && !("id" in command.jsonrpc);
    return {
      requestId: entry.command.request_id, channel: entry.channel ?? String(entry.command.channel), ...call, outcome,
      commandType: command.command_type, createdAt: command.created_at, ...(notification ? { notification } : {}),
    };
  }

  /** Release a command's slot (once) and report how it ended. */
  function finish(entry: Entry, fields: Omit<CommandReport, "durationMs">) {
    if (entry.state === "done") return;
    if (entry.state === "running") running--;
    else if (queue.includes(entry)) queue.splice(queue.indexOf(entry), 1);
    (entry.state === "streaming" ? streams : active).delete(entry.command.request_id);
    entry.state = "done";
    entry.timer.abort();
    recent.set(entry.command.request_id, now() + dedupeWindowMs);
    report(fields, entry.receivedAt);
    queueChanged();
    settle();
    pump();
  }

  /**
   * Abort a command and free its slot at once: its result is discarded whenever the
   * backend returns, so a backend slow to honour the signal cannot hold the pool.
   */
  function abort(entry: Entry, cause: AbortCause) {
    if (entry.posting.signal.aborted) return;
    entry.cause = cause;
    entry.controller.abort(cause);
    entry.posting.abort(cause);
    log.debug(ABORT_WORDS[cause], {
      request_id: entry.command.request_id, state: entry.state,
    });
    finish(entry, baseReport(entry, abortedOutcome(entry)));
  }

  /** Ask a stream's backend side to end; that it ended is still posted. */
  function endStream(entry: Entry, why: string) {
    if (entry.controller.signal.aborted) return;
    log.info(`ending a standalone stream: ${why}`, { request_id: entry.command.request_id });
    entry.controller.abort(why);
  }

  function start(entry: Entry) {
    void execute(entry)
      .catch((error: unknown) => {
        log.error("dispatcher failed while handling a command", { request_id: entry.command.request_id, error });
        return baseReport(entry, "failure");
      })
      .then((fields) => finish(entry, fields));
  }

  function pump() {
    while (running < maxConcurrent && queue.length > 0) {
      const entry = queue.shift()!;
      entry.state = "running";
      running++;
      queueChanged();
      start(entry);
    }
  }

  function openStream(entry: Entry) {
    const open = [...streams.values()].filter((stream) => !stream.controller.signal.aborted);
    if (open.length >= maxStreams) endStream(open[0]!, `this agent keeps at most ${maxStreams} standalone streams open and a new one arrived`);
    streams.set(entry.command.request_id, entry);
    start(entry);
  }

  /** Outcome of a command whose signal aborted: nothing was posted. */
  function abortedOutcome(entry: Entry): CommandOutcome {
    return entry.cause === "shutdown" ? "undelivered" : entry.cause === "cancelled" ? "cancelled" : "expired";
  }

  async function deliverFinal(entry: Entry, stream: ResponseStream, answer: FinalAnswer, success: CommandOutcome, backend?: Backend) {
    const outcome: PostOutcome = entry.posting.signal.aborted ? "aborted" : await stream.final(answer);
    const fields = baseReport(entry, outcome === "ok" ? success : outcome === "aborted" ? abortedOutcome(entry) : "undelivered");
    if (backend) fields.backend = backend.name;
    if (outcome !== "aborted") fields.respCode = answer.status;
    return fields;
  }

  /**
   * The 400 answer for a channel this agent cannot route; a session termination gets its own
   * response type with no body, as tunnel-client answers it (the service expects that type).
   */
  function unroutable(entry: Entry, id: unknown): FinalAnswer {
    if (entry.command.command_type === "session_termination") return { type: "session_termination_response", status: 400 };
    const raw = String(entry.command.channel ?? "").slice(0, MAX_QUOTED_CHANNEL);
    const message = entry.channel === undefined
      ? `invalid channel ${JSON.stringify(raw)}: channel names use lowercase letters, digits, '-' and '_'`
      : `unknown channel ${JSON.stringify(entry.channel)}: no MCP server is configured for it on this agent`;
    return {
      type: "jsonrpc_response",
      status: 400,
      message: { jsonrpc: "2.0", id: id ?? null, error: { code: -32603, message } },
    };
  }

  async function execute(entry: Entry): Promise<Omit<CommandReport, "durationMs">> {
    const { command, posting } = entry;
    if (posting.signal.aborted) return baseReport(entry, abortedOutcome(entry));
    const stream = options.poster.open({
      requestId: command.request_id,
      // An invalid name is not echoed: the control plane would reject the post with invalid_channel_format.
      ...(entry.channel === undefined ? {} : { channel: entry.channel }),
      shardToken: command.shard_token,
      ...clientRequestId(command.headers),
      ...(entry.deadline === undefined ? {} : { deadline: entry.deadline }),
      signal: posting.signal,
    });
    switch (command.command_type) {
      case "session_termination":
        return terminate(entry, command, stream);
      case AIRLOCK_STREAM_OPEN:
        return relayStream(entry, command, stream);
      default:
        return exchange(entry, command, stream);
    }
  }

  /**
   * Run `work` on the channel's backend and post its answer. A backend that throws gets a
   * `client_internal` failure; once posting has stopped, or when `toAnswer` has nothing to
   * post (the client cancelled the request), nothing is posted.
   */
  async function viaBackend<R extends ExchangeResult | TerminationResult | StreamResult>(
    entry: Entry, stream: ResponseStream, id: unknown,
    work: (backend: Backend, signal: AbortSignal) => Promise<R>, toAnswer: (result: R | InternalFailure) => FinalAnswer | undefined,
  ) {
    const backend = entry.channel === undefined ? undefined : options.backends(entry.channel);
    if (!backend) return deliverFinal(entry, stream, unroutable(entry, id), "unroutable");
    const signal = entry.controller.signal;
    let result: R | InternalFailure;
    try {
      result = await work(backend, signal);
    } catch (error) {
      if (!signal.aborted) log.error("backend threw instead of returning a failure", { request_id: entry.command.request_id, backend: backend.name, error });
      result = { kind: "failure", failure: { source: "client_internal" } };
    }
    if (entry.posting.signal.aborted) return { ...baseReport(entry, abortedOutcome(entry)), backend: backend.name };
    const answer = toAnswer(result);
    if (!answer) {
      log.debug("the client cancelled the request; nothing is posted for it", { request_id: entry.command.request_id });
      return { ...baseReport(entry, "cancelled"), backend: backend.name };
    }
    return deliverFinal(entry, stream, answer, result.kind === "failure" ? "failure" : "ok", backend);
  }

  function exchange(entry: Entry, command: JsonRpcCommand, stream: ResponseStream) {
    const message: JsonRpcMessage = command.jsonrpc;
    // A notification has no id; its error answer uses null, as JSON-RPC does when the id is unknown.
    const id = "id" in message ? message.id : null;
    const work = (backend: Backend, signal: AbortSignal) => backend.exchange({
      message,
      headers: command.headers ?? {},
      signal,
      notify: (note, headers) => {
        if (!signal.aborted) stream.notify(note, headers);
      },
    });
    return viaBackend(entry, stream, id, work, (result) => exchangeAnswer(result, id));
  }

  function terminate(entry: Entry, command: SessionTerminationCommand, stream: ResponseStream) {
    const work = (backend: Backend, signal: AbortSignal) => backend.terminateSession(command.headers ?? {}, signal);
    return viaBackend(entry, stream, null, work, terminationAnswer);
  }

  /**
   * Open the backend's standalone stream: the open signal (a notify without a message),
   * then its messages, then how it ended.
   */
  function relayStream(entry: Entry, command: StreamOpenCommand, stream: ResponseStream) {
    let opened = false;
    const work = async (backend: Backend, signal: AbortSignal): Promise<StreamResult> => {
      if (!backend.openStream) return { kind: "refused", status: 405, headers: {} };
      const result = await backend.openStream({
        headers: command.headers ?? {},
        signal,
        opened: (headers) => {
          if (opened || signal.aborted) return;
          opened = true;
          stream.notify(undefined, headers);
        },
        notify: (message) => {
          if (!opened || signal.aborted) return;
          // A message the control plane would not take (404: it forgot the stream) ends it.
          if (stream.notifiesSkipped) endStream(entry, "the control plane no longer takes its messages");
          else stream.notify(message);
        },
      });
      if (result.kind === "ended" && result.detail) log.info("a backend's standalone stream broke", { request_id: command.request_id, backend: backend.name, detail: result.detail });
      return result;
    };
    return viaBackend(entry, stream, null, work, (result) => (opened ? STREAM_ENDED : streamAnswer(result)));
  }

  function accept(decoded: DecodedCommand, receivedAt: number) {
    if (decoded.kind === "cancel") {
      const entry = active.get(decoded.cancelRequestId) ?? streams.get(decoded.cancelRequestId);
      log.info("the hub cancelled a command: its client went away", {
        request_id: decoded.cancelRequestId, reason: decoded.reason, found: entry !== undefined,
      });
      if (entry) abort(entry, "cancelled");
      // Remember the id even when the command has not arrived yet, so a late delivery never runs.
      else recent.set(decoded.cancelRequestId, now() + dedupeWindowMs);
      return;
    }
    if (decoded.kind === "unknown") {
      log.warn("ignoring a command of unknown type", { request_id: decoded.requestId, command_type: decoded.commandType });
      report({ requestId: decoded.requestId ?? "", channel: "", outcome: "ignored", commandType: decoded.commandType }, receivedAt);
      return;
    }
    if (decoded.kind === "invalid") {
      log.warn("ignoring a malformed command", { request_id: decoded.requestId, reason: decoded.reason });
      report({ requestId: decoded.requestId ?? "", channel: "", outcome: "ignored" }, receivedAt);
      return;
    }
    const command = decoded.command;
    const requestId = command.request_id;
    if (active.has(requestId) || streams.has(requestId) || recent.has(requestId)) {
      log.info("ignoring a repeated delivery of a command already taken", { request_id: requestId });
      return;
    }
    const channel = normalizeChannel(command.channel);
    const controller = new AbortController();
    const isStream = decoded.kind === "stream";
    const entry: Entry = {
      command, channel, receivedAt, controller, posting: isStream ? new AbortController() : controller,
      timer: new AbortController(), state: isStream ? "streaming" : "queued",
    };
    if (draining) {
      log.warn("shutting down: not taking a command", { request_id: requestId });
      recent.set(requestId, now() + dedupeWindowMs);
      report(baseReport(entry, "undelivered"), receivedAt);
      return;
    }
    // A stream has no deadline, whatever the command says.
    if (isStream) {
      openStream(entry);
      return;
    }
    const timeout = Math.min(parseResponseTimeout(command.response_timeout) ?? Infinity, options.maxCommandMs ?? Infinity);
    if (timeout !== Infinity) entry.deadline = receivedAt + timeout;
    if (entry.deadline !== undefined && entry.deadline <= now()) {
      log.debug("command expired before it could start; dropped", { request_id: requestId, response_timeout: command.response_timeout });
      recent.set(requestId, now() + dedupeWindowMs);
      report(baseReport(entry, "expired"), receivedAt);
      return;
    }
    active.set(requestId, entry);
    queue.push(entry);
    if (entry.deadline !== undefined) {
      const remaining = entry.deadline - now();
      void sleep(remaining, entry.timer.signal).then(() => {
        if (!entry.timer.signal.aborted) abort(entry, "deadline");
      });
    }
  }

  return {
    freeSlots,

    whenSlotFree(signal) {
      if (freeSlots() > 0 || signal?.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener("abort", wake);
          slotWaiters = slotWaiters.filter((w) => w !== wake);
          resolve();
        };
        slotWaiters.push(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    },

    submit(commands, receivedAt) {
      const at = now();
      for (const [id, until] of recent) if (until <= at) recent.delete(id);
      for (const decoded of commands) accept(decoded, receivedAt);
      queueChanged();
      pump();
    },

    async drain(graceMs) {
      draining = true;
      // Streams never end by themselves: end them now, so their clients see it and can go elsewhere.
      for (const entry of streams.values()) endStream(entry, "the agent is shutting down");
      if (idle()) return;
      if (graceMs > 0) {
        const grace = new AbortController();
        const idle = new Promise<void>((resolve) => idleWaiters.push(resolve));
        await Promise.race([idle, sleep(graceMs, grace.signal)]);
        grace.abort();
      }
      if (idle()) return;
      log.warn("shutdown grace period over: abandoning commands still in progress (nothing more is posted for them)", { pending: active.size, streams: streams.size });
      for (const entry of [...active.values(), ...streams.values()]) abort(entry, "shutdown");
    },

    stats: () => ({ pending: active.size, queued: queue.length, running, maxInflight, maxConcurrent, streams: streams.size, maxStreams, draining }),
  };
}

/** A backend that threw: reported like a failure it returned. */
type InternalFailure = { kind: "failure"; failure: FailureSpec };

/** The final answer for an exchange result; failures become `-32603` with the request's id; a cancelled request gets none. */
function exchangeAnswer(result: ExchangeResult | InternalFailure, id: unknown): FinalAnswer | undefined {
  switch (result.kind) {
    case "cancelled":
      return undefined;
    case "response":
      return { type: "jsonrpc_response", status: result.status, headers: result.headers, message: result.message };
    case "ack":
      return { type: "notify_ack", status: result.status, headers: result.headers };
    case "failure": {
      const answer: FinalAnswer = { type: "jsonrpc_response", status: failureStatus(result.failure), message: failureMessage(id, result.failure) };
      if ("headers" in result && result.headers) answer.headers = result.headers;
      return answer;
    }
  }
}

/** A stream that was open ended: the client's SSE response ends too. */
const STREAM_ENDED: FinalAnswer = { type: "notify_ack", status: 200 };

/** The final answer for a stream that never opened: the backend's status, or a synthesised failure. */
function streamAnswer(result: StreamResult | InternalFailure): FinalAnswer {
  switch (result.kind) {
    case "ended":
      return STREAM_ENDED;
    case "refused":
      return result.message
        ? { type: "jsonrpc_response", status: result.status, headers: result.headers, message: result.message }
        : { type: "notify_ack", status: result.status, headers: result.headers };
    case "failure":
      return { type: "jsonrpc_response", status: failureStatus(result.failure), message: failureMessage(null, result.failure) };
  }
}

/** Session termination always answers `session_termination_response`, without a body, failures included. */
function terminationAnswer(result: TerminationResult | InternalFailure): FinalAnswer {
  return result.kind === "terminated"
    ? { type: "session_termination_response", status: result.status, headers: result.headers }
    : { type: "session_termination_response", status: failureStatus(result.failure) };
}
