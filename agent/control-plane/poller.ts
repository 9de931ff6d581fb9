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
  return (
    failure.kind === "http_error" &&
    failure.status >= 400 &&
    failure.status < 500 &&
    failure.status !== 408 &&
    failure.status !== 429
  );
}

/** tunnel-client's `error_kind`: a poll that got no answer in time is a timeout, the rest `other`. */
function errorKind(failure: ControlPlaneFailure): PollErrorKind {
  return failure.kind === "network_error" && failure.timedOut ? "timeout" : "other";
}

export function createPoller(options: PollerOptions): Poller {
  return new LongPoller(options);
}

/**
 * The loop and what it remembers between polls. A class so that state is declared in one
 * place: the status readiness shows, the running loop, and two flags the next poll depends on.
 */
class LongPoller implements Poller {
  readonly #options: PollerOptions;
  readonly #sleep: Sleep;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #guardrailMs: number;
  readonly #backoff: ReturnType<typeof createBackoff>;
  readonly #log: Logger;
  readonly #events: AgentEvents;
  readonly #status: PollerStatus = { state: "stopped", consecutiveFailures: 0 };
  #stopper: AbortController | undefined;
  #loop: Promise<void> | undefined;
  /** The hub advertised the `lease` extension on its last answered poll. */
  #lease = false;
  /** No poll answered yet since start or the last failure: ask for an answer at once. */
  #probing = true;

  constructor(options: PollerOptions) {
    this.#options = options;
    this.#sleep = options.sleep ?? realSleep;
    this.#now = options.now ?? (() => Date.now());
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_POLL_TIMEOUT_MS;
    this.#guardrailMs = options.guardrailMs ?? DEFAULT_POLL_GUARDRAIL_MS;
    this.#backoff = createBackoff(options.backoff);
    this.#log = options.log;
    this.#events = options.events ?? {};
  }

  start(): void {
    if (this.#loop) return;
    const controller = new AbortController();
    this.#stopper = controller;
    this.#loop = this.#run(controller.signal).catch((error: unknown) => {
      this.#status.state = "stopped";
      this.#status.lastError = `poll loop crashed: ${error instanceof Error ? error.message : String(error)}`;
      this.#log.error("poll loop crashed", { error });
    });
  }

  async stop(): Promise<void> {
    this.#stopper?.abort();
    await this.#loop;
    this.#loop = undefined;
    this.#stopper = undefined;
    this.#status.state = "stopped";
  }

  status(): PollerStatus {
    return { ...this.#status };
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { client, dispatcher, channels } = this.#options;
    this.#status.state = "starting";
    this.#log.info("polling the control plane", { timeout_ms: this.#timeoutMs });
    while (!signal.aborted) {
      const free = dispatcher.freeSlots();
      if (free <= 0) {
        // Full queue: asking for work we cannot start would only let it age on our side.
        if (this.#lease) await this.#holdLease(signal);
        else await dispatcher.whenSlotFree(signal);
        continue;
      }
      const started = this.#now();
      const result = await client.poll({
        limit: Math.min(free, POLL_LIMIT_MAX),
        timeoutMs: this.#probing ? 1 : this.#timeoutMs,
        guardrailMs: this.#guardrailMs,
        signal,
        ...(channels ? { channels } : {}),
      });
      const duration = Math.max(0, this.#now() - started);
      if (result.kind === "aborted") break;
      if (result.kind === "commands" || result.kind === "empty")
        this.#lease = result.advert?.capabilities.includes("lease") ?? false;
      if (result.kind === "commands") {
        this.#succeeded();
        this.#events.pollFinished?.("commands", duration, result.commands.length);
        dispatcher.submit(result.commands, result.receivedAt);
        continue;
      }
      if (result.kind === "empty") {
        this.#succeeded();
        this.#events.pollFinished?.("empty", duration, 0);
        continue;
      }
      await this.#sleep(this.#failed(result, duration), signal);
    }
    this.#status.state = "stopped";
  }

  /** Hold lease-only polls until a slot frees up (or the loop stops). */
  async #holdLease(signal: AbortSignal): Promise<void> {
    const { client, dispatcher, channels } = this.#options;
    const done = new AbortController();
    const linked = linkSignals([signal, done.signal]);
    const freed = dispatcher.whenSlotFree(linked.signal).then(() => done.abort());
    try {
      while (!linked.signal.aborted && this.#lease) {
        const started = this.#now();
        const result = await client.poll({
          limit: 1,
          timeoutMs: this.#timeoutMs,
          guardrailMs: this.#guardrailMs,
          signal: linked.signal,
          leaseOnly: true,
          ...(channels ? { channels } : {}),
        });
        if (result.kind === "aborted") break;
        if (result.kind === "commands" || result.kind === "empty") {
          this.#succeeded();
          this.#lease = result.advert?.capabilities.includes("lease") ?? false;
          if (result.kind === "commands") dispatcher.submit(result.commands, result.receivedAt);
          continue;
        }
        await this.#sleep(this.#failed(result, Math.max(0, this.#now() - started)), linked.signal);
      }
    } finally {
      done.abort();
      await freed;
      linked.dispose();
    }
  }

  #succeeded(): void {
    const status = this.#status;
    this.#probing = false;
    if (status.consecutiveFailures > 0 || status.state === "unauthorized")
      this.#log.info("control plane reachable again; polling");
    status.state = "polling";
    status.lastSuccessAt = this.#now();
    status.consecutiveFailures = 0;
    delete status.lastError;
    this.#backoff.reset();
  }

  /** How long to wait after a failed poll, and what to tell the operator. */
  #failed(failure: ControlPlaneFailure, durationMs: number): number {
    const status = this.#status;
    status.consecutiveFailures++;
    this.#probing = true;
    const reason = describeControlPlaneFailure(failure);
    status.lastError = reason;
    const unauthorized = failure.kind === "http_error" && (failure.status === 401 || failure.status === 403);
    status.state = unauthorized ? "unauthorized" : "backing_off";
    this.#events.pollFinished?.(unauthorized ? "unauthorized" : "error", durationMs, 0, errorKind(failure));
    const hint = failure.kind === "http_error" ? parseRetryAfter(failure.retryAfter, this.#now()) : undefined;
    const delay = this.#backoff.next(hint);
    const fields = {
      reason,
      retry_in_ms: delay,
      tunnel_request_id: (failure.kind === "http_error" && failure.requestId) || "missing_request_id",
      // Airlock's addition: the same bounded kind a failed MCP call logs, so one filter finds both.
      ...(failure.kind === "network_error" ? { transport_error_kind: failure.transportErrorKind } : {}),
    };
    if (unauthorized) {
      this.#log.error(
        "the control plane refused this agent's credentials; an operator must fix the key or its permission (retrying with backoff)",
        {
          status: failure.status,
          code: failure.error?.code,
          ...fields,
        },
      );
    } else if (needsOperator(failure)) {
      this.#log.error(
        "the control plane rejected the poll; an operator must fix the configuration (retrying with backoff)",
        fields,
      );
    } else {
      this.#log.warn("poll failed; backing off", { ...fields, failures: status.consecutiveFailures });
    }
    return delay;
  }
}
