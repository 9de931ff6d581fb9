/**
 * Requests that go to every backend of a session: lists, fanned out and merged under
 * namespaced names with cursors that span backends (see `merge.ts`, `names.ts`), and
 * `ping`/`logging/setLevel`, whose answers are not merged.
 */
import { isErrorResponse, isObject } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { ExchangeResult } from "../backends/types.ts";
import { answer, describeResult, readySlot, relay, request, rpcError } from "./channel.ts";
import type { CallContext, Channel, ReadySlot } from "./channel.ts";
import { joinDue } from "./join.ts";
import { assemblePage, decodeCursor, encodeCursor } from "./merge.ts";
import type { MemberPage, PagePosition } from "./merge.ts";
import { LIST_METHODS, type ListMethod } from "../../shared/mcp/methods.ts";
import { mapUri, namespaced } from "./names.ts";

/**
 * The `_meta` key of a list page that lacks some backend's items: each such backend and the
 * kind of failure (the details go to the agent's log, not to clients), so a client — or the
 * person reading its debug view — can tell a missing backend from an empty one.
 */
export const UNAVAILABLE_META_KEY = "airlock/unavailable";

interface UnavailableNote {
  backend: string;
  /** `FailureSpec.source` (`connect`, `timeout`, `target_http`, …), or `error` for a JSON-RPC error. */
  failure: string;
}

/** Which capability a list method needs. */
const LIST_CAPABILITY: Record<ListMethod, string> = {
  "tools/list": "tools",
  "prompts/list": "prompts",
  "resources/list": "resources",
  "resources/templates/list": "resources",
};

/** Send a request to every ready backend that `wants` it; answers are not merged. */
export async function fanOut(
  channel: Channel,
  ctx: CallContext,
  method: string,
  params: Record<string, unknown>,
  wants: (slot: ReadySlot) => boolean,
): Promise<void> {
  // A failed backend due for a retry joins in the background: a ping must not wait for it.
  void joinDue(channel, {
    ...ctx,
    carrier: undefined,
    signal: AbortSignal.timeout(channel.fanOutTimeoutMs),
    inflight: undefined,
  });
  await Promise.all(
    channel.order.map(async (name) => {
      const slot = readySlot(ctx.session, name);
      if (!slot || !wants(slot)) return;
      const result = await request(channel, channel.members.get(name)!, slot, method, params, {
        ...ctx,
        timeoutMs: channel.fanOutTimeoutMs,
      });
      if (result.kind !== "response" || isErrorResponse(result.message))
        channel.log.debug(`${method} to a backend did not succeed`, { backend: name, result: describeResult(result) });
    }),
  );
}

/** One page of a list, merged from every backend that has one. */
export async function list(
  channel: Channel,
  ctx: CallContext,
  id: JsonRpcId,
  method: ListMethod,
  params: Record<string, unknown>,
): Promise<ExchangeResult> {
  const field = LIST_METHODS[method].field;
  const unavailable: UnavailableNote[] = [];
  let positions: PagePosition[];
  if (params.cursor === undefined) {
    // A failed backend due for a retry gets its chance here, so a listing is complete when it can be.
    await joinDue(channel, { ...ctx, inflight: undefined });
    for (const name of channel.order) {
      const slot = ctx.session.members.get(name);
      if (slot?.state === "failed") unavailable.push({ backend: name, failure: slot.failure.source });
    }
    positions = channel.order
      .filter((name) => {
        const slot = readySlot(ctx.session, name);
        return slot !== undefined && isObject(slot.capabilities[LIST_CAPABILITY[method]]);
      })
      .map((name) => ({ name, offset: 0 }));
  } else {
    const decoded = typeof params.cursor === "string" ? decodeCursor(method, params.cursor) : undefined;
    if (!decoded)
      return rpcError(
        id,
        -32602,
        `Invalid params: the cursor is not one this channel handed out for ${method}; start again without a cursor`,
      );
    positions = decoded;
  }
  const failures: ExchangeResult[] = [];
  const pages = await Promise.all(
    positions.map(async (position): Promise<MemberPage | undefined> => {
      const member = channel.members.get(position.name);
      const slot = readySlot(ctx.session, position.name);
      if (!member || !slot) return undefined;
      const result = await request(
        channel,
        member,
        slot,
        method,
        position.cursor === undefined ? {} : { cursor: position.cursor },
        { ...ctx, timeoutMs: channel.fanOutTimeoutMs },
      );
      const page = result.kind === "response" ? pageOf(result.message, field) : undefined;
      if (!page) {
        failures.push(result);
        unavailable.push({
          backend: position.name,
          failure: result.kind === "failure" ? result.failure.source : "error",
        });
        channel.log.warn(`${method} failed on one backend; its items are missing from this page`, {
          backend: position.name,
          result: describeResult(result),
        });
      }
      return page;
    }),
  );
  if (positions.length > 0 && failures.length === positions.length && failures[0]) return relay(id, failures[0]);
  const { items, next } = assemblePage(
    positions,
    pages,
    (backend, item) => exposed(channel, method, backend, item),
    channel.pageSize,
  );
  const result: Record<string, unknown> = { [field]: items };
  if (next.length > 0) result.nextCursor = encodeCursor(method, next);
  if (unavailable.length > 0) result._meta = { [UNAVAILABLE_META_KEY]: unavailable };
  return answer(id, result);
}

/** A backend's list item as the client sees it, or undefined when it is hidden or malformed. */
function exposed(channel: Channel, method: ListMethod, backend: string, item: unknown): unknown {
  if (!isObject(item)) return undefined;
  switch (method) {
    case "tools/list":
      return typeof item.name === "string" && channel.members.get(backend)?.tools.allows(item.name)
        ? { ...item, name: namespaced(backend, item.name) }
        : undefined;
    case "prompts/list":
      return typeof item.name === "string" ? { ...item, name: namespaced(backend, item.name) } : undefined;
    case "resources/list":
      return typeof item.uri === "string" ? { ...item, uri: mapUri(backend, item.uri) } : undefined;
    case "resources/templates/list":
      return typeof item.uriTemplate === "string"
        ? { ...item, uriTemplate: mapUri(backend, item.uriTemplate) }
        : undefined;
  }
}

/** A list page, or undefined when the answer is not one. */
function pageOf(message: JsonRpcMessage, field: string): MemberPage | undefined {
  const result = message.result;
  if (!isObject(result) || !Array.isArray(result[field])) return undefined;
  return typeof result.nextCursor === "string"
    ? { items: result[field], nextCursor: result.nextCursor }
    : { items: result[field] };
}
