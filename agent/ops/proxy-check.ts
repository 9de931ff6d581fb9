/**
 * tunnel-client's proxy health check (`proxy.check_interval`, default 60 s): for every outbound
 * route that goes through a proxy (the control plane, each HTTP MCP channel, each Harpoon
 * target; the proxy explicit or from HTTP(S)_PROXY/NO_PROXY), open a TCP connection to the
 * proxy, then ask it to `CONNECT` to the route's target. Results feed tunnel-client's
 * `proxy_*` metrics, labelled by `proxy_id` = sha256 of the proxy's `scheme://host[:port]`
 * (never its credentials), so a broken proxy shows before a user's call hits it.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Counter, Gauge, Histogram, type Registry, type RegistryContentType } from "prom-client";
import type { Logger } from "../../shared/log.ts";
import { OTEL_DEFAULT_BUCKETS } from "./metrics-tunnel-client.ts";

export interface ProxyRoute {
  /** What the route serves, for logs: `control_plane`, `mcp main`, `harpoon auth`. */
  name: string;
  target: string;
  /** The explicit proxy, when one is configured for this route. */
  proxy?: string;
}

/** The proxy a route uses: its explicit one, else the standard variables (Go's rules, simplified). */
export function effectiveProxy(
  route: ProxyRoute,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (route.proxy) return route.proxy;
  const target = new URL(route.target);
  const read = (name: string) => (env[name] ?? env[name.toLowerCase()] ?? "").trim();
  const noProxy = read("NO_PROXY")
    .split(",")
    .map((entry) => entry.trim().toLowerCase())
    .filter(Boolean);
  const host = target.hostname.toLowerCase();
  if (
    noProxy.some(
      (entry) =>
        entry === "*" ||
        host === entry.replace(/^\./, "") ||
        host.endsWith(entry.startsWith(".") ? entry : `.${entry}`),
    )
  )
    return undefined;
  const proxy = target.protocol === "https:" ? read("HTTPS_PROXY") || read("HTTP_PROXY") : read("HTTP_PROXY");
  return proxy || undefined;
}

/** tunnel-client's `proxy_id`: sha256 (hex) of the lower-cased `scheme://host[:port]`. */
export async function proxyId(proxy: string): Promise<string> {
  const url = new URL(proxy);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${url.protocol.replace(":", "")}://${url.host}`.toLowerCase()),
  );
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function hostPort(url: URL): { host: string; port: number } {
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  return { host: url.hostname.replace(/^\[|\]$/g, ""), port };
}

type Phase = { phase: "tcp" | "connect"; reason: string };

/** TCP to the proxy (TLS for an https proxy), then `CONNECT target`; resolves with phase durations or the failure. */
async function checkOnce(
  proxy: URL,
  target: URL,
  timeoutMs: number,
): Promise<{ tcpMs: number; connectMs?: number; failure?: Phase }> {
  const started = performance.now();
  const { host, port } = hostPort(proxy);
  let socket: Socket;
  try {
    socket = await new Promise<Socket>((resolve, reject) => {
      const s = proxy.protocol === "https:" ? tlsConnect({ host, port, servername: host }) : tcpConnect({ host, port });
      s.setTimeout(timeoutMs, () => {
        s.destroy();
        reject(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" }));
      });
      s.once(proxy.protocol === "https:" ? "secureConnect" : "connect", () => resolve(s));
      s.once("error", reject);
    });
  } catch (error) {
    const reason = (error as { code?: string }).code === "ETIMEDOUT" ? "timeout" : "dial_error";
    return { tcpMs: performance.now() - started, failure: { phase: "tcp", reason } };
  }
  const tcpMs = performance.now() - started;
  const { host: targetHost, port: targetPort } = hostPort(target);
  const authority = `${targetHost.includes(":") ? `[${targetHost}]` : targetHost}:${targetPort}`;
  const auth = proxy.username
    ? `Proxy-Authorization: Basic ${btoa(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`)}\r\n`
    : "";
  try {
    const status = await new Promise<number>((resolve, reject) => {
      let head = "";
      socket.setTimeout(timeoutMs, () => reject(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
      socket.on("data", (chunk: Buffer) => {
        head += chunk.toString("latin1");
        const line = head.split("\r\n")[0] ?? "";
        if (head.includes("\r\n")) resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(line)?.[1] ?? 0));
      });
      socket.once("error", reject);
      socket.once("end", () => reject(new Error("the proxy closed the connection")));
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`);
    });
    const connectMs = performance.now() - started - tcpMs;
    return status === 200
      ? { tcpMs, connectMs }
      : { tcpMs, connectMs, failure: { phase: "connect", reason: "bad_status" } };
  } catch (error) {
    const reason = (error as { code?: string }).code === "ETIMEDOUT" ? "timeout" : "connect_error";
    return { tcpMs, failure: { phase: "connect", reason } };
  } finally {
    socket.destroy();
  }
}

