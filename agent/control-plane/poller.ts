/**
 * The long-poll loop. It asks for as many commands as the dispatcher has room for
 * (never more than 25, never when the queue is full), hands every command it gets to the
 * dispatcher, polls again at once after an answer, and after any failure (network errors,
 * 401/403, other 4xx, 429, 5xx) backs off with jitter up to 10 s, honouring `Retry-After`
 * as a floor — tunnel-client's rule, so a key or role fix, or a tunnel polled right after
 * it was created, recovers within seconds. 401/403 and other 4xx are logged at error level
 * with the fix (the missing permission) on every attempt: they need an operator.
 *
 * The first poll, and the first after a failure, asks for no hold (`timeout_ms=1`): a held
 * poll gives no sign of being accepted until it returns, and readiness should not wait a
 * whole hold (30 s) to learn that the control plane takes our key.
 *
 * While every slot is busy it asks for no work, but toward an Airlock hub that offers the
 * `lease` extension it keeps holding a lease-only poll: the hub counts an agent that is
 * silent for its liveness window as gone and fails the calls it holds, so a busy agent
 * must stay in touch. (A valid poll, `limit=1`, plus `X-Airlock-Lease: renew`; should
 * a command come anyway it is accepted, as the contract requires.)
 */
import { DEFAULT_POLL_GUARDRAIL_MS, DEFAULT_POLL_TIMEOUT_MS, POLL_LIMIT_MAX } from "../../shared/protocol/index.ts";
import type { Logger } from "../../shared/log.ts";
import type { AgentEvents, PollErrorKind } from "../events.ts";
import type { Dispatcher } from "../dispatcher.ts";
import { createBackoff, parseRetryAfter, sleep as realSleep } from "./backoff.ts";
import type { BackoffOptions, Sleep } from "./backoff.ts";
import { describeControlPlaneFailure } from "./client.ts";
import { linkSignals } from "../runtime/signals.ts";
import type { ControlPlaneClient, ControlPlaneFailure } from "./client.ts";

export type PollerState = "starting" | "polling" | "backing_off" | "unauthorized" | "stopped";

/** What readiness, metrics and the admin UI show about the control-plane connection. */
export interface PollerStatus {
  state: PollerState;
  /** Epoch ms of the last poll the control plane answered with 200/204. */
  lastSuccessAt?: number;
  /** The last failure, in words an operator can act on (for `unauthorized`: what is missing). */
  lastError?: string;
  consecutiveFailures: number;
}

export interface PollerOptions {
  client: Pick<ControlPlaneClient, "poll">;
  dispatcher: Pick<Dispatcher, "freeSlots" | "whenSlotFree" | "submit">;
  log: Logger;
  events?: AgentEvents;
  /** Requested server hold, ms (default 30 000). */
  timeoutMs?: number;
  /** Extra client-side wait beyond `timeoutMs` before a poll counts as lost (default 5 000). */
  guardrailMs?: number;
  /** Only poll for these channels (`channel=` query). Default: all. */
  channels?: readonly string[];
  sleep?: Sleep;
  /** Wall clock, epoch ms (default `Date.now`): `lastSuccessAt`, poll durations, `Retry-After` dates. */
  now?: () => number;
  backoff?: BackoffOptions;
}

export interface Poller {
  /** Start the loop (no-op when running). */
  start(): void;
  /** Stop: aborts a held poll or a pause, resolves when the loop has exited. */
  stop(): Promise<void>;
  status(): PollerStatus;
}

/** Statuses no retry can fix: the operator has to change a key, an id or a permission. */
function needsOperator(failure: ControlPlaneFailure): boolean {
  return failure.kind === "http_error" && failure.status >= 400 && failure.status < 500 && failure.status !== 408 && failure.status !== 429;
}

/** tunnel-client's `error_kind`: a poll that got no answer in time is a timeout, the rest `other`. */
function errorKind(failure: ControlPlaneFailure): PollErrorKind {
  return failure.kind === "network_error" && failure.timedOut ? "timeout" : "other";
}

