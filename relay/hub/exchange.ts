/**
 * One MCP client request's side of the hub: the events that arrive for it (server
 * messages posted as `jsonrpc_notify`, then one final response or a hub failure),
 * in order, to be rendered as JSON or SSE by whoever waits for them.
 */
import type { HeaderMap, ResponseType } from "../../shared/protocol/index.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { HubError } from "../errors.ts";

export type ExchangeEvent =
  /** An intermediate server message; `message` is absent only for the stream-open signal of `get-stream`. */
  | { type: "notify"; message?: JsonRpcMessage; headers: HeaderMap; status: number }
  /** The agent's final response (`resp_type` other than `jsonrpc_notify`). */
  | {
      type: "final";
      respType: Exclude<ResponseType, "jsonrpc_notify">;
      status: number;
      headers: HeaderMap;
      message?: JsonRpcMessage;
    }
  /** The hub gave up on the request (deadline, agent gone, hub shutting down). */
  | { type: "failed"; error: HubError };

/** An ordered, single-consumer event queue with a cancel hook back into the hub. */
export class Exchange {
  readonly requestId: string;
  #events: ExchangeEvent[] = [];
  #waiter: ((event: ExchangeEvent | undefined) => void) | undefined;
  #closed = false;
  #onCancel: (reason: string) => void;

  constructor(requestId: string, onCancel: (reason: string) => void) {
    this.requestId = requestId;
    this.#onCancel = onCancel;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Deliver an event; ignored once the exchange is closed (the client is gone). */
  push(event: ExchangeEvent): void {
    if (this.#closed) return;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter(event);
    } else {
      this.#events.push(event);
    }
  }

  /** The next event, or `undefined` once the exchange was closed without one. */
  next(): Promise<ExchangeEvent | undefined> {
    const event = this.#events.shift();
    if (event) return Promise.resolve(event);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Stop delivering; a pending `next()` resolves to `undefined`. Called by the hub. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#events = [];
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(undefined);
  }

  /** The consumer (client) went away: tell the hub, which dequeues or cancels the command. */
  cancel(reason: string): void {
    if (this.#closed) return;
    this.#onCancel(reason);
    this.close();
  }
}
