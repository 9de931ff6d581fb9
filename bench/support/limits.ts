/**
 * Time limits for benchmark scripts: a stuck phase fails the run with its name instead of
 * hanging it, and the whole run is capped (`AIRLOCK_BENCH_MAX_S`, 10 minutes by default).
 */

/** Exit the process with a message once `AIRLOCK_BENCH_MAX_S` seconds have passed. */
export function capRun(script: string): void {
  const maxSeconds = Number(process.env.AIRLOCK_BENCH_MAX_S ?? 600);
  const cap = setTimeout(() => {
    console.error(`${script}: not done within ${maxSeconds} s; giving up (AIRLOCK_BENCH_MAX_S raises the cap)`);
    process.exit(1);
  }, maxSeconds * 1000);
  cap.unref();
}

/** Reject when `promise` has not settled within `ms`, naming `what`. */
export function within<T>(what: string, promise: Promise<T>, ms = 180_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