export function createPoller(options: PollerOptions): Poller {
  const sleep = options.sleep ?? realSleep;
  const now = options.now ?? (() => Date.now());
  const timeoutMs = options.timeoutMs ?? DEFAULT_POLL_TIMEOUT_MS;
  const guardrailMs = options.guardrailMs ?? DEFAULT_POLL_GUARDRAIL_MS;
  const backoff = createBackoff(options.backoff);
  const log = options.log;
  const events = options.events ?? {};

  const status: PollerStatus = { state: "stopped", consecutiveFailures: 0 };
  let stopper: AbortController | undefined;
  let loop: Promise<void> | undefined;
  /** The hub advertised the `lease` extension on its last answered poll. */
  let lease = false;
  /** No poll answered yet since start or the last failure: ask for an answer at once. */
  let probing = true;

  function succeeded() {
    probing = false;
    if (status.consecutiveFailures > 0 || status.state === "unauthorized") log.info("control plane reachable again; polling");
    status.state = "polling";
    status.lastSuccessAt = now();
    status.consecutiveFailures = 0;
    delete status.lastError;
    backoff.reset();
  }

  /** How long to wait after a failed poll, and what to tell the operator. */
  function failed(failure: ControlPlaneFailure, durationMs: number): number {
    status.consecutiveFailures++;
    probing = true;
    const reason = describeControlPlaneFailure(failure);
    status.lastError = reason;
    const unauthorized = failure.kind === "http_error" && (failure.status === 401 || failure.status === 403);
    status.state = unauthorized ? "unauthorized" : "backing_off";
    events.pollFinished?.(unauthorized ? "unauthorized" : "error", durationMs, 0, errorKind(failure));
    const hint = failure.kind === "http_error" ? parseRetryAfter(failure.retryAfter, now()) : undefined;
    const delay = backoff.next(hint);
    const fields = { reason, retry_in_ms: delay, tunnel_request_id: (failure.kind === "http_error" && failure.requestId) || "missing_request_id" };
    if (unauthorized) {
      log.error("the control plane refused this agent's credentials; an operator must fix the key or its permission (retrying with backoff)", {
        status: failure.status, code: failure.error?.code, ...fields,
      });
    } else if (needsOperator(failure)) {
      log.error("the control plane rejected the poll; an operator must fix the configuration (retrying with backoff)", fields);
    } else {
      log.warn("poll failed; backing off", { ...fields, failures: status.consecutiveFailures });
    }
    return delay;
  }

  /** Hold lease-only polls until a slot frees up (or the loop stops). */
  async function holdLease(signal: AbortSignal) {
    const done = new AbortController();
    const linked = linkSignals([signal, done.signal]);
    const freed = options.dispatcher.whenSlotFree(linked.signal).then(() => done.abort());
    try {
      while (!linked.signal.aborted && lease) {
        const started = now();
        const result = await options.client.poll({
          limit: 1, timeoutMs, guardrailMs, signal: linked.signal, leaseOnly: true,
          ...(options.channels ? { channels: options.channels } : {}),
        });
        if (result.kind === "aborted") break;
        if (result.kind === "commands" || result.kind === "empty") {
          succeeded();
          lease = result.advert?.capabilities.includes("lease") ?? false;
          if (result.kind === "commands") options.dispatcher.submit(result.commands, result.receivedAt);
          continue;
        }
        await sleep(failed(result, Math.max(0, now() - started)), linked.signal);
      }
    } finally {
      done.abort();
      await freed;
      linked.dispose();
    }
  }

  async function run(signal: AbortSignal) {
    status.state = "starting";
    log.info("polling the control plane", { timeout_ms: timeoutMs });
    while (!signal.aborted) {
      const free = options.dispatcher.freeSlots();
      if (free <= 0) {
        // Full queue: asking for work we cannot start would only let it age on our side.
        if (lease) await holdLease(signal);
        else await options.dispatcher.whenSlotFree(signal);
        continue;
      }
      const started = now();
      const result = await options.client.poll({
        limit: Math.min(free, POLL_LIMIT_MAX), timeoutMs: probing ? 1 : timeoutMs, guardrailMs, signal,
        ...(options.channels ? { channels: options.channels } : {}),
      });
      const duration = Math.max(0, now() - started);
      if (result.kind === "aborted") break;
      if (result.kind === "commands" || result.kind === "empty") lease = result.advert?.capabilities.includes("lease") ?? false;
      if (result.kind === "commands") {
        succeeded();
        events.pollFinished?.("commands", duration, result.commands.length);
        options.dispatcher.submit(result.commands, result.receivedAt);
        continue;
      }
      if (result.kind === "empty") {
        succeeded();
        events.pollFinished?.("empty", duration, 0);
        continue;
      }
      await sleep(failed(result, duration), signal);
    }
    status.state = "stopped";
  }

  return {
    start() {
      if (loop) return;
      const controller = new AbortController();
      stopper = controller;
      loop = run(controller.signal).catch((error: unknown) => {
        status.state = "stopped";
        status.lastError = `poll loop crashed: ${error instanceof Error ? error.message : String(error)}`;
        log.error("poll loop crashed", { error });
      });
    },
    async stop() {
      stopper?.abort();
      await loop;
      loop = undefined;
      stopper = undefined;
      status.state = "stopped";
    },
    status: () => ({ ...status }),
  };
}
