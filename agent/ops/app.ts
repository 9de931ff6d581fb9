/**
 * The operator HTTP surface, as tunnel-client serves it: `/healthz` (200 `live`),
 * `/readyz` (200 `ready` once the MCP backends can serve, else 503 with the reason, in
 * plain text; the control plane is not part of it) and `/metrics` (Prometheus).
 * Airlock's stricter readiness — a poll answered recently and the key accepted, besides the
 * backends — is `/readyz?strict=1`, a JSON document with every reason and backend.
 * A Hono app with no server attached: `serve(app.fetch, …)` binds it, tests call
 * `app.request()`, and the admin UI adds its routes to the same app.
 */
import { Hono } from "hono";
import type { Registry, RegistryContentType } from "prom-client";
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
  /** tunnel-client's `/readyz` body (`ready`, `ready (mcp initialize requires auth: …)`, `mcp probe failed: …`), when known. */
  summary?: string;
  /** Why not ready, in words an operator can act on (empty when ready). */
  reasons: string[];
  controlPlane: ControlPlaneStatus;
  backends: BackendHealth[];
}

export interface ReadinessOptions {
  /** Include the control plane (Airlock's `/readyz?strict=1`); tunnel-client's rule leaves it out. */
  strict?: boolean;
}

export interface OpsDeps {
  readiness(options?: ReadinessOptions): Readiness | Promise<Readiness>;
  /** `createMetrics().registry`. */
  registry: Registry<RegistryContentType>;
  /** Known secret values; scrubbed from every body (backend errors may quote them). */
  secrets?: () => Iterable<string>;
  now?: () => number;
  /** Epoch ms the agent started; defaults to when the app was created. */
  startedAt?: number;
}

/**
 * Decide readiness: no backend starting, failed or stopped (a supervised restart does not
 * flip readiness) and, when `strict` (the default here), also a poll answered within
 * `maxPollAgeMs` with the key accepted.
 */
export function assessReadiness(input: {
  controlPlane: ControlPlaneStatus;
  backends: BackendHealth[];
  now: number;
  maxPollAgeMs: number;
  strict?: boolean;
}): Readiness {
  const { controlPlane, backends, now, maxPollAgeMs } = input;
  const reasons: string[] = [];
  if (input.strict === false) {
    // tunnel-client's rule: the control plane is not part of readiness.
  } else if (controlPlane.unauthorized) {
    reasons.push("the control plane rejected the API key (401/403); check CONTROL_PLANE_API_KEY and the tunnel id");
  } else if (controlPlane.lastPollOkAt === undefined) {
    reasons.push(
      `the control plane has not answered a poll yet${controlPlane.lastError ? `: ${controlPlane.lastError}` : ""}`,
    );
  } else if (now - controlPlane.lastPollOkAt > maxPollAgeMs) {
    const age = Math.round((now - controlPlane.lastPollOkAt) / 1000);
    reasons.push(
      `no poll answered for ${age}s${controlPlane.lastError ? `; last error: ${controlPlane.lastError}` : ""}`,
    );
  }
  for (const backend of backends) {
    if (backend.state === "up" || backend.state === "restarting") continue;
    reasons.push(`backend ${backend.name} is ${backend.state}${backend.reason ? `: ${backend.reason}` : ""}`);
  }
  return { ready: reasons.length === 0, reasons, controlPlane, backends };
}

/**
 * tunnel-client's `/readyz` body when not ready: `mcp startup probe pending` while a backend
 * starts, `mcp probe failed: …` once one failed.
 */
function readinessText(readiness: Readiness): string {
  const starting = readiness.backends.some((b) => b.state === "starting");
  if (starting) return "mcp startup probe pending";
  return `mcp probe failed: ${readiness.reasons.join("; ")}`;
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

  const text = (body: string, status: 200 | 503) => {
    const scrubbed = deps.secrets ? scrubSecrets(body, deps.secrets()) : body;
    return new Response(scrubbed, {
      status,
      headers: { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" },
    });
  };
  const assess = async (strict: boolean): Promise<Readiness> => {
    try {
      return await deps.readiness({ strict });
    } catch (error) {
      const reason = `the readiness check failed: ${error instanceof Error ? error.message : String(error)}`;
      return { ready: false, reasons: [reason], controlPlane: {}, backends: [] };
    }
  };

  // tunnel-client's body exactly; `?verbose=1` adds what Airlock knows (version, runtime, uptime).
  app.get("/healthz", (c) =>
    c.req.query("verbose") === undefined
      ? text("live", 200)
      : json(
          { status: "live", version: VERSION, runtime: RUNTIME, uptimeSeconds: Math.floor((now() - startedAt) / 1000) },
          200,
        ),
  );

  app.get("/readyz", async (c) => {
    const strict = c.req.query("strict");
    if (strict === undefined || strict === "0" || strict === "false") {
      const readiness = await assess(false);
      return text(
        readiness.summary ?? (readiness.ready ? "ready" : readinessText(readiness)),
        readiness.ready ? 200 : 503,
      );
    }
    const readiness = await assess(true);
    const body = {
      ready: readiness.ready,
      reasons: readiness.reasons,
      controlPlane: {
        ...readiness.controlPlane,
        ...(readiness.controlPlane.lastPollOkAt !== undefined
          ? { lastPollOkAgoSeconds: Math.max(0, Math.round((now() - readiness.controlPlane.lastPollOkAt) / 1000)) }
          : {}),
      },
      backends: readiness.backends.map(publicHealth),
    };
    return json(body, readiness.ready ? 200 : 503);
  });

  // tunnel-client serves its UI at `/` too: send bookmarks there to Airlock's (same access rules).
  app.get("/", (c) => c.redirect("/ui"));

  app.get(
    "/metrics",
    async () =>
      new Response(await deps.registry.metrics(), {
        headers: { "Content-Type": deps.registry.contentType, "Cache-Control": "no-store" },
      }),
  );

  return app;
}
