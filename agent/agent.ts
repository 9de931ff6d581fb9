/**
 * The running agent: backends per channel, the dispatcher, the poller and the operator
 * surface, wired from a loaded configuration. `airlock run`, `airlock demo` and the
 * end-to-end tests all start the agent through {@link startAgent}.
 */
import process from "node:process";
import { encodeServerInfo } from "../shared/protocol/channels.ts";
import { AIRLOCK_CAPABILITIES_HEADER_VALUE } from "../shared/protocol/extensions.ts";
import type { Logger } from "../shared/log.ts";
import type { AgentConfig, LoadedConfig } from "./config/types.ts";
import type { Backend, BackendHealth } from "./backends/types.ts";
import { createRouteBackend } from "./routing/route.ts";
import { childEnvironment } from "./backends/factory.ts";
import { createToolCatalog } from "./ops/tool-catalog.ts";
import { createHttpClient, measuredFetch, type HttpClient } from "./runtime/http-client.ts";
import { ConfigError } from "./config/errors.ts";
import { isOpenAiHost } from "./config/load.ts";
import { HARPOON_CHANNEL, polled } from "./config/routes.ts";
import { createHarpoonHttpApp, HARPOON_HTTP_PATH } from "./harpoon/http-transport.ts";
import { createControlPlaneClient, type ControlPlaneClient } from "./control-plane/client.ts";
import { startTunnelMetadataFetch, type TunnelMeta, type TunnelMetadataFetch } from "./control-plane/metadata-fetch.ts";
import { createPoster } from "./control-plane/poster.ts";
import { createPoller, type Poller, type PollerStatus } from "./control-plane/poller.ts";
import { createDispatcher, type Dispatcher, type DispatcherStats } from "./dispatcher.ts";
import { combineEvents, type AgentEvents } from "./events.ts";
import { assessReadiness, createOpsApp, type Readiness, type ReadinessOptions } from "./ops/app.ts";
import { createMetrics, type AgentMetrics } from "./ops/metrics.ts";
import { probeReadiness, startMainProbe, type StartupProbe } from "./ops/startup-probe.ts";
import type { HarpoonBackend } from "./backends/harpoon.ts";
import type { HarpoonRegistry } from "./harpoon/registry.ts";
import { discoveryReadiness, discoveryTarget, startOAuthDiscovery, type OAuthDiscovery } from "./oauth/discovery.ts";
import { startProxyChecker, type ProxyChecker, type ProxyRoute } from "./ops/proxy-check.ts";
import { parseListenAddr, serve, type ServedApp } from "./runtime/serve.ts";
import { VERSION } from "./version.ts";
import { tracePosts } from "./telemetry/posts.ts";
import { tracingSettings } from "./telemetry/settings.ts";
import { startTracing, type Tracing } from "./telemetry/tracing.ts";
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
  /** Read the tunnel's metadata once serving, as tunnel-client's `run` does (for its started line). */
  fetchTunnelMetadata?: boolean;
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
  /** The tunnel's name and description, waiting at most `waitMs` (undefined: not fetched, failed or not asked for). */
  tunnelMetadata(waitMs: number): Promise<TunnelMeta | undefined>;
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
    ...config.routes.flatMap((route) =>
      route.backends.flatMap((backend) =>
        backend.transport === "http" && !backend.unixSocket
          ? [{ name: `mcp ${route.channel}/${backend.name}`, target: backend.url, ...optional(backend.httpProxy) }]
          : [],
      ),
    ),
    ...config.harpoon.targets.flatMap((target) =>
      target.unixSocket
        ? []
        : [{ name: `harpoon ${target.label}`, target: target.url, ...optional(config.harpoon.httpProxy) }],
    ),
  ];
}

/** What {@link startAgent} starts once everything is wired; absent until then, so a stop during start-up skips it. */
interface Started {
  server?: ServedApp;
  probe?: StartupProbe;
  /** OAuth discovery of the main MCP server, and the connection pool it uses. */
  oauth?: { discovery: OAuthDiscovery; client: HttpClient };
  proxyChecker?: ProxyChecker;
  metadata?: TunnelMetadataFetch;
  stopping?: Promise<void>;
}

