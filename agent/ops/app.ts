/**
 * The operator HTTP surface, tunnel-client compatible: `/healthz` (the process lives),
 * `/readyz` (the control plane answered recently and the backends can serve) and
 * `/metrics` (Prometheus). A Hono app with no server attached: `serve(app.fetch, …)` binds
 * it, tests call `app.request()`, and the admin UI adds its routes to the same app.
 */
import { Hono } from "hono";
import type { Registry } from "prom-client";
import type { BackendHealth } from "../backends/types.ts";
import { scrubSecrets } from "../../shared/log.ts";
import { RUNTIME, VERSION } from "../version.ts";

/** What `/readyz` knows about the control-plane connection. */
export interface ControlPlaneStatus {
  /** Epoch ms when a poll last got an answer (commands or none). */
  lastPollOkAt?: number;
  /** The latest poll failure, in words. */
  lastError?: string;
  consecutiveFailures?: number;
  /** The control plane refused the key (401/403): an operator must act. */
  unauthorized?: boolean;
}

export interface Readiness {
  ready: boolean;
  /** Why not ready, in words an operator can act on (empty when ready). */
  reasons: string[];
  controlPlane: ControlPlaneStatus;
  backends: BackendHealth[];
}

export interface OpsDeps {
  readiness(): Readiness | Promise<Readiness>;
  /** `createMetrics().registry`. */
  registry: Registry;
  /** Known secret values; scrubbed from every body (backend errors may quote them). */
  secrets?: () => Iterable<string>;
  now?: () => number;
  /** Epoch ms the agent started; defaults to when the app was created. */
  startedAt?: number;
}

/**
 * Decide readiness the common way: a poll answered within `maxPollAgeMs`, the key accepted,
 * and no backend starting, failed or stopped (a supervised restart does not flip readiness).
 */
export function assessReadiness(input: { controlPlane: ControlPlaneStatus; backends: BackendHealth[]; now: number; maxPollAgeMs: number }): Readiness {
  const { controlPlane, backends, now, maxPollAgeMs } = input;
  const reasons: string[] = [];
  if (controlPlane.unauthorized) {
    reasons.push("the control plane rejected the API key (401/403); check CONTROL_PLANE_API_KEY and the tunnel id");
  } else if (controlPlane.lastPollOkAt === undefined) {
    reasons.push(`the control plane has not answered a poll yet${controlPlane.lastError ? `: ${controlPlane.lastError}` : ""}`);
  } else if (now - controlPlane.lastPollOkAt > maxPollAgeMs) {
    const age = Math.round((now - controlPlane.lastPollOkAt) / 1000);
    reasons.push(`no poll answered for ${age}s${controlPlane.lastError ? `; last error: ${controlPlane.lastError}` : ""}`);
  }
  for (const backend of backends) {
    if (backend.state === "up" || backend.state === "restarting") continue;
    reasons.push(`backend ${backend.name} is ${backend.state}${backend.reason ? `: ${backend.reason}` : ""}`);
  }
  return { ready: reasons.length === 0, reasons, controlPlane, backends };
}

/** Health without the stderr tail: `/readyz` may be reachable beyond the operator's terminal. */
function publicHealth(health: BackendHealth): Omit<BackendHealth, "stderrTail"> {
  const { stderrTail: _omitted, members, ...rest } = health;
  return members ? { ...rest, members: members.map(publicHealth) } : rest;
}

export function createOpsApp(deps: OpsDeps): Hono {
  const now = deps.now ?? Date.now;
  const startedAt = deps.startedAt ?? now();
  const app = new Hono();
  const json = (body: unknown, status: 200 | 503) => {
    const text = JSON.stringify(body, null, 2);
    return new Response(deps.secrets ? scrubSecrets(text, deps.secrets()) : text, {
      status,
      headers: { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" },
    });
  };

  app.get("/healthz", () =>
    json({ status: "live", version: VERSION, runtime: RUNTIME, uptimeSeconds: Math.floor((now() - startedAt) / 1000) }, 200));

  app.get("/readyz", async () => {
    let readiness: Readiness;
    try {
      readiness = await deps.readiness();
    } catch (error) {
      const reason = `the readiness check failed: ${error instanceof Error ? error.message : String(error)}`;
      return json({ ready: false, reasons: [reason], controlPlane: {}, backends: [] }, 503);
    }
    const body = {
      ready: readiness.ready,
      reasons: readiness.reasons,
      controlPlane: {
        ...readiness.controlPlane,
        ...(readiness.controlPlane.lastPollOkAt !== undefined ? { lastPollOkAgoSeconds: Math.max(0, Math.round((now() - readiness.controlPlane.lastPollOkAt) / 1000)) } : {}),
      },
      backends: readiness.backends.map(publicHealth),
    };
    return json(body, readiness.ready ? 200 : 503);
  });

  app.get("/metrics", async () =>
    new Response(await deps.registry.metrics(), { headers: { "Content-Type": deps.registry.contentType, "Cache-Control": "no-store" } }));

  return app;
}
