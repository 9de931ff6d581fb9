/**
 * The running agent: backends per channel, the dispatcher, the poller and the operator
 * surface, wired from a loaded configuration. `airlock run`, `airlock demo` and the
 * end-to-end tests all start the agent through {@link startAgent}.
 */
import process from "node:process";
import { encodeServerInfo } from "../shared/protocol/channels.ts";
import { AIRLOCK_CAPABILITIES_HEADER_VALUE } from "../shared/protocol/extensions.ts";
import type { Logger } from "../shared/log.ts";
import type { LoadedConfig } from "./config/types.ts";
import type { Backend, BackendHealth } from "./backends/types.ts";
import { createRouteBackend } from "./routing/route.ts";
import { childEnvironment } from "./backends/factory.ts";
import { createToolCatalog } from "./ops/tool-catalog.ts";
import { createHttpClient } from "./runtime/http-client.ts";
import { ConfigError } from "./config/errors.ts";
import { isOpenAiHost } from "./config/load.ts";
import { HARPOON_CHANNEL, polled } from "./config/routes.ts";
import { createHarpoonHttpApp, HARPOON_HTTP_PATH } from "./harpoon/http-transport.ts";
import { createControlPlaneClient } from "./control-plane/client.ts";
import { createPoster } from "./control-plane/poster.ts";
import { createPoller, type PollerStatus } from "./control-plane/poller.ts";
import { createDispatcher, type DispatcherStats } from "./dispatcher.ts";
import { combineEvents, type AgentEvents } from "./events.ts";
import { assessReadiness, createOpsApp, type Readiness, type ReadinessOptions } from "./ops/app.ts";
import { createMetrics } from "./ops/metrics.ts";
import { probeReadiness, startMainProbe, type StartupProbe } from "./ops/startup-probe.ts";
import { startProxyChecker, type ProxyChecker, type ProxyRoute } from "./ops/proxy-check.ts";
import { parseListenAddr, serve, type ServedApp } from "./runtime/serve.ts";
import { VERSION } from "./version.ts";
import { tracePosts } from "./telemetry/posts.ts";
import { tracingSettings } from "./telemetry/settings.ts";
import { startTracing } from "./telemetry/tracing.ts";
import type { Hono } from "hono";


export interface AgentDeps {
  log: Logger;
  /** Extra listeners (tests, the admin UI). */
  events?: AgentEvents;
  /** `X-Tunnel-Client-Instance-Id` (default: a fresh one); `run` also puts it on every log record. */
  instanceId?: string;
  /** Replace the control plane's `fetch` (tests). */
  fetch?: typeof fetch;
  /** How long in-flight work may take to finish on shutdown. Default 10 s. */
  shutdownGraceMs?: number;
  /** Mount extra routes (the admin UI) on the operator app before it starts serving. */
  extendOps?: (app: Hono, agent: AgentHandle) => void;
}

/** What other parts (admin UI, demo, tests) may read from a running agent. */
export interface AgentHandle {
  readonly instanceId: string;
  /** Base URL of the operator surface (`/healthz`, `/readyz`, `/metrics`, `/ui`). */
  readonly opsUrl: string;
  readonly loaded: LoadedConfig;
  backends(): BackendHealth[];
  /** Tool names per backend, as the last `tools/list` through the agent returned them. */
  tools(): Record<string, string[]>;
  controlPlane(): PollerStatus;
  queue(): DispatcherStats;
  /** Airlock's strict readiness by default (control plane included); `{ strict: false }` is tunnel-client's. */
  readiness(options?: ReadinessOptions): Readiness;
  /** Stop polling, let in-flight work finish (bounded), stop backends and the operator surface. */
  stop(): Promise<void>;
}

/** A poll answered within this window keeps the agent ready: one full hold plus its guardrail, twice. */
function maxPollAge(config: LoadedConfig["config"]): number {
  return 2 * (config.controlPlane.pollTimeoutMs + config.controlPlane.pollDeadlineGuardrailMs);
}

/** Every outbound TCP route, for the proxy check (Unix-socket routes never use a proxy). */
function proxyRoutes(config: LoadedConfig["config"]): ProxyRoute[] {
  const optional = (proxy: string | undefined) => (proxy ? { proxy } : {});
  return [
    { name: "control_plane", target: config.controlPlane.baseUrl, ...optional(config.controlPlane.httpProxy) },
    ...config.routes.flatMap((route) => route.backends.flatMap((backend) =>
      backend.transport === "http" && !backend.unixSocket ? [{ name: `mcp ${route.channel}/${backend.name}`, target: backend.url, ...optional(backend.httpProxy) }] : [])),
    ...config.harpoon.targets.flatMap((target) => (target.unixSocket ? [] : [{ name: `harpoon ${target.label}`, target: target.url, ...optional(config.harpoon.httpProxy) }])),
  ];
}

