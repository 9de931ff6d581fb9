/**
 * `AbortSignal.any` keeps every combined signal reachable from a long-lived input until
 * that input aborts — on Node 20 that is a leak when one input (the agent's stop signal,
 * a backend's close signal) lives for the whole process. `linkSignals` does the same
 * job with listeners that are removed when the caller is done.
 */
export interface LinkedSignal {
  signal: AbortSignal;
  /** True when the deadline, not an input, aborted the signal. */
  readonly timedOut: boolean;
  /** Cancel the deadline only; the inputs still abort the signal (a stream whose headers came in time). */
  stopDeadline(): void;
  /** Remove the listeners and the timer; call it in `finally`. */
  dispose(): void;
}

/** One signal that aborts when any input aborts, or after `timeoutMs` when given. */
export function linkSignals(inputs: ReadonlyArray<AbortSignal | undefined>, timeoutMs?: number): LinkedSignal {
  const controller = new AbortController();
  const sources = inputs.filter((input): input is AbortSignal => input !== undefined);
  let timedOut = false;
  const onAbort = (event: Event) => controller.abort((event.target as AbortSignal).reason);
  for (const source of sources) {
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    source.addEventListener("abort", onAbort, { once: true });
  }
  const timer =
    timeoutMs === undefined || controller.signal.aborted
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError"));
        }, timeoutMs);
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    stopDeadline() {
      if (timer !== undefined) clearTimeout(timer);
    },
    dispose() {
      if (timer !== undefined) clearTimeout(timer);
      for (const source of sources) source.removeEventListener("abort", onAbort);
    },
  };
}
