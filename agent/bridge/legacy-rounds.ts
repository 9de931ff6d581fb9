/**
 * Multi round-trip requests for a legacy (2025) client of a modern server: the server answers
 * `input_required`; a legacy client knows nothing of rounds, but answers server→client
 * requests on its call's stream. So the bridge asks the client each of the server's
 * `inputRequests` as such a request (under an id of its own), collects the answers the
 * client posts back, and retries the call with them as `inputResponses` (and the server's
 * `requestState`, byte for byte), until the server gives a final result. The client sees
 * one call, with questions on its stream, as from a 2025 server.
 */
import { isObject, isResponse, type JsonRpcId, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { CLIENT_QUESTION_ID_PREFIX } from "../../shared/mcp/round-trips.ts";
import type { ExchangeResult, McpExchange } from "../backends/types.ts";
import { errorAnswer, INPUT_CAPABILITY, isInputRequired, MRTR_WAIT_MS } from "./mrtr.ts";

/** Rounds one call may take before the bridge gives up (the SDK clients' own default). */
export const MAX_ROUNDS = 10;
/** Questions on legacy clients' streams waiting for an answer at once, per backend. */
const MAX_WAITING = 1024;

/** Server→client requests the bridge put on legacy clients' streams, waiting for their answers. */
export class ClientQuestions {
  readonly #waiting = new Map<string, (answer: JsonRpcMessage) => void>();
  readonly #waitMs: number;

  constructor(waitMs = MRTR_WAIT_MS) {
    this.#waitMs = waitMs;
  }

  /** A client's answer (a JSON-RPC response): true when it answers one of the bridge's questions. */
  answer(message: JsonRpcMessage): boolean {
    if (!isResponse(message) || typeof message.id !== "string") return false;
    const resolve = this.#waiting.get(message.id);
    if (!resolve) return false;
    this.#waiting.delete(message.id);
    resolve(message);
    return true;
  }

  /** Ask the client on `ex`'s stream; the answer, or an error when it does not come in time or `signal` aborts. */
  ask(ex: McpExchange, method: string, params: unknown, signal: AbortSignal): Promise<JsonRpcMessage> {
    const id = `${CLIENT_QUESTION_ID_PREFIX}${crypto.randomUUID()}`;
    const request: JsonRpcMessage = { jsonrpc: "2.0", id, method };
    if (params !== undefined) request.params = params;
    return new Promise((resolve) => {
      const done = (answer: JsonRpcMessage) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", gone);
        this.#waiting.delete(id);
        resolve(answer);
      };
      const gone = () => {
        // The client's own request was cancelled: the question is void too.
        ex.notify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id } }, {});
        done({ jsonrpc: "2.0", id, error: { code: -32800, message: "the request was cancelled" } });
      };
      const timer = setTimeout(
        () => done({ jsonrpc: "2.0", id, error: { code: -32603, message: `no answer within ${this.#waitMs} ms` } }),
        this.#waitMs,
      );
      (timer as { unref?: () => void }).unref?.();
      signal.addEventListener("abort", gone, { once: true });
      this.#waiting.set(id, done);
      for (const oldest of this.#waiting.keys()) {
        if (this.#waiting.size <= MAX_WAITING) break;
        this.#waiting.get(oldest)?.({
          jsonrpc: "2.0",
          id: oldest,
          error: { code: -32603, message: "too many questions" },
        });
      }
      ex.notify(request, {});
    });
  }
}

/**
 * Run the rounds of one call: while `answer` is `input_required`, ask the legacy client each
 * input request and `send` the retry. `request` is the modern request as first sent; the
 * final answer goes back under `id`, the client's own.
 */
export async function completeRounds(
  request: JsonRpcMessage,
  first: ExchangeResult,
  id: JsonRpcId,
  ex: McpExchange,
  questions: ClientQuestions,
  send: (retry: JsonRpcMessage) => Promise<ExchangeResult>,
  signal: AbortSignal,
): Promise<ExchangeResult> {
  let answer = first;
  for (let round = 1; answer.kind === "response" && isInputRequired(answer.message); round++) {
    if (round > MAX_ROUNDS)
      return errorAnswer(
        id,
        -32603,
        `The MCP server still required input after ${MAX_ROUNDS} rounds; Airlock gave up.`,
      );
    const result = answer.message.result as Record<string, unknown>;
    const inputRequests = isObject(result.inputRequests) ? result.inputRequests : {};
    const asked = await Promise.all(
      Object.entries(inputRequests).map(async ([key, input]) => {
        if (!isObject(input) || typeof input.method !== "string" || INPUT_CAPABILITY[input.method] === undefined)
          return { key, error: `the server asked for an unknown kind of input (${JSON.stringify(key)})` };
        const reply = await questions.ask(ex, input.method, input.params, signal);
        if ("result" in reply) return { key, result: reply.result };
        const error =
          isObject(reply.error) && typeof reply.error.message === "string" ? reply.error.message : "an error";
        return { key, error: `the client answered ${input.method} with ${error}` };
      }),
    );
    if (signal.aborted) return { kind: "cancelled" };
    const refused = asked.find((entry) => entry.error !== undefined);
    // A modern response has no room for an error: the call fails, as an SDK v2 client's would.
    if (refused?.error !== undefined)
      return errorAnswer(id, -32603, `The MCP server needed input, but ${refused.error}.`);
    const params = isObject(request.params) ? request.params : {};
    const retry: Record<string, unknown> = { ...params };
    if (asked.length > 0) retry.inputResponses = Object.fromEntries(asked.map((entry) => [entry.key, entry.result]));
    if (typeof result.requestState === "string") retry.requestState = result.requestState;
    answer = await send({ ...request, id: `airlock-retry-${crypto.randomUUID()}`, params: retry });
  }
  if (signal.aborted) return { kind: "cancelled" };
  return answer.kind === "response" ? { ...answer, message: { ...answer.message, id } } : answer;
}
