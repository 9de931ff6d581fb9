/**
 * Runs polled commands against backends: a bounded queue of accepted commands
 * (queued + running ≤ `maxInflight`, which is what the poller asks the control plane
 * for) feeding a pool of `maxConcurrent` workers. Each command runs at most once, under
 * its deadline; its answers go out through the poster.
 *
 * Deadlines (PROTOCOL.md "Commands"): receipt time + `response_timeout`. Expired on
 * arrival or while queued → dropped silently. Expiring during work → the exchange's
 * signal aborts and nothing is posted, ever: a late answer would reach a caller that has
 * already been told the call timed out.
 */
import {
  failureMessage, failureStatus, normalizeChannel, parseResponseTimeout,
} from "../shared/protocol/index.ts";
import type { DecodedCommand, FailureSpec, JsonRpcCommand, KnownCommand, SessionTerminationCommand } from "../shared/protocol/index.ts";
import { isObject } from "../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../shared/jsonrpc.ts";
import type { Logger } from "../shared/log.ts";
import type { Backend, ExchangeResult, TerminationResult } from "./backends/types.ts";
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
  /** Monotonic ms; must be the clock the control-plane client stamps receipt times with (default `performance.now`). */
  now?: () => number;
  /** Deadline timers and the drain grace period. */
  sleep?: Sleep;
  /** How long a finished request id is remembered so a re-delivery is not run again (default 60 s). */
  dedupeWindowMs?: number;
}

export interface DispatcherStats {
  /** Accepted and not finished: queued + running. */
  pending: number;
  queued: number;
  running: number;
  maxInflight: number;
  maxConcurrent: number;
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
  command: KnownCommand;
  /** Normalised channel; undefined when the name is invalid. */
  channel: string | undefined;
  receivedAt: number;
  deadline?: number;
  controller: AbortController;
  /** Cancels the deadline timer once the command is done. */
  timer: AbortController;
  state: "queued" | "running" | "done";
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

/** At most this much of an invalid channel name is quoted back. */
const MAX_QUOTED_CHANNEL = 80;

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const maxInflight = Math.max(1, options.maxInflight ?? 20);
  const maxConcurrent = Math.max(1, options.maxConcurrent ?? 10);
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? realSleep;
  const dedupeWindowMs = options.dedupeWindowMs ?? 60_000;
  const log = options.log;
  const events = options.events ?? {};

  const active = new Map<string, Entry>();
  const queue: Entry[] = [];
  /** Finished request id → when it may be forgotten. */
  const recent = new Map<string, number>();
  let running = 0;
  let draining = false;
  let slotWaiters: Array<() => void> = [];
  let idleWaiters: Array<() => void> = [];

  const queueChanged = () => events.queueChanged?.(active.size, running);

  const freeSlots = () => (draining ? 0 : Math.max(0, maxInflight - active.size));

