/**
 * The hub's `queue_wait` span of each command a poll took: from when it was queued to now,
 * a child of the command's hand-off span (the `traceparent` the ingress gave it).
 */
import { ATTR, SPAN, clientTraceContext } from "../../shared/telemetry/index.ts";
import type { HubVars } from "../config.ts";
import type { WireCommand } from "../hub/tunnel-state.ts";
import { hubTracing } from "./tracing.ts";

export async function traceQueueWait(vars: HubVars, commands: WireCommand[]): Promise<void> {
  const tracing = await hubTracing(vars).catch(() => undefined);
  if (!tracing?.enabled) return;
  const now = Date.now();
  for (const command of commands) {
    const parent = clientTraceContext(command.headers, undefined);
    if (!parent) continue;
    tracing
      .start(SPAN.hubQueueWait, {
        parent,
        startTime: Date.parse(command.created_at),
        attributes: { [ATTR.requestId]: command.request_id, [ATTR.channel]: command.channel },
      })
      .end(now);
  }
  await tracing.flush();
}
