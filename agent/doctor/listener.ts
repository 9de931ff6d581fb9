/**
 * Doctor's health-listener check: bind the configured address for a moment, through the
 * same serving seam `run` uses, and let it go again.
 */
import { parseListenAddr, serve } from "../runtime/serve.ts";
import { check } from "./types.ts";
import type { Check } from "./types.ts";

const WHY =
  "The health listener serves /healthz, /readyz, /metrics and the admin UI at /ui; `run` exits if it cannot bind it.";

export async function checkListener(listenAddr: string): Promise<Check> {
  let hostname: string;
  let port: number;
  try {
    ({ hostname, port } = parseListenAddr(listenAddr));
  } catch (error) {
    return check("health_listener", "FAIL", (error as Error).message, WHY, [
      "set health.listen_addr (--health.listen-addr, HEALTH_LISTEN_ADDR) to host:port",
    ]);
  }
  try {
    const served = await serve(() => new Response(null, { status: 204 }), { hostname, port });
    await served.close();
    if (port === 0)
      return check(
        "health_listener",
        "PASS",
        `${hostname}:0 binds (a free port is chosen at start; set health.url_file to publish it)`,
        WHY,
      );
    const remote = hostname !== "127.0.0.1" && hostname !== "::1" && hostname !== "localhost";
    return check(
      "health_listener",
      remote ? "WARN" : "PASS",
      `${listenAddr} is free; the admin UI will be at ${served.url}/ui${remote ? " (listening beyond loopback: /metrics and /readyz are reachable from the network; /ui stays loopback-only unless --allow-remote-ui)" : ""}`,
      WHY,
      remote
        ? [
            "bind 127.0.0.1 unless probes from other hosts need the port, and restrict it with a firewall or NetworkPolicy",
          ]
        : undefined,
    );
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    const inUse = /EADDRINUSE|in use|AddrInUse/i.test(text);
    return check("health_listener", "FAIL", inUse ? `${listenAddr} is already in use by another process` : text, WHY, [
      inUse
        ? "stop the other process (if it is an Airlock or tunnel-client already running, `airlock health --port " +
          port +
          "` shows its state)"
        : "choose an address this user may bind",
      "or choose another address: --health.listen-addr 127.0.0.1:0 picks a free port (with health.url_file recording it)",
      "rerun: airlock doctor",
    ]);
  }
}
