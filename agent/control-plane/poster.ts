/**
 * Delivers a command's answers to the control plane: intermediate `jsonrpc_notify`
 * messages in order, then exactly one final response. The retry rules differ on
 * purpose (docs/protocol.md "Response POST"): a final is retried on network errors and
 * 408/429/502/503/504 while the command's deadline allows, because losing it loses the
 * call; a notify is retried only when replaying cannot duplicate it (429, or the request
 * never left), because a lost progress message is harmless. `404` means the control
 * plane no longer waits for this request: stop, and never replay the MCP work.
 *
 * A final too large for the control plane would be refused (413) and the client would
 * wait for its deadline. So a final over the known limit (configured, advertised by the
 * hub in `X-Airlock-Max-Response-Bytes`, or learned from an earlier 413) is replaced by a
 * small JSON-RPC error naming its size and the limit; after an unforeseen 413 the same
 * error is posted in its place.
 */
import { failureMessage, failureStatus, filterResponseHeaders } from "../../shared/protocol/index.ts";
import type { HeaderMap, ResponseType, TunnelResponsePayload } from "../../shared/protocol/index.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import type { AgentEvents } from "../events.ts";
import { createBackoff, parseRetryAfter, sleep as realSleep } from "./backoff.ts";
import type { BackoffOptions, Sleep } from "./backoff.ts";
import { describeControlPlaneFailure } from "./client.ts";
import type { ControlPlaneClient, PostResult } from "./client.ts";

/** How delivery of one post ended. `aborted`: the command's signal fired (deadline or forced shutdown). */
export type PostOutcome = "ok" | "gone" | "failed" | "aborted";
/** Internally, a post the control plane refused as too large (413); `limit` when its message said. */
type Delivery = PostOutcome | { tooLarge: true; limit?: number };

/** A final answer, before the poster adds `request_id`, `channel` and filters the headers. */
export interface FinalAnswer {
  type: Exclude<ResponseType, "jsonrpc_notify">;
  /** `resp_code`. */
  status: number;
  /** `resp_json`; leave out for `notify_ack` and `session_termination_response`. */
  message?: JsonRpcMessage;
  /** Reduced to the response-header allowlist before posting. */
  headers?: HeaderMap;
}

/** The answers of one command. */
export interface ResponseStream {
  /**
   * Queue a server message as `jsonrpc_notify`. Posted in order, before the final; dropped once one failed.
   * Without a message it posts no `resp_json`: the "stream open" signal of the `get-stream` extension.
   */
  notify(message: JsonRpcMessage | undefined, headers?: HeaderMap): void;
  /** Wait for queued notifies, then deliver the final response. Call once. */
  final(answer: FinalAnswer): Promise<PostOutcome>;
  /** True once a notify could not be delivered and later ones are skipped. */
  readonly notifiesSkipped: boolean;
  /** The service's `X-Request-Id` for the accepted final post, once there is one (tunnel-client's `tunnel_request_id`). */
  readonly tunnelRequestId: string | undefined;
}

/** Which command a {@link ResponseStream} answers. */
export interface ResponseTarget {
  requestId: string;
  /** Echoed as `channel`; omitted when undefined. */
  channel?: string;
  shardToken: string;
  /** The command's `X-Request-Id`, sent back as `X-Client-Request-Id`. */
  clientRequestId?: string;
  /** The command's other correlation fields for log lines (`rpc_request_id`, `session_id`). */
  logFields?: Record<string, string | number>;
  /** Monotonic ms (the poster's `now`) after which no retry starts. */
  deadline?: number;
  /** Aborts in-flight posts and retries. */
  signal: AbortSignal;
}

/** Where delivery notes the service's id of the post it accepted. */
interface Receipt {
  tunnelRequestId?: string;
}

export interface Poster {
  open(target: ResponseTarget): ResponseStream;
}

export interface PosterOptions {
  client: Pick<ControlPlaneClient, "postResponse">;
  log: Logger;
  events?: AgentEvents;
  sleep?: Sleep;
  /** Monotonic ms, the same clock command deadlines use (default `performance.now`). */
  now?: () => number;
  /** Wall clock for `Retry-After` dates (default `Date.now`). */
  wallClock?: () => number;
  backoff?: BackoffOptions;
  /** Attempts for a final response (default 8); the deadline usually ends retries first. */
  maxFinalAttempts?: number;
  /** Attempts for a notify (default 3). */
  maxNotifyAttempts?: number;
  /**
   * The largest response post the control plane accepts, in bytes, when known
   * (`control_plane.max_response_bytes`, or what the hub advertised); read at each final.
   */
  maxResponseBytes?: () => number | undefined;
}

/** How large a payload is on the wire (the client posts exactly this JSON). */
function wireBytes(payload: TunnelResponsePayload): number {
  return new TextEncoder().encode(JSON.stringify(payload)).byteLength;
}

/** The limit a 413's message states (the hub and relay say "limit of N bytes"); OpenAI's may not. */
function statedLimit(message: string | undefined): number | undefined {
  const match = /limit of (\d+) bytes/.exec(message ?? "");
  return match ? Number(match[1]) : undefined;
}

