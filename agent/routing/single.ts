/**
 * A one-backend channel whose backend sets `tools`, `timeout` or `max_concurrent_requests`:
 * the pass-through with those settings applied by the same member wrapper an aggregated
 * channel uses (member.ts), so no configured setting is ever silently off. Tool names stay
 * the backend's own (a one-backend channel has no namespace); a denied tool is left out of
 * `tools/list` and refused on `tools/call` without reaching the backend. Everything else
 * passes untouched.
 */
import { isObject, isRequest } from "../../shared/jsonrpc.ts";
import type { JsonRpcId } from "../../shared/jsonrpc.ts";
import type { BackendConfig } from "../config/types.ts";
import type { Backend, ExchangeResult } from "../backends/types.ts";
import type { AgentEvents } from "../events.ts";
import type { NameFilter } from "./filter.ts";
import { createMember } from "./member.ts";
import type { MemberSettings } from "./member.ts";

/** True when a backend's settings need the routing layer even on a channel of its own. */
export function needsMemberSettings(config: BackendConfig): boolean {
  return config.tools !== undefined || config.timeoutMs !== undefined || config.maxConcurrentRequests !== undefined;
}

function unknownTool(id: JsonRpcId, name: unknown, channel: string): ExchangeResult {
  return {
    kind: "response",
    status: 200,
    headers: { "Content-Type": ["application/json"] },
    message: {
      jsonrpc: "2.0",
      id,
      error: { code: -32602, message: `Unknown tool: ${String(name)} (not exposed on channel ${channel})` },
    },
  };
}

/** A `tools/list` answer without the tools `filter` hides. */
function filterToolList(result: ExchangeResult, filter: NameFilter): ExchangeResult {
  if (result.kind !== "response" || !isObject(result.message.result) || !Array.isArray(result.message.result.tools))
    return result;
  const tools = result.message.result.tools.filter(
    (tool: unknown) => isObject(tool) && typeof tool.name === "string" && filter.allows(tool.name),
  );
  return { ...result, message: { ...result.message, result: { ...result.message.result, tools } } };
}

export function createSingleBackend(
  backend: Backend,
  settings: MemberSettings,
  options: { channel: string; events?: Pick<AgentEvents, "backendCallFinished"> },
): Backend {
  const member = createMember(backend, settings, options);
  return {
    name: backend.name,
    transport: backend.transport,
    procAffinity: backend.procAffinity,
    start: () => backend.start(),
    async exchange(exchange) {
      const { message } = exchange;
      const request = isRequest(message) ? message : undefined;
      const params = isObject(request?.params) ? request.params : {};
      if (request?.method === "tools/call" && !(typeof params.name === "string" && member.tools.allows(params.name))) {
        return unknownTool(request.id, params.name, options.channel);
      }
      const result = await member.call({
        message,
        headers: exchange.headers,
        signal: exchange.signal,
        ...(request?.method === "initialize" ? { startup: true } : {}),
        notify: (note, headers) => exchange.notify(note, headers),
      });
      return request?.method === "tools/list" ? filterToolList(result, member.tools) : result;
    },
    terminateSession: (headers, signal) => backend.terminateSession(headers, signal),
    ...(backend.openStream ? { openStream: (stream) => backend.openStream!(stream) } : {}),
    health: () => backend.health(),
    close: () => backend.close(),
  };
}
