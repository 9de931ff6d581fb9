/**
 * The agent's spans for one command: `dispatch` from the poll that brought it to its end,
 * `queue_wait` until a worker takes it, `execute` while it runs (its carrier becomes the
 * command's `traceparent`, so the backend exchange and the response posts are its
 * children). The dispatcher's clock is monotonic; spans need wall time, so times are
 * converted once, against the moment of the conversion.
 */
import { ATTR, SPAN, callAttributes, clientTraceContext } from "../../shared/telemetry/index.ts";
import type { KnownCommand, StreamOpenCommand } from "../../shared/protocol/index.ts";
import type { TraceSpan, Tracing } from "./tracing.ts";

export interface CommandTrace {
  dispatch: TraceSpan;
  /** Wall time (epoch ms) the command was received. */
  receivedAt: number;
  execute?: TraceSpan;
}

/** Start the dispatch span of a command received `ageMs` ago; its parent is the command's `traceparent` (the hub's hand-off). */
export function traceReceived(
  tracing: Tracing,
  command: KnownCommand | StreamOpenCommand,
  channel: string | undefined,
  ageMs: number,
): CommandTrace {
  const receivedAt = Date.now() - Math.max(0, ageMs);
  const parent = clientTraceContext(command.headers ?? undefined, undefined);
  const dispatch = tracing.start(SPAN.dispatch, {
    kind: "consumer",
    startTime: receivedAt,
    ...(parent ? { parent } : {}),
    attributes: {
      [ATTR.requestId]: command.request_id,
      [ATTR.commandType]: command.command_type,
      ...(channel === undefined ? {} : { [ATTR.channel]: channel }),
      ...(command.command_type === "jsonrpc" ? callAttributes(command.jsonrpc) : {}),
    },
  });
  return { dispatch, receivedAt };
}

/** A worker took the command: its queue wait ends, its execution starts. */
export function traceStarted(tracing: Tracing, trace: CommandTrace, requestId: string): void {
  const now = Date.now();
  tracing.start(SPAN.agentQueueWait, { parent: trace.dispatch.carrier, startTime: trace.receivedAt }).end(now);
  trace.execute = tracing.start(SPAN.execute, { parent: trace.dispatch.carrier, startTime: now });
  tracing.running.set(requestId, trace.execute.carrier);
}

/** The command ended with `outcome`. */
export function traceFinished(tracing: Tracing, trace: CommandTrace, requestId: string, outcome: string): void {
  tracing.running.delete(requestId);
  for (const span of [trace.execute, trace.dispatch]) {
    if (!span) continue;
    span.set({ [ATTR.outcome]: outcome });
    if (outcome !== "ok") span.fail(outcome);
    span.end();
  }
}
