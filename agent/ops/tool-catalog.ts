/**
 * The tools each channel exposes, as its clients last saw them: learnt from `tools/list`
 * answers passing through (after policy filtering), so the admin UI can show them without
 * asking a backend anything itself.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import { decorate } from "../backends/decorate.ts";
import type { Backend } from "../backends/types.ts";

export interface ToolCatalog {
  /** Backend name → tool names, for the admin UI. */
  snapshot(): Record<string, string[]>;
  /** `backend` with its `tools/list` answers recorded under its name. */
  observe(backend: Backend): Backend;
}

export function createToolCatalog(): ToolCatalog {
  const tools = new Map<string, string[]>();
  return {
    snapshot: () => Object.fromEntries(tools),
    observe(backend) {
      return decorate(backend, {
        exchange: async (exchange) => {
          const result = await backend.exchange(exchange);
          const message = exchange.message;
          if (
            result.kind === "response" &&
            message.method === "tools/list" &&
            isObject(result.message.result) &&
            Array.isArray(result.message.result.tools)
          ) {
            const names = result.message.result.tools.flatMap((tool) =>
              isObject(tool) && typeof tool.name === "string" ? [tool.name] : [],
            );
            // A first page replaces what was known; later pages (a cursor was sent) add to it.
            const paged = isObject(message.params) && typeof message.params.cursor === "string";
            tools.set(backend.name, paged ? [...new Set([...(tools.get(backend.name) ?? []), ...names])] : names);
          }
          return result;
        },
      });
    },
  };
}
