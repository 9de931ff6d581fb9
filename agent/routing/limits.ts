/**
 * A counting semaphore per backend (`max_concurrent_requests`): a backend that is slow or
 * saturated queues its own calls and nobody else's.
 */

export interface Semaphore {
  /**
   * Wait for a slot; resolves with its release function, or undefined when `signal`
   * aborted first (the caller gave up and holds nothing).
   */
  acquire(signal: AbortSignal): Promise<(() => void) | undefined>;
  readonly active: number;
  readonly waiting: number;
}

/** `limit` slots; `Infinity` (or undefined) never waits. */
export function createSemaphore(limit = Infinity): Semaphore {
  let active = 0;
  const queue: Array<() => void> = [];

  function release(): void {
    active--;
    // Hand the slot straight to the next waiter so a newcomer cannot overtake it.
    const next = queue.shift();
    if (next) {
      active++;
      next();
    }
  }

  function slot(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  }

  return {
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
    acquire(signal) {
      if (signal.aborted) return Promise.resolve(undefined);
      if (active < limit) {
        active++;
        return Promise.resolve(slot());
      }
      return new Promise((resolve) => {
        const grant = () => {
          signal.removeEventListener("abort", giveUp);
          resolve(slot());
        };
        const giveUp = () => {
          const at = queue.indexOf(grant);
          if (at !== -1) queue.splice(at, 1);
          resolve(undefined);
        };
        queue.push(grant);
        signal.addEventListener("abort", giveUp, { once: true });
      });
    },
  };
}
