/**
 * One backend of an aggregated channel, as the aggregate calls it: its tool filter, its
 * own concurrency limit (`max_concurrent_requests`) and per-call timeout (`timeout`), and
 * a report per call for `/metrics`. Every call to a member goes through {@link Member.call},
 * so a slow or saturated backend waits on its own semaphore and times out on its own
 * clock without holding up the others.
 */
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { isErrorResponse } from "../../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { BackendConfig } from "../config/types.ts";
import type { Backend, ExchangeResult } from "../backends/types.ts";
import type { AgentEvents } from "../events.ts";
import { compileToolFilter } from "./filter.ts";
import type { NameFilter } from "./filter.ts";
import { createSemaphore } from "./limits.ts";
import { linkSignals } from "../runtime/signals.ts";
import { isLongLivedRequest } from "../../shared/mcp/era.ts";

const noop = () => {};

/** The per-backend settings of a route that the aggregate applies. */
export type MemberSettings = Pick<BackendConfig, "tools" | "timeoutMs" | "maxConcurrentRequests">;

export interface MemberCall {
  message: JsonRpcMessage;
  headers: HeaderMap;
  signal: AbortSignal;
  notify(message: JsonRpcMessage, headers: HeaderMap): void;
  /** A tighter limit than the member's own timeout (fan-out calls); the smaller one applies. */
  timeoutMs?: number;
  /**
   * `initialize`: the backend may still be starting (a stdio child), which its per-call
   * `timeout` is not meant to cover; only `timeoutMs` applies.
   */
  startup?: boolean;
}

export interface Member {
  readonly name: string;
  readonly backend: Backend;
  readonly tools: NameFilter;
  call(call: MemberCall): Promise<ExchangeResult>;
}

export interface MemberOptions {
  channel: string;
  events?: Pick<AgentEvents, "backendCallFinished">;
  now?: () => number;
}

export function createMember(backend: Backend, settings: MemberSettings, options: MemberOptions): Member {
  const semaphore = createSemaphore(settings.maxConcurrentRequests);
  const tools = compileToolFilter(settings.tools);
  const now = options.now ?? (() => performance.now());

  function report(method: string, result: ExchangeResult, startedAt: number): void {
    const outcome =
      result.kind === "failure" || result.kind === "cancelled"
        ? result.kind
        : result.kind === "response" && isErrorResponse(result.message)
          ? "error"
          : "ok";
    options.events?.backendCallFinished?.({
      channel: options.channel,
      backend: backend.name,
      method,
      outcome,
      durationMs: Math.max(0, now() - startedAt),
    });
  }

  return {
    name: backend.name,
    backend,
    tools,
    async call(call) {
      const startedAt = now();
      const method = typeof call.message.method === "string" ? call.message.method : "response";
      // A subscriptions/listen lives until the client or server ends it: no per-call timeout, no concurrency slot.
      const longLived = isLongLivedRequest(call.message);
      const limit = Math.min(
        call.startup || longLived ? Infinity : (settings.timeoutMs ?? Infinity),
        call.timeoutMs ?? Infinity,
      );
      const linked = linkSignals([call.signal], Number.isFinite(limit) ? limit : undefined);
      const signal = linked.signal;
      const timedOut = (): ExchangeResult => ({
        kind: "failure",
        failure: { source: "timeout", kind: "timeout" },
        detail: `backend ${backend.name} did not answer ${method} within ${limit} ms`,
      });
      let result: ExchangeResult;
      try {
        const release = longLived ? noop : await semaphore.acquire(signal);
        if (!release) {
          result = linked.timedOut
            ? timedOut()
            : {
                kind: "failure",
                failure: { source: "timeout", kind: "timeout" },
                detail: "gave up waiting for a free slot",
              };
        } else {
          try {
            result = await backend.exchange({
              message: call.message,
              headers: call.headers,
              signal,
              notify: (message, headers) => call.notify(message, headers),
            });
          } catch (error) {
            result = {
              kind: "failure",
              failure: { source: "client_internal" },
              detail: `backend ${backend.name} threw: ${error instanceof Error ? error.message : String(error)}`,
            };
          } finally {
            release();
          }
          if (linked.timedOut && !call.signal.aborted && result.kind === "failure") result = timedOut();
        }
      } finally {
        linked.dispose();
      }
      report(method, result, startedAt);
      return result;
    },
  };
}