/**
 * The small final posted instead of one the control plane cannot take: a JSON-RPC error for
 * the same request id, saying how large the result was and what the limit is.
 */
export function tooLargeAnswer(
  payload: TunnelResponsePayload,
  bytes: number,
  limit: number | undefined,
): TunnelResponsePayload {
  const original = payload.resp_json;
  const id =
    original !== null && typeof original === "object" && !Array.isArray(original) && "id" in original
      ? original.id
      : null;
  const spec = {
    source: "protocol" as const,
    kind: "response_body_too_large" as const,
    upstreamResponseReceived: true,
  };
  const failure = failureMessage(id, spec);
  const over =
    limit === undefined
      ? "over the control plane's limit (it answered 413)"
      : `over the control plane's limit of ${limit} bytes`;
  const message =
    `The MCP server's result is ${bytes} bytes, ${over}, so the agent could not deliver it. ` +
    "Ask for less (paginate, filter) or raise the limit: AIRLOCK_HUB_MAX_RESPONSE_BYTES on an Airlock hub, " +
    "then control_plane.max_response_bytes on the agent.";
  return {
    request_id: payload.request_id,
    ...(payload.channel === undefined ? {} : { channel: payload.channel }),
    resp_code: failureStatus(spec),
    resp_type: "jsonrpc_response",
    resp_headers: { "Content-Type": ["application/json"] },
    resp_json: { ...failure, error: { ...failure.error, message } },
  };
}

const RETRYABLE_FINAL_STATUS = new Set([408, 429, 502, 503, 504]);

/** Whether a failed post may be sent again. */
function retryable(result: PostResult, final: boolean): boolean {
  if (result.kind === "network_error") return final || !result.sent;
  if (result.kind !== "http_error") return false;
  return final ? RETRYABLE_FINAL_STATUS.has(result.status) : result.status === 429;
}

/** Headers as `resp_headers` carries them: the allowlist only, no empty values, no `Connection`-nominated names. */
export function responseHeaders(headers: HeaderMap | undefined): HeaderMap {
  const bag = new Headers();
  for (const [name, values] of Object.entries(headers ?? {})) {
    for (const value of values) {
      try {
        bag.append(name, value);
      } catch {
        // A name or value no HTTP header can carry cannot be on the allowlist either.
      }
    }
  }
  return filterResponseHeaders(bag);
}

export function createPoster(options: PosterOptions): Poster {
  return new ResponsePoster(options);
}

/**
 * Delivery with its retry rules, plus what 413s taught it: the smallest final refused and
 * the limit the refusal stated, so later finals that large are replaced up front.
 */
class ResponsePoster implements Poster {
  readonly #options: PosterOptions;
  readonly #sleep: Sleep;
  readonly #now: () => number;
  readonly #wallClock: () => number;
  readonly #maxFinal: number;
  readonly #maxNotify: number;
  #refusedBytes = Infinity;
  #learnedLimit: number | undefined;

  constructor(options: PosterOptions) {
    this.#options = options;
    this.#sleep = options.sleep ?? realSleep;
    this.#now = options.now ?? (() => performance.now());
    this.#wallClock = options.wallClock ?? (() => Date.now());
    this.#maxFinal = options.maxFinalAttempts ?? 8;
    this.#maxNotify = options.maxNotifyAttempts ?? 3;
  }

  open(target: ResponseTarget): ResponseStream {
    return new CommandResponses(this, target);
  }

