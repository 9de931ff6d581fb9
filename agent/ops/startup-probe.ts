/**
 * tunnel-client's MCP startup probe, which its `/readyz` and `mcp.startup_wait_timeout` rest on:
 * at start the agent sends the main channel's HTTP MCP server one `initialize` (with
 * `mcp.extra_headers` and `mcp.discovery_extra_headers`, tunnel-client's probe headers).
 * While it is pending `/readyz` says `mcp startup probe pending`; a 2xx makes it `ready`; a
 * 401/403 is `ready (mcp initialize requires auth: …)`; a 2026-only server's −32022 refusal of
 * the 2025 `initialize` is `ready` (the era bridge serves it); a slow server is
 * `ready (mcp startup probe timed out: …)`; anything else is `mcp probe failed: …`.
 * With `mcp.startup_wait_timeout` the probe is retried (backoff 250 ms → 2 s) until it
 * settles or the wait runs out (`mcp startup wait failed: …`), and the first poll waits for
 * it — the sidecar race fix — but polling starts either way (fail-open, as tunnel-client).
 * Unlike tunnel-client's one-shot probe, a failed probe is repeated every
 * {@link RECHECK_MS} in the background, so readiness recovers once the server answers
 * instead of staying 503 until a restart.
 */
import type { AgentConfig, HttpBackendConfig } from "../config/types.ts";
import { createHttpClient, type FetchLike, type HttpClientOptions } from "../runtime/http-client.ts";
import type { Logger } from "../../shared/log.ts";
import { VERSION } from "../version.ts";
import { readBounded } from "../runtime/body.ts";
import { isObject } from "../../shared/jsonrpc.ts";
import { LEGACY_VERSIONS, UNSUPPORTED_PROTOCOL_VERSION } from "../../shared/mcp/era.ts";

export type ProbeState =
  | { kind: "pending" }
  | { kind: "ok" }
  | { kind: "auth_required"; detail: string }
  | { kind: "timed_out"; detail: string }
  | { kind: "failed"; detail: string }
  | { kind: "wait_failed"; detail: string };

export interface StartupProbe {
  state(): ProbeState;
  /** Resolves once the probe settled (never rejects). */
  done: Promise<void>;
  close(): Promise<void>;
}

export interface StartupProbeOptions {
  backend: HttpBackendConfig;
  caBundle?: string;
  /** Static and discovery headers, sent on the probe only. */
  headers: Readonly<Record<string, string>>;
  /** `mcp.startup_wait_timeout`; 0 = one attempt. */
  waitMs: number;
  /** One attempt's budget (default 10 s, tunnel-client's). */
  attemptMs?: number;
  log: Logger;
  fetch?: FetchLike;
  sleep?: (ms: number) => Promise<void>;
  /** Pause between background re-probes after a failure (default {@link RECHECK_MS}). */
  recheckMs?: number;
}

/** The route `run` takes to an HTTP backend: its CA, proxy, Unix socket and mTLS identity. */
export function backendConnection(backend: HttpBackendConfig, caBundle?: string): HttpClientOptions {
  const caFile = backend.caFile ?? caBundle;
  return {
    ...(caFile ? { caFile } : {}),
    ...(backend.httpProxy ? { proxy: backend.httpProxy } : {}),
    ...(backend.unixSocket ? { unixSocket: backend.unixSocket } : {}),
    ...(backend.clientCert ? { clientCert: backend.clientCert } : {}),
    ...(backend.clientKey ? { clientKey: backend.clientKey } : {}),
  };
}

/** `/readyz` in tunnel-client's words for a probe state: `[ready, body]`. */
export function probeReadiness(state: ProbeState): [boolean, string] {
  switch (state.kind) {
    case "pending":
      return [false, "mcp startup probe pending"];
    case "ok":
      return [true, "ready"];
    case "auth_required":
      return [true, `ready (mcp initialize requires auth: ${state.detail})`];
    case "timed_out":
      return [true, `ready (mcp startup probe timed out: ${state.detail})`];
    case "failed":
      return [false, `mcp probe failed: ${state.detail}`];
    case "wait_failed":
      return [false, `mcp startup wait failed: ${state.detail}`];
  }
}

const INITIALIZE = {
  jsonrpc: "2.0",
  id: "airlock-startup-probe",
  method: "initialize",
  params: {
    protocolVersion: LEGACY_VERSIONS[0],
    capabilities: {},
    clientInfo: { name: "airlock-startup-probe", version: VERSION },
  },
};

type Attempt = ProbeState | { kind: "retry"; detail: string };

/** How often a failed probe is tried again in the background. */
export const RECHECK_MS = 5_000;