/**
 * Wire and start the agent, step by step: tracing, backends per channel (policy-guarded when
 * configured), metrics, the control plane and its work loop, readiness, the operator app; then
 * serve and poll. The returned handle's `stop` undoes it in the safe order ({@link stopAgent}).
 */
export async function startAgent(loaded: LoadedConfig, deps: AgentDeps): Promise<AgentHandle> {
  const { config } = loaded;
  const log = deps.log;
  const started: Started = {};
  const tracing = await startAgentTracing(log);
  // Backends exist before the metrics that count their calls; they report through `events`,
  // assigned below, before anything runs.
  let events: AgentEvents = {};
  const channels = await createChannels(loaded, log, () => events, tracing);
  // Taken before any wrapper hides it: OAuth discovery registers the targets it finds here.
  const harpoonRegistry = (channels.get(HARPOON_CHANNEL) as HarpoonBackend | undefined)?.registry;
  if (config.policy !== undefined) await guardChannels(channels, config, log);
  // What each channel's clients were last shown by tools/list, for the admin UI.
  const catalog = createToolCatalog();
  for (const [channel, backend] of channels) channels.set(channel, catalog.observe(backend));
  const backendHealth = () => [...channels.values()].map((backend) => backend.health());

  // `poller` and `readiness` are assigned below, before the first scrape can happen.
  const metrics = createAgentMetrics(
    config,
    backendHealth,
    () => poller.status().lastSuccessAt,
    () => readiness({ strict: false }).ready,
    tracing.enabled,
  );
  events = deps.events ? combineEvents(metrics.events, deps.events) : metrics.events;
  const controlPlaneLog = component(log, "controlplane");
  const { client, http: controlPlaneHttp } = await connectControlPlane(loaded, channels, deps, controlPlaneLog, events);
  const { dispatcher, poller } = createWorkLoop(config, channels, client, {
    log,
    controlPlaneLog,
    events,
    tracing,
    oauth: () => started.oauth?.discovery,
  });
  const readiness = readinessCheck(
    config,
    poller,
    backendHealth,
    () => started.probe,
    () => started.oauth?.discovery,
  );
  const ops = createAgentOps(loaded, channels, readiness, metrics.registry);

  const handle: AgentHandle = {
    instanceId: client.instanceId,
    get opsUrl() {
      return started.server?.url ?? "";
    },
    loaded,
    backends: backendHealth,
    tools: () => catalog.snapshot(),
    controlPlane: () => poller.status(),
    queue: () => dispatcher.stats(),
    readiness,
    tunnelMetadata: (waitMs) => started.metadata?.wait(waitMs) ?? Promise.resolve(undefined),
    stop: () =>
      (started.stopping ??= stopAgent({
        log,
        started,
        poller,
        dispatcher,
        channels,
        tracing,
        controlPlaneHttp,
        graceMs: deps.shutdownGraceMs ?? 10_000,
      })),
  };
  deps.extendOps?.(ops, handle);
  await startServing(config, {
    log,
    started,
    ops,
    channels,
    poller,
    registry: metrics.registry,
    instanceId: client.instanceId,
    harpoonRegistry,
  });
  if (deps.fetchTunnelMetadata) started.metadata = startTunnelMetadataFetch(client, controlPlaneLog);
  return handle;
}

/** tunnel-client's `component` log field, so log filters on it keep working. */
function component(log: Logger, name: string): Logger {
  return log.child({ component: name });
}

/** OpenTelemetry from the standard OTEL_* variables; without an endpoint the SDK is never loaded. */
async function startAgentTracing(log: Logger): Promise<Tracing> {
  const traceSettings = tracingSettings(process.env);
  const tracing = await startTracing(traceSettings, VERSION);
  if (traceSettings) {
    log.info("tracing on", {
      service: traceSettings.serviceName,
      collector: new URL(traceSettings.url).origin,
      sampler: traceSettings.sampler,
    });
  }
  return tracing;
}

