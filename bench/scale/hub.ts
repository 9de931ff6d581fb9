/**
 * The hub `bench/scale.ts` measures, in a process of its own so that its RSS (and its
 * workerd child's) holds the hub alone, not the simulated agents and clients.
 * AIRLOCK_AUDIT=off runs it without its audit log. Prints one JSON line (`{"url": …}`) once it listens; closes the hub on SIGTERM.
 *
 *   node --expose-gc --import tsx bench/scale/hub.ts <tunnels>
 */
import { startTestHub } from "../../test/support/hub.ts";

const tunnels = Number(process.argv[2] ?? 9);
const hub = await startTestHub({
  tunnels,
  audit: process.env.AIRLOCK_AUDIT !== "off",
  // Liveness and hold above the bench's 25 s polls, so an idle agent stays listed between polls;
  // room for every session the bench opens (it measures them, the LRU must not drop them).
  settings: { livenessMs: 60_000, maxPollHoldMs: 30_000, maxSessions: 20_000 },
});
process.stdout.write(`${JSON.stringify({ url: hub.url.href })}\n`);
// SIGUSR2: collect garbage (run with --expose-gc), so the bench reads RSS without garbage.
const gc = (globalThis as { gc?: () => void }).gc;
process.on("SIGUSR2", () => gc?.());
process.once("SIGTERM", () => {
  void hub.close().finally(() => process.exit(0));
});