async function attempt(fetcher: FetchLike, options: StartupProbeOptions, attemptMs: number): Promise<Attempt> {
  const headers: Record<string, string> = {
    ...options.headers,
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
  };
  let response: Response;
  try {
    response = await fetcher(options.backend.url, {
      method: "POST",
      headers,
      body: JSON.stringify(INITIALIZE),
      signal: AbortSignal.timeout(attemptMs),
    });
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    if (name === "TimeoutError" || name === "AbortError")
      return { kind: "timed_out", detail: `no answer within ${attemptMs} ms` };
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : "";
    // Not listening yet is what the startup wait exists for.
    return { kind: "retry", detail: `${error instanceof Error ? error.message : String(error)}${cause}` };
  }
  // A 2026-only server refuses the 2025 initialize with −32022: it is up (the era bridge serves 2025 clients).
  const modernOnly =
    response.status === 400 &&
    refusesLegacyBody(await readBounded(response, 64 * 1024, AbortSignal.timeout(attemptMs)).catch(() => ""));
  if (response.status !== 400) await response.body?.cancel().catch(() => {});
  if (modernOnly) return { kind: "ok" };
  const session = response.headers.get("mcp-session-id");
  // The probe's session is ours alone: end it, so a stateful server does not keep it.
  if (session)
    await fetcher(options.backend.url, {
      method: "DELETE",
      headers: { ...options.headers, "Mcp-Session-Id": session },
      signal: AbortSignal.timeout(attemptMs),
    }).then(
      (r) => r.body?.cancel(),
      () => {},
    );
  if (response.status === 401 || response.status === 403)
    return { kind: "auth_required", detail: `HTTP ${response.status}` };
  if (response.ok) return { kind: "ok" };
  if (response.status === 502 || response.status === 503 || response.status === 504)
    return { kind: "retry", detail: `HTTP ${response.status}` };
  return { kind: "failed", detail: `HTTP ${response.status} from ${new URL(options.backend.url).origin}` };
}

/** True when an HTTP 400 body is the JSON-RPC `UnsupportedProtocolVersion` error of a modern server. */
function refusesLegacyBody(text: string): boolean {
  try {
    const body: unknown = JSON.parse(text);
    return isObject(body) && isObject(body.error) && body.error.code === UNSUPPORTED_PROTOCOL_VERSION;
  } catch {
    return false;
  }
}

export function startStartupProbe(options: StartupProbeOptions): StartupProbe {
  const client = options.fetch ? undefined : createHttpClient(backendConnection(options.backend, options.caBundle));
  const fetcher: FetchLike = options.fetch ?? client!.fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const attemptMs = options.attemptMs ?? 10_000;
  let state: ProbeState = { kind: "pending" };
  let closed = false;
  const log = options.log;

  async function run() {
    const deadline = Date.now() + options.waitMs;
    let backoff = 250;
    for (let tries = 1; ; tries++) {
      const result = await attempt(fetcher, options, attemptMs);
      if (result.kind !== "retry") {
        state = result;
        break;
      }
      if (options.waitMs <= 0) {
        state = { kind: "failed", detail: result.detail };
        break;
      }
      if (closed || Date.now() + backoff > deadline) {
        state = {
          kind: "wait_failed",
          detail: `the main MCP server did not answer within ${options.waitMs} ms: ${result.detail}`,
        };
        break;
      }
      log.warn("retrying MCP startup probe", { attempt: tries, backoff_ms: backoff, error: result.detail });
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2_000);
    }
    const [ready, text] = probeReadiness(state);
    (ready ? log.info : log.warn)(`MCP startup probe: ${text}`, { url_origin: new URL(options.backend.url).origin });
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  let rechecking: Promise<void> | undefined;
  /** After a failure, try again until the server answers (or the agent stops). */
  const recheck = () => {
    if (closed || (state.kind !== "failed" && state.kind !== "wait_failed")) return;
    timer = setTimeout(() => {
      rechecking = attempt(fetcher, options, attemptMs)
        .then(
          (result) => {
            if (result.kind !== "retry" && result.kind !== "failed") {
              state = result;
              log.info(`MCP startup probe: ${probeReadiness(state)[1]}`, {
                url_origin: new URL(options.backend.url).origin,
              });
            }
          },
          () => {},
        )
        .finally(recheck);
    }, options.recheckMs ?? RECHECK_MS);
    (timer as { unref?: () => void }).unref?.();
  };
  const done = run()
    .catch((error: unknown) => {
      state = { kind: "failed", detail: error instanceof Error ? error.message : String(error) };
    })
    .finally(recheck);
  return {
    state: () => state,
    done,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await done;
      await rechecking;
      await client?.close().catch(() => {});
    },
  };
}

/**
 * The main channel's single HTTP MCP server, when this agent polls `main` — what the startup
 * probe and OAuth discovery look at. A Harpoon-only agent leaves a configured but unpolled
 * main server alone, as tunnel-client does.
 */
export function polledMainHttpBackend(config: AgentConfig): HttpBackendConfig | undefined {
  const polled = config.controlPlane.pollChannels;
  if (polled && !polled.includes("main")) return undefined;
  const main = config.routes.find((route) => route.channel === "main");
  const backend = main?.backends.length === 1 ? main.backends[0] : undefined;
  return backend?.transport === "http" ? backend : undefined;
}

/**
 * The probe `run` starts: for a main channel served by one HTTP backend (a stdio-only main is
 * ready at once, as in tunnel-client), with its headers plus `mcp.discovery_extra_headers`.
 */
export function startMainProbe(config: AgentConfig, log: Logger): StartupProbe | undefined {
  const backend = polledMainHttpBackend(config);
  if (!backend) return undefined;
  return startStartupProbe({
    backend,
    log,
    waitMs: config.mcp.startupWaitTimeoutMs,
    headers: { ...backend.headers, ...config.mcp.discoveryExtraHeaders },
    ...(config.caBundle ? { caBundle: config.caBundle } : {}),
  });
}