  /** The known limit, the tightest of the configured/advertised one and what a 413 said. */
  #knownLimit(): number | undefined {
    const limits = [this.#options.maxResponseBytes?.(), this.#learnedLimit].filter(
      (n): n is number => n !== undefined && n > 0,
    );
    return limits.length ? Math.min(...limits) : undefined;
  }

  /** Post a notify; any outcome but `ok` means later notifies are skipped. */
  deliverNotify(payload: TunnelResponsePayload, target: ResponseTarget): Promise<Delivery> {
    return this.#deliver(payload, target, false);
  }

  /** Post a final, or its "too large" stand-in when the control plane cannot take it. */
  async deliverFinal(payload: TunnelResponsePayload, target: ResponseTarget, receipt: Receipt): Promise<PostOutcome> {
    const limit = this.#knownLimit();
    const bytes = limit !== undefined || this.#refusedBytes !== Infinity ? wireBytes(payload) : 0;
    const log = this.#options.log.child({ ...target.logFields, request_id: target.requestId });
    if ((limit !== undefined && bytes > limit) || bytes >= this.#refusedBytes) {
      log.warn("the result is over the control plane's response limit; posting an error in its place", {
        bytes,
        limit,
      });
      return settle(await this.#deliver(tooLargeAnswer(payload, bytes, limit), target, true, receipt));
    }
    const outcome = await this.#deliver(payload, target, true, receipt);
    if (typeof outcome === "string") return outcome;
    const size = bytes || wireBytes(payload);
    this.#refusedBytes = Math.min(this.#refusedBytes, size);
    if (outcome.limit !== undefined) this.#learnedLimit = outcome.limit;
    log.warn("the control plane refused the result as too large (413); posting an error in its place", {
      bytes: size,
      limit: outcome.limit,
    });
    return settle(
      await this.#deliver(tooLargeAnswer(payload, size, outcome.limit ?? this.#knownLimit()), target, true, receipt),
    );
  }

  async #deliver(
    payload: TunnelResponsePayload,
    target: ResponseTarget,
    final: boolean,
    receipt?: Receipt,
  ): Promise<Delivery> {
    const { client, events } = this.#options;
    const type = payload.resp_type ?? "jsonrpc_response";
    const backoff = createBackoff(this.#options.backoff);
    // tunnel-client's correlation fields: the command's id, the connector's X-Request-Id, the JSON-RPC id, the session.
    const log = this.#options.log.child({
      ...target.logFields,
      request_id: target.requestId,
      resp_type: type,
      ...(target.clientRequestId ? { cmd_request_id: target.clientRequestId } : {}),
    });
    for (let attempt = 1; ; attempt++) {
      if (target.signal.aborted) return "aborted";
      const result = await client.postResponse(payload, target.shardToken, target.signal, target.clientRequestId);
      if (result.kind === "ok") {
        if (receipt && result.requestId) receipt.tunnelRequestId = result.requestId;
        events?.responsePosted?.(type, "ok", attempt);
        return "ok";
      }
      if (result.kind === "aborted") return "aborted";
      if (result.kind === "http_error" && result.status === 404) {
        log.warn("control plane no longer waits for this request (already answered or expired); not retrying", {
          status: 404,
          code: result.error?.code,
        });
        events?.responsePosted?.(type, "gone", attempt);
        return "gone";
      }
      if (final && result.kind === "http_error" && result.status === 413) {
        events?.responsePosted?.(type, "failed", attempt);
        return { tooLarge: true, limit: statedLimit(result.error?.message) };
      }
      const reason = describeControlPlaneFailure(result);
      const giveUp = (why: string): PostOutcome => {
        log.warn(`could not deliver ${final ? "the final response" : "a notification"}: ${why}`, {
          attempts: attempt,
          error: reason,
        });
        events?.responsePosted?.(type, "failed", attempt);
        return "failed";
      };
      if (!retryable(result, final)) return giveUp("not retryable");
      if (attempt >= (final ? this.#maxFinal : this.#maxNotify)) return giveUp("out of attempts");
      const hint = result.kind === "http_error" ? parseRetryAfter(result.retryAfter, this.#wallClock()) : undefined;
      const delay = backoff.next(hint);
      if (target.deadline !== undefined && this.#now() + delay >= target.deadline)
        return giveUp("the command's deadline passes before the next attempt");
      log.debug("response post failed; retrying", { attempt, delay_ms: delay, error: reason });
      await this.#sleep(delay, target.signal);
    }
  }
}

/** A stand-in that is itself refused as too large has nothing smaller to become. */
function settle(outcome: Delivery): PostOutcome {
  return typeof outcome === "string" ? outcome : "failed";
}

/** The answers of one command: notifies chained in order, then the final once they are done. */
class CommandResponses implements ResponseStream {
  readonly #poster: ResponsePoster;
  readonly #target: ResponseTarget;
  #skipped = false;
  #finished = false;
  readonly #receipt: Receipt = {};
  #chain: Promise<unknown> = Promise.resolve();

  constructor(poster: ResponsePoster, target: ResponseTarget) {
    this.#poster = poster;
    this.#target = target;
  }

  get notifiesSkipped(): boolean {
    return this.#skipped;
  }

  get tunnelRequestId(): string | undefined {
    return this.#receipt.tunnelRequestId;
  }

  notify(message: JsonRpcMessage | undefined, headers?: HeaderMap): void {
    if (this.#skipped || this.#finished) return;
    const payload: TunnelResponsePayload = {
      ...this.#base(),
      resp_headers: responseHeaders(headers),
      resp_code: 200,
      resp_type: "jsonrpc_notify",
    };
    if (message !== undefined) payload.resp_json = message;
    this.#chain = this.#chain.then(async () => {
      if (this.#skipped) return;
      const outcome = await this.#poster.deliverNotify(payload, this.#target);
      if (outcome !== "ok") this.#skipped = true;
    });
  }

  async final(answer: FinalAnswer): Promise<PostOutcome> {
    this.#finished = true;
    await this.#chain;
    const payload: TunnelResponsePayload = {
      ...this.#base(),
      resp_headers: responseHeaders(answer.headers),
      resp_code: answer.status,
      resp_type: answer.type,
    };
    if (answer.message !== undefined) payload.resp_json = answer.message;
    return this.#poster.deliverFinal(payload, this.#target, this.#receipt);
  }

  #base(): Pick<TunnelResponsePayload, "request_id" | "channel"> {
    const target = this.#target;
    return target.channel === undefined
      ? { request_id: target.requestId }
      : { request_id: target.requestId, channel: target.channel };
  }
}
