/**
 * Which agent holds the rest of a multi round-trip request. The agent's era bridge keeps a
 * paused call (for a modern client of a legacy server) or a question on a legacy client's
 * stream (for a legacy client of a modern server) in its own memory, and any live agent of
 * the tunnel may take the next request. So the hub notes, from what agents answer, the
 * `requestState` of each `input_required` result and the id of each question the bridge
 * minted (shared/mcp/round-trips.ts), and sends the retry or the answer back to that agent.
 *
 * In memory only, per tunnel (the Durable Object's): after a hub restart the next request
 * goes to any agent, and one that does not hold the call says so (−32602). Bounded: a mark
 * lives as long as the agent waits ({@link ROUND_TRIP_WAIT_MS}), and beyond
 * {@link MAX_ROUND_TRIP_MARKS} the oldest go. The prefix only steers routing; the agent still
 * checks that a retry is bound to its call, and the hub that it comes from the same owner.
 */
import { isObject, isRequest, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import {
  CLIENT_QUESTION_ID_PREFIX,
  PAUSED_CALL_STATE_PREFIX,
  ROUND_TRIP_WAIT_MS,
} from "../../shared/mcp/round-trips.ts";
import type { SessionOwner } from "./tunnel-state.ts";

/** Marks kept per tunnel: well above what its agents hold (256 paused calls per backend each). */
export const MAX_ROUND_TRIP_MARKS = 4096;

/** The agent that issued a mark, and who sent the request it answered (the only one who may use it). */
export interface Mark {
  instanceId: string;
  owner: SessionOwner | undefined;
  at: number;
}

/** The mark a client's request or answer carries: a retry's `requestState`, or the id an answer answers. */
function carriedMark(message: JsonRpcMessage): string | undefined {
  if (isRequest(message)) {
    const state = isObject(message.params) ? message.params.requestState : undefined;
    return typeof state === "string" && state.startsWith(PAUSED_CALL_STATE_PREFIX) ? `state ${state}` : undefined;
  }
  const answered = "method" in message ? undefined : message.id;
  return typeof answered === "string" && answered.startsWith(CLIENT_QUESTION_ID_PREFIX)
    ? `input ${answered}`
    : undefined;
}

/** The mark an agent's message creates: the `requestState` of an `input_required` result, or a question's id. */
function issuedMark(message: JsonRpcMessage): string | undefined {
  if (isRequest(message))
    return typeof message.id === "string" && message.id.startsWith(CLIENT_QUESTION_ID_PREFIX)
      ? `input ${message.id}`
      : undefined;
  const result = message.result;
  if (!isObject(result) || result.resultType !== "input_required") return undefined;
  const state = result.requestState;
  return typeof state === "string" && state.startsWith(PAUSED_CALL_STATE_PREFIX) ? `state ${state}` : undefined;
}

/** The marks of one tunnel, oldest first (a mark seen again moves to the back). */
export class RoundTripAffinity {
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #marks = new Map<string, Mark>();

  constructor(now: () => number, ttlMs = ROUND_TRIP_WAIT_MS, max = MAX_ROUND_TRIP_MARKS) {
    this.#now = now;
    this.#ttlMs = ttlMs;
    this.#max = max;
  }

  /** Marks held now (diagnostics and tests). */
  get size(): number {
    return this.#marks.size;
  }

  /**
   * An agent sent `message` on channel `channel` for a request from `owner`: when it is a
   * mark the bridge minted, the client's next request carrying it goes to that agent.
   */
  learn(
    message: JsonRpcMessage | undefined,
    channel: string,
    instanceId: string,
    owner: SessionOwner | undefined,
  ): void {
    const mark = message && issuedMark(message);
    if (mark === undefined) return;
    const now = this.#now();
    this.#forgetExpired(now);
    const key = `${channel} ${mark}`;
    this.#marks.delete(key);
    this.#marks.set(key, { instanceId, owner, at: now });
    for (const oldest of this.#marks.keys()) {
      if (this.#marks.size <= this.#max) break;
      this.#marks.delete(oldest);
    }
  }

  /**
   * The mark `message` on `channel` carries, when the hub holds it: its agent takes the
   * request (the caller checks the owner); `undefined` when any agent may.
   */
  held(message: JsonRpcMessage | undefined, channel: string): Mark | undefined {
    const mark = message && carriedMark(message);
    if (mark === undefined) return undefined;
    this.#forgetExpired(this.#now());
    return this.#marks.get(`${channel} ${mark}`);
  }

  /** Oldest first, stopping at the first fresh one: a call costs nothing when nothing expired. */
  #forgetExpired(now: number): void {
    for (const [key, mark] of this.#marks) {
      if (now - mark.at <= this.#ttlMs) return;
      this.#marks.delete(key);
    }
  }
}
