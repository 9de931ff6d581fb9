/**
 * The backend that serves one route of the routing table: its only backend as is (a
 * transparent pass-through, nothing of the routing layer in the path), or an aggregate
 * of several.
 */
import type { BackendConfig, RouteConfig } from "../config/types.ts";
import { createBackend } from "../backends/factory.ts";
import type { BackendFactoryDeps } from "../backends/factory.ts";
import type { Backend } from "../backends/types.ts";
import type { AgentEvents } from "../events.ts";
import { createAggregateBackend } from "./aggregate.ts";
import { withCallLimit } from "./member.ts";
import type { AggregateOptions } from "./aggregate.ts";

export interface RouteBackendDeps extends BackendFactoryDeps {
  /** Per-backend call reports of aggregated channels. */
  events?: Pick<AgentEvents, "backendCallFinished">;
  /** Aggregate tuning (tests, bench). */
  aggregate?: Pick<AggregateOptions, "pageSize" | "fanOutTimeoutMs" | "retry" | "sessions" | "now">;
}

export function createRouteBackend(route: RouteConfig, deps: RouteBackendDeps): Backend {
  if (route.backends.length === 1) {
    const [config] = route.backends as [BackendConfig];
    const backend = createBackend(config, deps);
    // HTTP backends enforce `timeout` themselves; a stdio child gets the members' clock.
    if (config.transport !== "stdio" || config.timeoutMs === undefined) return backend;
    return withCallLimit(backend, { timeoutMs: config.timeoutMs }, { channel: route.channel });
  }
  return createAggregateBackend({
    ...deps.aggregate,
    channel: route.channel,
    members: route.backends.map((config) => ({
      backend: createBackend(config, deps),
      settings: { tools: config.tools, timeoutMs: config.timeoutMs, maxConcurrentRequests: config.maxConcurrentRequests },
    })),
    log: deps.log,
    ...(deps.events ? { events: deps.events } : {}),
  });
}