/** One backend per channel: each route's, and the built-in Harpoon when it has targets. */
async function createChannels(
  loaded: LoadedConfig,
  log: Logger,
  events: () => AgentEvents,
  tracing: Tracing,
): Promise<Map<string, Backend>> {
  const { config } = loaded;
  const channels = new Map<string, Backend>();
  // stdio servers never inherit the control-plane key or any other secret the agent resolved.
  const childEnv = childEnvironment(process.env, loaded.secrets);
  // Aggregated channels report per-backend calls.
  const backendCalls: AgentEvents = { backendCallFinished: (report) => events().backendCallFinished?.(report) };
  const mcpLog = component(log, "mcpclient");
  for (const route of config.routes) {
    channels.set(
      route.channel,
      createRouteBackend(route, {
        log: mcpLog,
        caBundle: config.caBundle,
        events: backendCalls,
        childEnv,
        tracing,
        observeHttp: (request) => events().httpRequestFinished?.(request),
      }),
    );
  }
  // tunnel-client serves its built-in Harpoon only when it has somewhere to go: configured
  // targets, or `harpoon` polled beside `main`, where OAuth discovery will register some.
  if (config.harpoon.targets.length > 0 || config.controlPlane.pollChannels?.includes(HARPOON_CHANNEL)) {
    const { targets, allowPlaintextHttp, maxResponseBytes, maxRedirects, capturePayloads, httpProxy } = config.harpoon;
    // Loaded only when used: it brings the MCP SDK's server and its JSON Schema validator
    // (about 10 MiB resident on Node), which an agent without Harpoon never needs.
    const { createHarpoonBackend } = await import("./backends/harpoon.ts");
    channels.set(
      HARPOON_CHANNEL,
      createHarpoonBackend({
        targets,
        allowPlaintextHttp,
        maxResponseBytes,
        maxRedirects,
        capturePayloads,
        httpProxy,
        caFile: config.caBundle,
        log: component(log, "harpoon"),
        onCall: (record) => events().harpoonCallFinished?.(record),
      }),
    );
  }
  return channels;
}

/**
 * The organisation's policy, enforced here too: refused calls never reach a backend.
 * Loaded only when configured (the policy engine and its schemas cost memory at idle).
 */
async function guardChannels(channels: Map<string, Backend>, config: AgentConfig, log: Logger): Promise<void> {
  const [{ guardBackend, loadLocalPolicy }, { createMemoryPinStore }] = await Promise.all([
    import("./policy/guard.ts"),
    import("../shared/policy/pinning.ts"),
  ]);
  const policy = await loadLocalPolicy(config.policy!);
  const pins = createMemoryPinStore();
  for (const [channel, backend] of channels) {
    channels.set(channel, guardBackend(backend, { policy, tunnel: config.controlPlane.tunnelId, channel, log, pins }));
  }
  log.info("local policy loaded", { default: policy.default, pinning: policy.pinning });
}

function createAgentMetrics(
  config: AgentConfig,
  backends: () => BackendHealth[],
  lastPollOkAt: () => number | undefined,
  ready: () => boolean,
  exemplars: boolean,
): AgentMetrics {
  return createMetrics({
    backends,
    // Exemplars (trace ids on the latency histogram) only when there are traces to point at.
    exemplars,
    tunnelClient: {
      tunnelId: config.controlPlane.tunnelId,
      queueCapacity: config.controlPlane.maxInflight,
      workerCapacity: config.mcp.maxConcurrentRequests,
      lastPollOkAt,
      ready,
    },
  });
}

/** The control-plane client, reached through the configured proxy, CA bundle and mTLS identity. */
async function connectControlPlane(
  loaded: LoadedConfig,
  channels: Map<string, Backend>,
  deps: AgentDeps,
  log: Logger,
  events: AgentEvents,
): Promise<{ client: ControlPlaneClient; http: HttpClient }> {
  const cp = loaded.config.controlPlane;
  const http = createHttpClient({
    nodeHttp: "whole",
    ...(cp.httpProxy ? { proxy: cp.httpProxy } : {}),
    ...(loaded.config.caBundle ? { caFile: loaded.config.caBundle } : {}),
    ...(cp.clientCert ? { clientCert: cp.clientCert } : {}),
    ...(cp.clientKey ? { clientKey: cp.clientKey } : {}),
  });
  try {
    await http.ready();
  } catch (error) {
    // A CA bundle or client certificate that cannot be used is a configuration mistake.
    throw new ConfigError([
      { path: cp.clientCert ? "control_plane.client_cert" : "ca_bundle", message: (error as Error).message },
    ]);
  }
  const client = createControlPlaneClient({
    baseUrl: cp.baseUrl,
    urlPath: cp.urlPath,
    tunnelId: cp.tunnelId,
    apiKey: cp.apiKey,
    organizationId: cp.organizationId,
    ...(deps.instanceId ? { instanceId: deps.instanceId } : {}),
    clientName: "airlock",
    clientVersion: VERSION,
    // Only what this agent polls for, as tunnel-client declares it (the allowlist, when set, wins).
    serverInfo: encodeServerInfo(
      [...channels.entries()]
        .filter(([name]) => polled(name, cp.pollChannels))
        .map(([name, backend]) => ({ name, procAffinity: backend.procAffinity })),
    ),
    // Only an Airlock hub reads the capabilities; OpenAI's service gets tunnel-client's header set.
    ...(isOpenAiHost(cp.baseUrl) ? {} : { capabilities: AIRLOCK_CAPABILITIES_HEADER_VALUE }),
    extraHeaders: cp.extraHeaders,
    fetch: events.httpRequestFinished
      ? measuredFetch(deps.fetch ?? http.fetch, events.httpRequestFinished)
      : (deps.fetch ?? http.fetch),
    log,
  });
  return { client, http };
}

