/**
 * `TunnelHub`: one Durable Object per tunnel (named by the tunnel id), the single
 * strongly consistent place where that tunnel's queue, held polls and pending
 * requests live. Agents and session affinity are kept in the object's SQLite-backed
 * KV storage so they survive a restart, and so are the rate-limit counters; queued and
 * in-flight requests do not (their clients' connections end with the old instance).
 */
import { DurableObject } from "cloudflare:workers";
import type { TunnelResponsePayload } from "../../shared/protocol/index.ts";
import { parseSettings, type HubVars } from "../config.ts";
import { TunnelHubService, type HubStatus, type TunnelHubApi } from "./hub-service.ts";
import { traceQueueWait } from "../telemetry/queue.ts";
import { systemClock } from "./tunnel-state.ts";
import type { SubmitReply } from "./render.ts";
import type { RateBucket, RateStore, RateVerdict, RateWindow } from "../../shared/policy/rate-limit.ts";
import type {
  AgentHello,
  AgentRecord,
  HubStore,
  PollRequest,
  RespondOutcome,
  SessionRecord,
  SubmitRequest,
  WireCommand,
} from "./tunnel-state.ts";

const AGENT_PREFIX = "agent/";
const SESSION_PREFIX = "session/";
const RATE_PREFIX = "rate/";

/** {@link HubStore} on the Durable Object's synchronous KV storage. */
export function kvStore(kv: SyncKvStorage): HubStore {
  return {
    loadAgents: () => [...kv.list<AgentRecord>({ prefix: AGENT_PREFIX })].map(([, agent]) => agent),
    saveAgent: (agent) => kv.put(AGENT_PREFIX + agent.instanceId, agent),
    deleteAgent: (instanceId) => void kv.delete(AGENT_PREFIX + instanceId),
    loadSessions: () =>
      [...kv.list<SessionRecord>({ prefix: SESSION_PREFIX })].map(([key, s]) => [key.slice(SESSION_PREFIX.length), s]),
    saveSession: (key, session) => kv.put(SESSION_PREFIX + key, session),
    deleteSession: (key) => void kv.delete(SESSION_PREFIX + key),
  };
}

/** {@link RateStore} on the same storage: one record per counter (limit, subject, tool). */
export function kvRateStore(kv: SyncKvStorage): RateStore {
  return {
    load: () =>
      [...kv.list<RateWindow>({ prefix: RATE_PREFIX })].map(([key, window]) => [key.slice(RATE_PREFIX.length), window]),
    save: (key, window) => kv.put(RATE_PREFIX + key, window),
    delete: (key) => void kv.delete(RATE_PREFIX + key),
  };
}

export class TunnelHub extends DurableObject<HubVars> implements TunnelHubApi {
  readonly #service: TunnelHubService;

  constructor(ctx: DurableObjectState, env: HubVars) {
    super(ctx, env);
    this.#service = new TunnelHubService(
      parseSettings(env),
      kvStore(ctx.storage.kv),
      systemClock,
      {
        delivered: (commands) => ctx.waitUntil(traceQueueWait(env, commands)),
      },
      kvRateStore(ctx.storage.kv),
    );
  }

  poll(request: PollRequest): Promise<WireCommand[]> {
    return this.#service.poll(request);
  }

  respond(hello: AgentHello, shardToken: string, payload: TunnelResponsePayload): Promise<RespondOutcome> {
    return this.#service.respond(hello, shardToken, payload);
  }

  submit(request: SubmitRequest): Promise<SubmitReply> {
    return this.#service.submit(request);
  }

  disconnected(connection: string): Promise<void> {
    return this.#service.disconnected(connection);
  }

  status(): Promise<HubStatus> {
    return this.#service.status();
  }

  takeRate(buckets: RateBucket[]): Promise<RateVerdict> {
    return this.#service.takeRate(buckets);
  }
}
