/**
 * Requests in flight through a backend, for `health().inflight`; and the answer to a
 * message that is none of request, notification or response.
 */
import type { ExchangeResult } from "./types.ts";

/** Counts calls of {@link track} that have not settled yet. */
export class InflightCounter {
  #count = 0;

  get count(): number {
    return this.#count;
  }

  async track<T>(work: () => Promise<T>): Promise<T> {
    this.#count++;
    try {
      return await work();
    } finally {
      this.#count--;
    }
  }
}

/** A command whose message is not JSON-RPC a backend can forward. */
export const NOT_JSON_RPC: ExchangeResult = {
  kind: "failure",
  failure: { source: "client_internal" },
  detail: "the command's message is not a JSON-RPC request, notification or response",
};