export interface ProxyChecker {
  /** Run one round now (tests, and the first round at start). */
  checkAll(): Promise<void>;
  stop(): void;
}

export interface ProxyCheckerOptions {
  routes: readonly ProxyRoute[];
  env: Readonly<Record<string, string | undefined>>;
  intervalMs: number;
  registry: Registry<RegistryContentType>;
  log: Logger;
  timeoutMs?: number;
  now?: () => number;
}

/** Register the `proxy_*` metrics and check every proxied route each `intervalMs` (nothing to do without a proxy). */
export async function startProxyChecker(options: ProxyCheckerOptions): Promise<ProxyChecker> {
  const now = options.now ?? Date.now;
  const routes = (
    await Promise.all(
      options.routes.map(async (route) => {
        const proxy = effectiveProxy(route, options.env);
        return proxy ? [{ ...route, proxyUrl: new URL(proxy), id: await proxyId(proxy) }] : [];
      }),
    )
  ).flat();
  const status = new Map<string, { healthy: boolean; lastCheck?: number; lastSuccess?: number }>(
    routes.map((r) => [r.id, { healthy: true }]),
  );
  const registers = [options.registry];
  const perProxy = (
    name: string,
    help: string,
    read: (s: { healthy: boolean; lastCheck?: number; lastSuccess?: number }) => number | undefined,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ["proxy_id"],
      registers,
      collect() {
        this.reset();
        for (const [id, s] of status) {
          const value = read(s);
          if (value !== undefined) this.set({ proxy_id: id }, value);
        }
      },
    });
  perProxy("proxy_health_state", "Reports 1 when the proxy is healthy and 0 when unhealthy", (s) =>
    s.healthy ? 1 : 0,
  );
  perProxy("proxy_last_check_timestamp", "Unix timestamp of the last proxy check", (s) =>
    s.lastCheck === undefined ? undefined : Math.floor(s.lastCheck / 1000),
  );
  perProxy("proxy_last_success_timestamp", "Unix timestamp of the last successful proxy check", (s) =>
    s.lastSuccess === undefined ? undefined : Math.floor(s.lastSuccess / 1000),
  );
  const phases = new Histogram({
    name: "proxy_check_phase_duration_seconds",
    help: "Proxy check phase durations",
    labelNames: ["proxy_id", "phase"],
    buckets: OTEL_DEFAULT_BUCKETS,
    registers,
  });
  const failures = new Counter({
    name: "proxy_check_failures_total",
    help: "Proxy check failures by phase",
    labelNames: ["proxy_id", "phase", "reason"],
    registers,
  });

  const checkAll = async () => {
    await Promise.all(
      routes.map(async (route) => {
        const result = await checkOnce(route.proxyUrl, new URL(route.target), options.timeoutMs ?? 5_000);
        const entry = status.get(route.id)!;
        entry.lastCheck = now();
        phases.observe({ proxy_id: route.id, phase: "tcp" }, result.tcpMs / 1000);
        if (result.connectMs !== undefined)
          phases.observe({ proxy_id: route.id, phase: "connect" }, result.connectMs / 1000);
        if (result.failure) {
          entry.healthy = false;
          failures.inc({ proxy_id: route.id, ...result.failure });
          options.log.warn("proxy check failed", {
            route: route.name,
            proxy: route.proxyUrl.origin,
            proxy_id: route.id,
            phase: result.failure.phase,
            reason: result.failure.reason,
          });
        } else {
          entry.healthy = true;
          entry.lastSuccess = entry.lastCheck;
        }
      }),
    );
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = routes.length === 0;
  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void checkAll().finally(loop);
    }, options.intervalMs);
    (timer as { unref?: () => void }).unref?.();
  };
  if (!stopped) void checkAll().finally(loop);
  return {
    checkAll,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
