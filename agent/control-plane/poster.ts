/**
 * Delivers a command's answers to the control plane: intermediate `jsonrpc_notify`
 * messages in order, then exactly one final response. The retry rules differ on
 * purpose (PROTOCOL.md "Response POST"): a final is retried on network errors and
 * 408/429/502/503/504 while the command's deadline allows, because losing it loses the
 * call; a notify is retried only when replaying cannot duplicate it (429, or the request
 * never left), because a lost progress message is harmless. `404` means the control
 * plane no longer waits for this request: stop, and never replay the MCP work.
 */
import { filterResponseHeaders } from "../../shared/protocol/index.ts";
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
}

/** Which command a {@link ResponseStream} answers. */
export interface ResponseTarget {
  requestId: string;
  /** Echoed as `channel`; omitted when undefined. */
  channel?: string;
  shardToken: string;
  /** The command's `X-Request-Id`, sent back as `X-Client-Request-Id`. */
  clientRequestId?: string;
  /** Monotonic ms (the poster's `now`) after which no retry starts. */
  deadline?: number;
  /** Aborts in-flight posts and retries. */
  signal: AbortSignal;
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
  const sleep = options.sleep ?? realSleep;
  const now = options.now ?? (() => performance.now());
  const wallClock = options.wallClock ?? (() => Date.now());
  const maxFinal = options.maxFinalAttempts ?? 8;
  const maxNotify = options.maxNotifyAttempts ?? 3;

  async function deliver(payload: TunnelResponsePayload, target: ResponseTarget, final: boolean): Promise<PostOutcome> {
    const type = payload.resp_type ?? "jsonrpc_response";
    const backoff = createBackoff(options.backoff);
    // tunnel-client's correlation fields: the command's id and the connector's X-Request-Id.
    const log = options.log.child({ request_id: target.requestId, resp_type: type, ...(target.clientRequestId ? { cmd_request_id: target.clientRequestId } : {}) });
    for (let attempt = 1; ; attempt++) {
      if (target.signal.aborted) return "aborted";
      const result = await options.client.postResponse(payload, target.shardToken, target.signal, target.clientRequestId);
      if (result.kind === "ok") {
        options.events?.responsePosted?.(type, "ok", attempt);
        return "ok";
      }
      if (result.kind === "aborted") return "aborted";
      if (result.kind === "http_error" && result.status === 404) {
        log.warn("control plane no longer waits for this request (already answered or expired); not retrying", { status: 404, code: result.error?.code });
        options.events?.responsePosted?.(type, "gone", attempt);
        return "gone";
      }
      const reason = describeControlPlaneFailure(result);
      const giveUp = (why: string): PostOutcome => {
        log.warn(`could not deliver ${final ? "the final response" : "a notification"}: ${why}`, { attempts: attempt, error: reason });
        options.events?.responsePosted?.(type, "failed", attempt);
        return "failed";
      };
      if (!retryable(result, final)) return giveUp("not retryable");
      if (attempt >= (final ? maxFinal : maxNotify)) return giveUp("out of attempts");
      const hint = result.kind === "http_error" ? parseRetryAfter(result.retryAfter, wallClock()) : undefined;
      const delay = backoff.next(hint);
      if (target.deadline !== undefined && now() + delay >= target.deadline) return giveUp("the command's deadline passes before the next attempt");
      log.debug("response post failed; retrying", { attempt, delay_ms: delay, error: reason });
      await sleep(delay, target.signal);
    }
  }

  return {
    open(target) {
      let skipped = false;
      let finished = false;
      let chain: Promise<unknown> = Promise.resolve();
      const base = (): Pick<TunnelResponsePayload, "request_id" | "channel"> =>
        target.channel === undefined ? { request_id: target.requestId } : { request_id: target.requestId, channel: target.channel };
      return {
        get notifiesSkipped() {
          return skipped;
        },
        notify(message, headers) {
          if (skipped || finished) return;
          const payload: TunnelResponsePayload = {
            ...base(), resp_headers: responseHeaders(headers), resp_code: 200, resp_type: "jsonrpc_notify",
          };
          if (message !== undefined) payload.resp_json = message;
          chain = chain.then(async () => {
            if (skipped) return;
            const outcome = await deliver(payload, target, false);
            if (outcome !== "ok") skipped = true;
          });
        },
        async final(answer) {
          finished = true;
          await chain;
          const payload: TunnelResponsePayload = {
            ...base(), resp_headers: responseHeaders(answer.headers), resp_code: answer.status, resp_type: answer.type,
          };
          if (answer.message !== undefined) payload.resp_json = answer.message;
          return deliver(payload, target, true);
        },
      };
    },
  };
}
