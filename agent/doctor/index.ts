/**
 * `airlock doctor`: every check `run` depends on, before you depend on `run`. Checks run in
 * a fixed order (configuration, backends, health listener, control plane) and each reports
 * instead of throwing; a check that cannot run because an earlier one failed says SKIP.
 */
import type { LoadedConfig } from "../config/types.ts";
import type { FetchLike } from "../runtime/http-client.ts";
import { scrubSecrets } from "../../shared/log.ts";
import { checkBackends } from "./backends.ts";
import { shellWord } from "./command.ts";
import { checkConfig } from "./config.ts";
import type { ConfigCheckInput } from "./config.ts";
import { checkControlPlane } from "./control-plane.ts";
import { checkListener } from "./listener.ts";
import { check } from "./types.ts";
import type { Check, DoctorReport } from "./types.ts";

export type { Check, CheckStatus, DoctorReport } from "./types.ts";

export interface DoctorOptions extends ConfigCheckInput {
  /** Control-plane HTTP (default global fetch). */
  fetch?: typeof fetch;
  /** Backend reachability and metadata GETs (default: a CA-aware client per backend). */
  backendFetch?: FetchLike;
  /** Wall clock, epoch ms, for the clock check. */
  now?: () => number;
  /** Per network step, ms (default 10 000). */
  timeoutMs?: number;
  /** Skip the control-plane checks (no network call to the control plane). */
  offline?: boolean;
  /** Opt-in: one real poll to prove tunnel use permission (it can take a live user's command). */
  poll?: boolean;
  /** Opt-in: start stdio servers for an MCP `initialize` handshake. */
  probeMcp?: boolean;
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const config = await checkConfig(options);
  const checks: Check[] = [...config.checks];
  const loaded: LoadedConfig | undefined = config.loaded;
  if (loaded) {
    const cfg = loaded.config;
    const [backends, listener, controlPlane] = await Promise.all([
      checkBackends(cfg.routes, {
        env: options.env,
        cwd: options.cwd,
        timeoutMs,
        secrets: loaded.secrets,
        probeMcp: options.probeMcp ?? false,
        ...(options.backendFetch ? { fetch: options.backendFetch } : {}),
        ...(cfg.caBundle ? { caBundle: cfg.caBundle } : {}),
      }),
      checkListener(cfg.health.listenAddr),
      options.offline
        ? Promise.resolve([
            check("control_plane", "SKIP", "skipped (--offline)", "The control-plane checks were not run."),
          ])
        : config.credentialsOk
          ? checkControlPlane(cfg, {
              timeoutMs,
              poll: options.poll ?? false,
              ...(options.fetch ? { fetch: options.fetch } : {}),
              ...(options.now ? { now: options.now } : {}),
            })
          : Promise.resolve([
              check(
                "control_plane",
                "SKIP",
                "blocked by tunnel_id / control_plane_api_key",
                "The control plane can only be asked with a valid tunnel id and API key.",
              ),
            ]),
    ]);
    checks.push(...backends, listener, ...controlPlane);
  }
  // URLs and server messages may carry a resolved secret (a token in a query string, say).
  const secrets = loaded?.secrets ?? [];
  const clean = checks.map((c) => ({
    ...c,
    summary: scrubSecrets(c.summary, secrets),
    ...(c.fix ? { fix: c.fix.map((f) => scrubSecrets(f, secrets)) } : {}),
  }));
  const failed = clean.filter((c) => c.status === "FAIL").map((c) => c.id);
  const runArgs = config.runArgs.map(shellWord).join(" ");
  const next = failed.length
    ? [`fix the failed checks, then: airlock doctor${runArgs ? ` ${runArgs}` : ""} --explain`]
    : [`airlock run${runArgs ? ` ${runArgs}` : ""}`, loaded ? uiHint(loaded.config.health.listenAddr) : ""].filter(
        Boolean,
      );
  return { result: failed.length ? "fail" : "ok", failed, checks: clean, next };
}

function uiHint(listenAddr: string): string {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d+)$/.exec(listenAddr.trim());
  const port = match?.[3];
  if (!match || port === "0") return "then find the admin UI through health.url_file: airlock health --url-file FILE";
  const host = match[1] ?? match[2] ?? "";
  const shown =
    host === "" || host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
  return `then open http://${shown}:${port}/ui, or: airlock health --port ${port}`;
}