export async function startAgent(loaded: LoadedConfig, deps: AgentDeps): Promise<AgentHandle> {
  const { config } = loaded;
  const log = deps.log;
  // tunnel-client's `component` field, so log filters on it keep working.
  const component = (name: string) => log.child({ component: name });
  const mcpLog = component("mcpclient");
  const controlPlaneLog = component("controlplane");
  const channels = new Map<string, Backend>();
  // stdio servers never inherit the control-plane key or any other secret the agent resolved.
  const childEnv = childEnvironment(process.env, loaded.secrets);
  // OpenTelemetry from the standard OTEL_* variables; without an endpoint the SDK is never loaded.
  const traceSettings = tracingSettings(process.env);
  const tracing = await startTracing(traceSettings, VERSION);
  if (traceSettings) {
    log.info("tracing on", { service: traceSettings.serviceName, collector: new URL(traceSettings.url).origin, sampler: traceSettings.sampler });
  }
  // Aggregated channels report per-backend calls; `events` is assigned below, before anything runs.
  const backendCalls: AgentEvents = { backendCallFinished: (report) => events.backendCallFinished?.(report) };
  for (const route of config.routes) {
    channels.set(route.channel, createRouteBackend(route, { log: mcpLog, caBundle: config.caBundle, events: backendCalls, childEnv, tracing }));
  }
  // tunnel-client serves its built-in Harpoon only when it has somewhere to go.
  if (config.harpoon.targets.length > 0) {
    const { targets, allowPlaintextHttp, maxResponseBytes, maxRedirects, capturePayloads, httpProxy } = config.harpoon;
    // Loaded only when used: it brings the MCP SDK's server and its JSON Schema validator
    // (about 10 MiB resident on Node), which an agent without Harpoon never needs.
    const { createHarpoonBackend } = await import("./backends/harpoon.ts");
    channels.set(HARPOON_CHANNEL, createHarpoonBackend({ targets, allowPlaintextHttp, maxResponseBytes, maxRedirects, capturePayloads, httpProxy, caFile: config.caBundle, log: component("harpoon"), onCall: (record) => events.harpoonCallFinished?.(record) }));
  }
  if (config.policy !== undefined) {
    // The organisation's policy, enforced here too: refused calls never reach a backend.
    // Loaded only when configured (the policy engine and its schemas cost memory at idle).
    const [{ guardBackend, loadLocalPolicy }, { createMemoryPinStore }] = await Promise.all([
      import("./policy/guard.ts"), import("../shared/policy/pinning.ts"),
    ]);
    const policy = await loadLocalPolicy(config.policy);
    const pins = createMemoryPinStore();
    for (const [channel, backend] of channels) {
      channels.set(channel, guardBackend(backend, { policy, tunnel: config.controlPlane.tunnelId, channel, log, pins }));
    }
    log.info("local policy loaded", { default: policy.default, pinning: policy.pinning });
  }
  // What each channel's clients were last shown by tools/list, for the admin UI.
  const catalog = createToolCatalog();
  for (const [channel, backend] of channels) channels.set(channel, catalog.observe(backend));
  const backendHealth = () => [...channels.values()].map((backend) => backend.health());

  // `poller` and `readiness` are assigned below, before the first scrape can happen.
  const metrics = createMetrics({
    backends: backendHealth,
    tunnelClient: {
      tunnelId: config.controlPlane.tunnelId,
      queueCapacity: config.controlPlane.maxInflight,
      workerCapacity: config.mcp.maxConcurrentRequests,
      lastPollOkAt: () => poller.status().lastSuccessAt,
      ready: () => readiness({ strict: false }).ready,
    },
  });
  const events = deps.events ? combineEvents(metrics.events, deps.events) : metrics.events;
  // The control plane is reached through the configured proxy, CA bundle and mTLS identity.
  const controlPlaneHttp = createHttpClient({
    wholeBodies: true,
    ...(config.controlPlane.httpProxy ? { proxy: config.controlPlane.httpProxy } : {}),
    ...(config.caBundle ? { caFile: config.caBundle } : {}),
    ...(config.controlPlane.clientCert ? { clientCert: config.controlPlane.clientCert } : {}),
    ...(config.controlPlane.clientKey ? { clientKey: config.controlPlane.clientKey } : {}),
  });
  try {
    await controlPlaneHttp.ready();
  } catch (error) {
    // A CA bundle or client certificate that cannot be used is a configuration mistake.
    throw new ConfigError([{ path: config.controlPlane.clientCert ? "control_plane.client_cert" : "ca_bundle", message: (error as Error).message }]);
  }
  const client = createControlPlaneClient({
    baseUrl: config.controlPlane.baseUrl,
    urlPath: config.controlPlane.urlPath,
    tunnelId: config.controlPlane.tunnelId,
    apiKey: config.controlPlane.apiKey,
    organizationId: config.controlPlane.organizationId,
    ...(deps.instanceId ? { instanceId: deps.instanceId } : {}),
    clientName: "airlock",
    clientVersion: VERSION,
    // Only what this agent polls for, as tunnel-client declares it (the allowlist, when set, wins).
    serverInfo: encodeServerInfo([...channels.entries()].filter(([name]) => polled(name, config.controlPlane.pollChannels)).map(([name, backend]) => ({ name, procAffinity: backend.procAffinity }))),
    // Only an Airlock hub reads the capabilities; OpenAI's service gets tunnel-client's header set.
    ...(isOpenAiHost(config.controlPlane.baseUrl) ? {} : { capabilities: AIRLOCK_CAPABILITIES_HEADER_VALUE }),
    extraHeaders: config.controlPlane.extraHeaders,
    fetch: deps.fetch ?? controlPlaneHttp.fetch,
    log: controlPlaneLog,
  });
  // The tightest known limit: the configured one, or what the hub advertised on its polls.
  const maxResponseBytes = () => {
    const limits = [config.controlPlane.maxResponseBytes, client.advert()?.maxResponseBytes].filter((n): n is number => n !== undefined);
    return limits.length ? Math.min(...limits) : undefined;
  };
  const poster = createPoster({ client: tracePosts(client, tracing), log: controlPlaneLog, events, maxResponseBytes });
  const dispatcher = createDispatcher({
    backends: (channel) => channels.get(channel),
    poster,
    log: component("dispatcher"),
    events,
    maxInflight: config.controlPlane.maxInflight,
    maxConcurrent: config.mcp.maxConcurrentRequests,
    maxCommandMs: config.mcp.connectionMaxTtlMs,
    tracing,
  });
  const poller = createPoller({
    client,
    dispatcher,
    log: controlPlaneLog,
    events,
    timeoutMs: config.controlPlane.pollTimeoutMs,
    guardrailMs: config.controlPlane.pollDeadlineGuardrailMs,
    channels: config.controlPlane.pollChannels,
  });

  let probe: StartupProbe | undefined;
  let proxyChecker: ProxyChecker | undefined;
  const readiness = (options: ReadinessOptions = {}): Readiness => {
    const status = poller.status();
    const assessed = assessReadiness({
      controlPlane: {
        lastPollOkAt: status.lastSuccessAt,
        lastError: status.lastError,
        consecutiveFailures: status.consecutiveFailures,
        unauthorized: status.state === "unauthorized",
      },
      backends: backendHealth(),
      now: Date.now(),
      maxPollAgeMs: maxPollAge(config),
      strict: options.strict ?? true,
    });
    if (!probe) return assessed;
    // tunnel-client's startup probe gates readiness (and words its body) for an HTTP main channel.
    const [probeReady, summary] = probeReadiness(probe.state());
    if (probeReady) return assessed.ready ? { ...assessed, summary } : assessed;
    return { ...assessed, ready: false, reasons: [summary, ...assessed.reasons], summary };
  };
  const ops = createOpsApp({ readiness, registry: metrics.registry, secrets: () => loaded.secrets });
  const harpoon = channels.get(HARPOON_CHANNEL);
  if (harpoon && config.harpoon.additionalTransports.includes("http-streamable")) {
    ops.route(HARPOON_HTTP_PATH, createHarpoonHttpApp(harpoon, { allowRemote: config.adminUi.allowRemote, allowedHosts: config.adminUi.allowedHosts }));
  }

  let server: ServedApp | undefined;
  let stopping: Promise<void> | undefined;
  const handle: AgentHandle = {
    instanceId: client.instanceId,
    get opsUrl() { return server?.url ?? ""; },
    loaded,
    backends: backendHealth,
    tools: () => catalog.snapshot(),
    controlPlane: () => poller.status(),
    queue: () => dispatcher.stats(),
    readiness,
    stop: () => stopping ??= (async () => {
      log.info("shutting down: polling stopped, letting work in flight finish", { pending: dispatcher.stats().pending });
      proxyChecker?.stop();
      await probe?.close();
      await poller.stop();
      await dispatcher.drain(deps.shutdownGraceMs ?? 10_000);
      await Promise.all([...channels.values()].map((backend) => backend.close()));
      // Spans still buffered go out before the process ends.
      await tracing.shutdown().catch((error: unknown) => log.warn("could not export the last spans", { error: String(error) }));
      await server?.close();
      await controlPlaneHttp.close();
      log.info("stopped");
    })(),
  };
  deps.extendOps?.(ops, handle);

  const { hostname, port } = parseListenAddr(config.health.listenAddr);
  server = await serve(ops.fetch, { hostname, port, urlFile: config.health.urlFile });
  await Promise.all([...channels.values()].map((backend) => backend.start()));
  probe = startMainProbe(config, mcpLog);
  proxyChecker = await startProxyChecker({
    routes: proxyRoutes(config), env: process.env, intervalMs: config.proxy.checkIntervalMs, registry: metrics.registry, log: component("proxy"),
  });
  if (probe && config.mcp.startupWaitTimeoutMs > 0) {
    // The sidecar race: do not take work before the MCP server listens (bounded; polling starts either way).
    log.info("waiting for MCP startup probe before first control-plane poll", { timeout_ms: config.mcp.startupWaitTimeoutMs });
    void probe.done.then(() => { if (!stopping) poller.start(); });
  } else {
    poller.start();
  }
  log.info("agent started", {
    version: VERSION,
    tunnel: config.controlPlane.tunnelId,
    controlPlane: config.controlPlane.baseUrl,
    channels: [...channels.keys()],
    health: server.url,
    instance: client.instanceId,
  });
  return handle;
}