  function settle() {
    if (freeSlots() > 0) {
      const waiters = slotWaiters;
      slotWaiters = [];
      for (const wake of waiters) wake();
    }
    if (active.size === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  function report(fields: Omit<CommandReport, "durationMs">, receivedAt: number) {
    events.commandFinished?.({ ...fields, durationMs: Math.max(0, now() - receivedAt) });
  }

  function baseReport(entry: Entry, outcome: CommandOutcome): Omit<CommandReport, "durationMs"> {
    const call = entry.command.command_type === "jsonrpc" ? describeCall(entry.command.jsonrpc) : {};
    return { requestId: entry.command.request_id, channel: entry.channel ?? String(entry.command.channel), ...call, outcome };
  }

  /** Release a command's slot (once) and report how it ended. */
  function finish(entry: Entry, fields: Omit<CommandReport, "durationMs">) {
    if (entry.state === "done") return;
    if (entry.state === "running") running--;
    else if (queue.includes(entry)) queue.splice(queue.indexOf(entry), 1);
    entry.state = "done";
    entry.timer.abort();
    active.delete(entry.command.request_id);
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
    if (entry.controller.signal.aborted) return;
    entry.cause = cause;
    entry.controller.abort(cause);
    log.debug(ABORT_WORDS[cause], {
      request_id: entry.command.request_id, state: entry.state,
    });
    finish(entry, baseReport(entry, abortedOutcome(entry)));
  }

  function pump() {
    while (running < maxConcurrent && queue.length > 0) {
      const entry = queue.shift()!;
      entry.state = "running";
      running++;
      queueChanged();
      void execute(entry)
        .catch((error: unknown) => {
          log.error("dispatcher failed while handling a command", { request_id: entry.command.request_id, error });
          return baseReport(entry, "failure");
        })
        .then((fields) => finish(entry, fields));
    }
  }

  /** Outcome of a command whose signal aborted: nothing was posted. */
  function abortedOutcome(entry: Entry): CommandOutcome {
    return entry.cause === "shutdown" ? "undelivered" : entry.cause === "cancelled" ? "cancelled" : "expired";
  }

  async function deliverFinal(entry: Entry, stream: ResponseStream, answer: FinalAnswer, success: CommandOutcome, backend?: Backend) {
    const outcome: PostOutcome = entry.controller.signal.aborted ? "aborted" : await stream.final(answer);
    const fields = baseReport(entry, outcome === "ok" ? success : outcome === "aborted" ? abortedOutcome(entry) : "undelivered");
    if (backend) fields.backend = backend.name;
    if (outcome !== "aborted") fields.respCode = answer.status;
    return fields;
  }

  /** The 400 answer for a channel this agent cannot route. */
  function unroutable(entry: Entry, id: unknown): FinalAnswer {
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
    const { command, controller } = entry;
    if (controller.signal.aborted) return baseReport(entry, abortedOutcome(entry));
    const stream = options.poster.open({
      requestId: command.request_id,
      // An invalid name is not echoed: the control plane would reject the post with invalid_channel_format.
      ...(entry.channel === undefined ? {} : { channel: entry.channel }),
      shardToken: command.shard_token,
      ...(entry.deadline === undefined ? {} : { deadline: entry.deadline }),
      signal: controller.signal,
    });
    return command.command_type === "session_termination"
      ? terminate(entry, command, stream)
      : exchange(entry, command, stream);
  }

  /**
   * Run `work` on the channel's backend and post its answer. A backend that throws gets a
   * `client_internal` failure; once the command's signal has aborted nothing is posted.
   */
  async function viaBackend<R extends ExchangeResult | TerminationResult>(
    entry: Entry, stream: ResponseStream, id: unknown,
    work: (backend: Backend, signal: AbortSignal) => Promise<R>, toAnswer: (result: R | InternalFailure) => FinalAnswer,
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
    if (signal.aborted) return { ...baseReport(entry, abortedOutcome(entry)), backend: backend.name };
    return deliverFinal(entry, stream, toAnswer(result), result.kind === "failure" ? "failure" : "ok", backend);
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

  function accept(decoded: DecodedCommand, receivedAt: number) {
    if (decoded.kind === "cancel") {
      const entry = active.get(decoded.cancelRequestId);
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
      report({ requestId: decoded.requestId ?? "", channel: "", outcome: "ignored" }, receivedAt);
      return;
    }
    if (decoded.kind === "invalid") {
      log.warn("ignoring a malformed command", { request_id: decoded.requestId, reason: decoded.reason });
      report({ requestId: decoded.requestId ?? "", channel: "", outcome: "ignored" }, receivedAt);
      return;
    }
    const command = decoded.command;
    const requestId = command.request_id;
    if (active.has(requestId) || recent.has(requestId)) {
      log.info("ignoring a repeated delivery of a command already taken", { request_id: requestId });
      return;
    }
    const channel = normalizeChannel(command.channel);
    const timeout = parseResponseTimeout(command.response_timeout);
    const entry: Entry = {
      command, channel, receivedAt, controller: new AbortController(), timer: new AbortController(), state: "queued",
    };
    if (timeout !== undefined) entry.deadline = receivedAt + timeout;
    if (draining) {
      log.warn("shutting down: not taking a command", { request_id: requestId });
      recent.set(requestId, now() + dedupeWindowMs);
      report(baseReport(entry, "undelivered"), receivedAt);
      return;
    }
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
      if (active.size === 0) return;
      if (graceMs > 0) {
        const grace = new AbortController();
        const idle = new Promise<void>((resolve) => idleWaiters.push(resolve));
        await Promise.race([idle, sleep(graceMs, grace.signal)]);
        grace.abort();
      }
      if (active.size === 0) return;
      log.warn("shutdown grace period over: abandoning commands still in progress (nothing more is posted for them)", { pending: active.size });
      for (const entry of [...active.values()]) abort(entry, "shutdown");
    },

    stats: () => ({ pending: active.size, queued: queue.length, running, maxInflight, maxConcurrent, draining }),
  };
}

/** A backend that threw: reported like a failure it returned. */
type InternalFailure = { kind: "failure"; failure: FailureSpec };

/** The final answer for an exchange result; failures become `-32603` with the request's id. */
function exchangeAnswer(result: ExchangeResult | InternalFailure, id: unknown): FinalAnswer {
  switch (result.kind) {
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

/** Session termination always answers `session_termination_response`, without a body, failures included. */
function terminationAnswer(result: TerminationResult | InternalFailure): FinalAnswer {
  return result.kind === "terminated"
    ? { type: "session_termination_response", status: result.status, headers: result.headers }
    : { type: "session_termination_response", status: failureStatus(result.failure) };
}
