/**
 * The backend that serves one route of the routing table: its only backend as is (a
 * transparent pass-through, nothing of the routing layer in the path), the same with its
 * `tools`/`timeout`/`max_concurrent_requests` applied when it sets any (single.ts), or an
 * aggregate of several.
 */
import type { BackendConfig, RouteConfig } from "../config/types.ts";
import { createBackend } from "../backends/factory.ts";
import type { BackendFactoryDeps } from "../backends/factory.ts";
import type { Backend } from "../backends/types.ts";
import type { AgentEvents } from "../events.ts";
import { bridgeEras } from "../bridge/backend.ts";
import { createAggregateBackend } from "./aggregate.ts";
import type { AggregateOptions } from "./aggregate.ts";
import type { MemberSettings } from "./member.ts";
import { createSingleBackend, needsMemberSettings } from "./single.ts";

export interface RouteBackendDeps extends BackendFactoryDeps {
  /** Per-backend call reports of aggregated channels. */
  events?: Pick<AgentEvents, "backendCallFinished">;
  /** Aggregate tuning (tests, bench). */
  aggregate?: Pick<AggregateOptions, "pageSize" | "fanOutTimeoutMs" | "retry" | "sessions" | "now">;
}

function memberSettings(config: BackendConfig): MemberSettings {
  return { tools: config.tools, timeoutMs: config.timeoutMs, maxConcurrentRequests: config.maxConcurrentRequests };
}

export function createRouteBackend(route: RouteConfig, deps: RouteBackendDeps): Backend {
  if (route.backends.length === 1) {
    const config = route.backends[0]!;
    const backend = createBackend(config, deps);
    if (!needsMemberSettings(config)) return backend;
    return createSingleBackend(backend, memberSettings(config), {
      channel: route.channel,
      ...(deps.events ? { events: deps.events } : {}),
    });
  }
  // The aggregate is a legacy server with sessions; the era bridge lets modern clients use it.
  return bridgeEras(
    createAggregateBackend({
      ...deps.aggregate,
      channel: route.channel,
      members: route.backends.map((config) => ({
        backend: createBackend(config, deps),
        settings: memberSettings(config),
      })),
      log: deps.log,
      ...(deps.events ? { events: deps.events } : {}),
    }),
    { log: deps.log },
  );
}
