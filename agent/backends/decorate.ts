/**
 * A backend decorator's base: everything is forwarded to the inner backend except what
 * the decorator replaces. It delegates rather than inheriting (`Object.create(inner)`):
 * backends are classes whose private fields only their own instance can reach.
 */
import type { Backend } from "./types.ts";

/** `inner` with `exchange`, `openStream`, `terminateSession` and/or `health` replaced; `openStream` only exists when `inner` has one. */
export function decorate(
  inner: Backend,
  overrides: Partial<Pick<Backend, "exchange" | "openStream" | "terminateSession" | "health">>,
): Backend {
  const openStream = inner.openStream ? (overrides.openStream ?? inner.openStream.bind(inner)) : undefined;
  return {
    get name() {
      return inner.name;
    },
    get transport() {
      return inner.transport;
    },
    get procAffinity() {
      return inner.procAffinity;
    },
    start: () => inner.start(),
    health: overrides.health ?? (() => inner.health()),
    close: () => inner.close(),
    terminateSession: overrides.terminateSession ?? ((headers, signal) => inner.terminateSession(headers, signal)),
    exchange: overrides.exchange ?? ((exchange) => inner.exchange(exchange)),
    ...(openStream ? { openStream } : {}),
  };
}
