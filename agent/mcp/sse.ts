/**
 * The agent's one reader of Server-Sent Events (MCP's Streamable HTTP answers and
 * standalone streams), on `eventsource-parser`: each event's `data` is one JSON-RPC message.
 */
import { createParser } from "eventsource-parser";
import { isObject } from "../../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import { BodyTooLarge, parseJson } from "../runtime/body.ts";

export interface SseReadOptions {
  /** Largest single event accepted. */
  maxEventBytes: number;
  /** Aborting it cancels the body; the read then throws the signal's reason. */
  signal: AbortSignal;
  log: Logger;
  /** One message, in order; return true to stop reading (the rest of the body is cancelled). */
  onMessage(message: JsonRpcMessage): boolean;
}

/**
 * Hand each JSON-RPC message of an SSE body to `onMessage`, in order, until the body
 * ends or `onMessage` returns true. Throws {@link BodyTooLarge} for an oversized event,
 * the signal's reason once it aborted, and whatever reading the body throws.
 */
export async function readSseMessages(body: ReadableStream<Uint8Array>, options: SseReadOptions): Promise<void> {
  const { signal } = options;
  let stopped = false;
  let tooLarge = false;
  const parser = createParser({
    maxBufferSize: options.maxEventBytes,
    onError: (error) => {
      if (error.type === "max-buffer-size-exceeded") tooLarge = true;
    },
    onEvent: (event) => {
      // Empty `data:` events are priming/keep-alive events of resumable streams.
      if (stopped || event.data.trim() === "") return;
      const message = parseJson(event.data);
      if (!isObject(message)) {
        options.log.debug("skipping an SSE event that is not a JSON-RPC message", { event: event.event });
        return;
      }
      stopped = options.onMessage(message);
    },
  });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const cancel = () => {
    reader.cancel().catch(() => {});
  };
  signal.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (tooLarge) throw new BodyTooLarge();
      if (stopped) break;
    }
    if (signal.aborted) throw signal.reason;
  } finally {
    signal.removeEventListener("abort", cancel);
    cancel();
  }
}