/** Poster, dispatcher and poller: commands in from the control plane, through the backends, answers back. */
function createWorkLoop(
  config: AgentConfig,
  channels: Map<string, Backend>,
  client: ControlPlaneClient,
  {
    log,
    controlPlaneLog,
    events,
    tracing,
    oauth,
  }: {
    log: Logger;
    controlPlaneLog: Logger;
    events: AgentEvents;
    tracing: Tracing;
    oauth: () => OAuthDiscovery | undefined;
  },
): { dispatcher: Dispatcher; poller: Poller } {
  // The tightest known limit: the configured one, or what the hub advertised on its polls.
  const maxResponseBytes = () => {
    const limits = [config.controlPlane.maxResponseBytes, client.advert()?.maxResponseBytes].filter(
      (n): n is number => n !== undefined,
    );
    return limits.length ? Math.min(...limits) : undefined;
  };
  const poster = createPoster({ client: tracePosts(client, tracing), log: controlPlaneLog, events, maxResponseBytes });
  const dispatcher = createDispatcher({
    backends: (channel) => channels.get(channel),
    poster,
    log: component(log, "dispatcher"),
    events,
    maxInflight: config.controlPlane.maxInflight,
    maxConcurrent: config.mcp.maxConcurrentRequests,
    maxCommandMs: config.mcp.connectionMaxTtlMs,
    tracing,
    // Only an HTTP main channel that is polled answers `oauth_discovery` (tunnel-client's rule).
    ...(discoveryTarget(config)
      ? {
          oauthDiscovery: () =>
            oauth()?.discover() ?? Promise.resolve({ error: "oauth discovery has not started yet" }),
        }
      : {}),
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
  return { dispatcher, poller };
}

/** Airlock's readiness (strict by default), gated by the startup probe once it runs. */
function readinessCheck(
  config: AgentConfig,
  poller: Poller,
  backends: () => BackendHealth[],
  probe: () => StartupProbe | undefined,
  oauth: () => OAuthDiscovery | undefined,
) {
  return (options: ReadinessOptions = {}): Readiness => {
    const status = poller.status();
    const assessed = assessReadiness({
      controlPlane: {
        lastPollOkAt: status.lastSuccessAt,
        lastError: status.lastError,
        consecutiveFailures: status.consecutiveFailures,
        unauthorized: status.state === "unauthorized",
      },
      backends: backends(),
      now: Date.now(),
      maxPollAgeMs: maxPollAge(config),
      strict: options.strict ?? true,
    });
    // tunnel-client's order: OAuth discovery first, then the startup probe.
    const discovery = oauth();
    if (discovery) {
      const [discovered, text] = discoveryReadiness(discovery.state());
      if (!discovered) return { ...assessed, ready: false, reasons: [text, ...assessed.reasons], summary: text };
    }
    const running = probe();
    if (!running) return assessed;
    // tunnel-client's startup probe gates readiness (and words its body) for an HTTP main channel.
    const [probeReady, summary] = probeReadiness(running.state());
    if (probeReady) return assessed.ready ? { ...assessed, summary } : assessed;
    return { ...assessed, ready: false, reasons: [summary, ...assessed.reasons], summary };
  };
}

/** The operator app (`/healthz`, `/readyz`, `/metrics`), plus Harpoon over HTTP when asked for. */
function createAgentOps(
  loaded: LoadedConfig,
  channels: Map<string, Backend>,
  readiness: (options?: ReadinessOptions) => Readiness,
  registry: AgentMetrics["registry"],
): Hono {
  const { config } = loaded;
  const ops = createOpsApp({ readiness, registry, secrets: () => loaded.secrets });
  const harpoon = channels.get(HARPOON_CHANNEL);
  if (harpoon && config.harpoon.additionalTransports.includes("http-streamable")) {
    ops.route(
      HARPOON_HTTP_PATH,
      createHarpoonHttpApp(harpoon, {
        allowRemote: config.adminUi.allowRemote,
        allowedHosts: config.adminUi.allowedHosts,
      }),
    );
  }
  return ops;
}

/** Serve the operator app, start the backends, the startup probe and the proxy check, then poll. */
async function startServing(
  config: AgentConfig,
  {
    log,
    started,
    ops,
    channels,
    poller,
    registry,
    instanceId,
    harpoonRegistry,
  }: {
    log: Logger;
    started: Started;
    ops: Hono;
    channels: Map<string, Backend>;
    poller: Poller;
    registry: AgentMetrics["registry"];
    instanceId: string;
    harpoonRegistry: HarpoonRegistry | undefined;
  },
): Promise<void> {
  const { hostname, port } = parseListenAddr(config.health.listenAddr);
  const server = await serve(ops.fetch, {
    hostname,
    port,
    urlFile: config.health.urlFile,
    ...(config.health.unixSocket ? { unixSocket: config.health.unixSocket } : {}),
  });
  started.server = server;
  await Promise.all([...channels.values()].map((backend) => backend.start()));
  const probe = startMainProbe(config, component(log, "mcpclient"));
  started.probe = probe;
  // With a startup wait, discovery follows the probe, as in tunnel-client: the server may not listen yet.
  const waitForProbe = probe && config.mcp.startupWaitTimeoutMs > 0 ? probe.done : undefined;
  started.oauth = startOAuthDiscovery(config, harpoonRegistry, component(log, "oauth"), waitForProbe);
  started.proxyChecker = await startProxyChecker({
    routes: proxyRoutes(config),
    env: process.env,
    intervalMs: config.proxy.checkIntervalMs,
    registry,
    log: component(log, "proxy"),
  });
  if (probe && config.mcp.startupWaitTimeoutMs > 0) {
    // The sidecar race: do not take work before the MCP server listens (bounded; polling starts either way).
    log.info("waiting for MCP startup probe before first control-plane poll", {
      timeout_ms: config.mcp.startupWaitTimeoutMs,
    });
    void probe.done.then(() => {
      if (!started.stopping) poller.start();
    });
  } else {
    poller.start();
  }
  log.info("agent started", {
    version: VERSION,
    tunnel: config.controlPlane.tunnelId,
    controlPlane: config.controlPlane.baseUrl,
    channels: [...channels.keys()],
    health: server.url,
    instance: instanceId,
  });
}

/** Stop taking work first, let what is in flight finish (bounded), then close from the backends outwards. */
async function stopAgent(parts: {
  log: Logger;
  started: Started;
  poller: Poller;
  dispatcher: Dispatcher;
  channels: Map<string, Backend>;
  tracing: Tracing;
  controlPlaneHttp: HttpClient;
  graceMs: number;
}): Promise<void> {
  const { log, started, poller, dispatcher, channels, tracing, controlPlaneHttp } = parts;
  log.info("shutting down: polling stopped, letting work in flight finish", { pending: dispatcher.stats().pending });
  started.proxyChecker?.stop();
  started.metadata?.cancel();
  await started.probe?.close();
  await started.oauth?.discovery.close();
  await started.oauth?.client.close();
  await poller.stop();
  await dispatcher.drain(parts.graceMs);
  await Promise.all([...channels.values()].map((backend) => backend.close()));
  // Spans still buffered go out before the process ends.
  await tracing
    .shutdown()
    .catch((error: unknown) => log.warn("could not export the last spans", { error: String(error) }));
  await started.server?.close();
  await controlPlaneHttp.close();
  log.info("stopped");
}
