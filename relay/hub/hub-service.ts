/**
 * The RPC surface of one tunnel's hub, as the Worker calls it on the `TunnelHub`
 * Durable Object stub. Kept free of `cloudflare:workers` so tests can run the same
 * object in-process.
 */
import type { TunnelResponsePayload } from "../../shared/protocol/index.ts";
import { isRequest, type JsonRpcId } from "../../shared/jsonrpc.ts";
import type { HubSettings } from "../config.ts";
import { errorResponse } from "../errors.ts";
import { renderExchange } from "./render.ts";
import {
  TunnelState, systemClock, type AgentHello, type AgentRecord, type Clock, type HubStore, type PollRequest,
  type RespondOutcome, type SubmitRequest, type WireCommand,
} from "./tunnel-state.ts";

export interface IngressRequest extends SubmitRequest {
  acceptsSse: boolean;
  rpcId?: JsonRpcId;
}

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
  /** Queue an MCP client request and answer it: JSON, SSE, or an error envelope. */
  submit(request: IngressRequest): Promise<Response>;
  /** The connection with this key (a poll's `pollId`, a request's `connection`) went away. */
  disconnected(connection: string): Promise<void>;
  status(): Promise<HubStatus>;
}

/** What the hub tells its host about, besides answering. */
export interface HubHooks {
  /** Commands a poll just took (tracing records their queue wait). */
  delivered?(commands: WireCommand[]): void;
}

/** {@link TunnelHubApi} over a {@link TunnelState}; the Durable Object delegates to it. */
export class TunnelHubService implements TunnelHubApi {
  readonly state: TunnelState;
  readonly #settings: HubSettings;
  readonly #hooks: HubHooks;

  constructor(settings: HubSettings, store: HubStore, clock: Clock = systemClock, hooks: HubHooks = {}) {
    this.#settings = settings;
    this.state = new TunnelState(settings, store, clock);
    this.#hooks = hooks;
  }

  async poll(request: PollRequest): Promise<WireCommand[]> {
    const commands = await this.state.poll(request);
    if (commands.length > 0) this.#hooks.delivered?.(commands);
    return commands;
  }

  async respond(hello: AgentHello, shardToken: string, payload: TunnelResponsePayload): Promise<RespondOutcome> {
    return this.state.respond(hello, shardToken, payload);
  }

  async submit(request: IngressRequest): Promise<Response> {
    const { acceptsSse, rpcId, ...submit } = request;
    const outcome = this.state.submit(submit);
    if ("error" in outcome) return errorResponse(outcome.error);
    const initialize = submit.message !== undefined && isRequest(submit.message) && submit.message.method === "initialize";
    return renderExchange(outcome.exchange, { acceptsSse, rpcId, keepaliveMs: this.#settings.sseKeepaliveMs, holdUntilFinal: initialize });
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
