/**
 * The RPC surface of one tunnel's hub, as the Worker calls it on the `TunnelHub`
 * Durable Object stub. Kept free of `cloudflare:workers` so tests can run the same
 * object in-process.
 */
import type { TunnelResponsePayload } from "../../shared/protocol/index.ts";
import type { HubSettings } from "../config.ts";
import type { SubmitReply } from "./render.ts";
import { RateCounter, type RateBucket, type RateStore, type RateVerdict } from "../../shared/policy/rate-limit.ts";
import {
  TunnelState,
  systemClock,
  type AgentHello,
  type AgentRecord,
  type Clock,
  type HubStore,
  type PollRequest,
  type RespondOutcome,
  type SubmitRequest,
  type WireCommand,
} from "./tunnel-state.ts";

export interface HubStatus {
  agents: Array<AgentRecord & { live: boolean }>;
  queued: number;
  pending: number;
  waitingPolls: number;
  sessions: number;
}

/** What the Worker may call on a tunnel's hub. Every method is async because it crosses an RPC boundary. */
export interface TunnelHubApi {
  poll(request: PollRequest): Promise<WireCommand[]>;
  respond(hello: AgentHello, shardToken: string, payload: TunnelResponsePayload): Promise<RespondOutcome>;
  /**
   * Queue an MCP client request; answers with its first event (a refusal is a `failed`
   * one) and, while more may follow, functions to read the rest. The Worker renders.
   */
  submit(request: SubmitRequest): Promise<SubmitReply>;
  /** The connection with this key (a poll's `pollId`, a request's `connection`) went away. */
  disconnected(connection: string): Promise<void>;
  status(): Promise<HubStatus>;
  /**
   * Count one call against its rate-limit buckets (all or nothing). The tunnel's one
   * consistent place keeps the counters, in its storage: a full window is written at once,
   * other counts at most once per {@link RATE_FLUSH_MS}, so a restart keeps them.
   */
  takeRate(buckets: RateBucket[]): Promise<RateVerdict>;
}

/** What the hub tells its host about, besides answering. */
export interface HubHooks {
  /** Commands a poll just took (tracing records their queue wait). */
  delivered?(commands: WireCommand[]): void;
}

/**
 * How long rate-limit counts may wait in memory before they are written: many calls, one
 * write per counter. A crash loses at most this long's counts (a full window is never lost).
 */
export const RATE_FLUSH_MS = 1000;

/** {@link TunnelHubApi} over a {@link TunnelState}; the Durable Object delegates to it. */
export class TunnelHubService implements TunnelHubApi {
  readonly state: TunnelState;
  readonly #hooks: HubHooks;
  readonly #clock: Clock;
  readonly #rates: RateCounter;
  #rateFlush: unknown;

  constructor(
    settings: HubSettings,
    store: HubStore,
    clock: Clock = systemClock,
    hooks: HubHooks = {},
    rateStore?: RateStore,
  ) {
    this.state = new TunnelState(settings, store, clock);
    this.#hooks = hooks;
    this.#clock = clock;
    this.#rates = new RateCounter(rateStore);
  }

  async takeRate(buckets: RateBucket[]): Promise<RateVerdict> {
    const verdict = this.#rates.take(buckets, this.#clock.now());
    if (this.#rates.unflushed && this.#rateFlush === undefined) {
      this.#rateFlush = this.#clock.setTimeout(() => {
        this.#rateFlush = undefined;
        this.#rates.flush();
      }, RATE_FLUSH_MS);
    }
    return verdict;
  }

  async poll(request: PollRequest): Promise<WireCommand[]> {
    const commands = await this.state.poll(request);
    if (commands.length > 0) this.#hooks.delivered?.(commands);
    return commands;
  }

  async respond(hello: AgentHello, shardToken: string, payload: TunnelResponsePayload): Promise<RespondOutcome> {
    return this.state.respond(hello, shardToken, payload);
  }

  async submit(request: SubmitRequest): Promise<SubmitReply> {
    const outcome = this.state.submit(request);
    if ("error" in outcome) return { first: { type: "failed", error: outcome.error } };
    const exchange = outcome.exchange;
    // Waiting here for the first event makes the common answer (one final) a single round trip.
    const first = await exchange.next();
    if (first?.type !== "notify") return { first };
    // Across RPC these functions become stubs the Worker calls for each further event.
    return { first, next: () => exchange.next(), cancel: async (reason) => exchange.cancel(reason) };
  }

  async disconnected(connection: string): Promise<void> {
    this.state.disconnected(connection);
  }

  async status(): Promise<HubStatus> {
    const live = new Set(this.state.liveAgents().map((a) => a.instanceId));
    return {
      agents: this.state.agents().map((a) => ({ ...a, live: live.has(a.instanceId) })),
      ...this.state.stats(),
    };
  }
}
