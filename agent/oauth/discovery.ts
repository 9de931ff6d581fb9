/**
 * OAuth discovery of the main MCP server, as tunnel-client runs it: once at start (its state
 * gates `/readyz`) and again for each `oauth_discovery` command. Each run finds the
 * protected-resource metadata (resource-metadata.ts), then its authorization server's
 * metadata (auth-server-metadata.ts), and registers the URLs that the `harpoon.hosts_include_*`
 * settings and the origin rules admit as Harpoon targets (`oauth-<role>-0`), so Harpoon's
 * answers name them `harpoon://<label>`.
 *
 * Discovery runs only when the main channel is polled and served by one HTTP MCP server; a
 * Harpoon-only agent never contacts the (unpolled) main server.
 */
import type { Logger } from "../../shared/log.ts";
import type { AgentConfig } from "../config/types.ts";
import { createHostClassifier, registerDiscovered, type HostClassifier } from "../harpoon/auto-register.ts";
import type { HarpoonRegistry } from "../harpoon/registry.ts";
import { backendConnection, polledMainHttpBackend, RECHECK_MS } from "../ops/startup-probe.ts";
import { createHttpClient, type FetchLike, type HttpClient } from "../runtime/http-client.ts";
import { type AuthServerMetadata, fetchAuthServerMetadata } from "./auth-server-metadata.ts";
import { discoveredUrls } from "./discovered-urls.ts";
import type { DiscoveryHttp } from "./fetch-guard.ts";
import { discoverResourceMetadata, isOptionalMiss, type ResourceDiscovery } from "./resource-metadata.ts";

export type DiscoveryState =
  | { kind: "pending" }
  | { kind: "ready" }
  /** The server publishes no metadata: nothing to discover, readiness is not held. */
  | { kind: "absent"; detail: string }
  | { kind: "failed"; detail: string };

export interface OAuthDiscovery {
  state(): DiscoveryState;
  /** Resolves when the startup run settled (never rejects). */
  readonly done: Promise<void>;
  /** One run (the `oauth_discovery` command): finds the metadata and registers what it admits. */
  discover(): Promise<ResourceDiscovery>;
  close(): Promise<void>;
}

export interface OAuthDiscoveryOptions {
  mcpUrl: URL;
  /** `mcp.discovery_extra_headers`. */
  headers: Readonly<Record<string, string>>;
  /** `mcp.oauth_trusted_origins`: other origins discovery may fetch from and vouch for. */
  trustedOrigins: readonly string[];
  /** The `harpoon.hosts_include_*` settings. */
  hosts: { suffixes: readonly string[]; patterns: readonly string[]; loopback: boolean; private: boolean };
  /** Where admitted URLs are registered; none when the agent serves no Harpoon channel. */
  registry?: HarpoonRegistry;
  fetch: FetchLike;
  log: Logger;
  /** Start only once this settles: with `mcp.startup_wait_timeout`, the startup probe (tunnel-client's order). */
  after?: Promise<void>;
  /** Pause before a failed startup run is tried again (default {@link RECHECK_MS}). */
  recheckMs?: number;
  /** `fetch` reaches only the MCP server (a Unix socket): no other origin can be contacted through it. */
  mcpOriginOnly?: boolean;
}

/** `/readyz` in tunnel-client's words for a discovery state: `[ready, body]`. */
export function discoveryReadiness(state: DiscoveryState): [boolean, string] {
  switch (state.kind) {
    case "pending":
      return [false, "oauth discovery pending"];
    case "failed":
      return [false, `oauth discovery failed: ${state.detail}`];
    default:
      return [true, "ready"];
  }
}

function origin(raw: string): string | undefined {
  try {
    return new URL(raw).origin;
  } catch {
    return undefined;
  }
}

/**
 * Where discovery may send requests: the MCP server's origin, the trusted origins, and hosts
 * the operator named (`hosts_include_suffix` / `_regex`). The blanket loopback and private
 * ranges admit URLs for registration but never for fetching: a metadata document must not
 * steer the agent into the private network by naming an address.
 */
function discoveryHttp(
  options: OAuthDiscoveryOptions,
  trusted: (origin: string) => boolean,
  signal: AbortSignal,
): DiscoveryHttp {
  const named = createHostClassifier({
    includeLoopback: false,
    includePrivate: false,
    suffixes: options.hosts.suffixes,
    patterns: options.hosts.patterns,
  });
  return {
    fetch: options.fetch,
    headers: options.headers,
    allows: options.mcpOriginOnly
      ? (url) => url.origin === options.mcpUrl.origin
      : (url) => trusted(url.origin) || named(url.hostname).private,
    signal,
  };
}

/** `authorization_servers[0]`'s metadata, when it can be had; failures are logged, never thrown. */
async function authServerOf(
  http: DiscoveryHttp,
  resource: Record<string, unknown>,
  log: Logger,
): Promise<AuthServerMetadata | undefined> {
  const servers = resource.authorization_servers;
  const issuer = Array.isArray(servers) && typeof servers[0] === "string" ? servers[0] : undefined;
  if (!issuer) return undefined;
  try {
    const { metadata, errors } = await fetchAuthServerMetadata(http, new URL(issuer));
    if (!metadata) log.warn("oauth auth-server metadata fetch failed", { errors });
    else if (metadata.issuerMismatch)
      log.warn("oauth auth-server metadata issuer differs from authorization_servers[0]", {
        selected_metadata_url: metadata.url.href,
      });
    return metadata;
  } catch (error) {
    log.warn("oauth auth-server metadata fetch failed", { error: String(error) });
    return undefined;
  }
}

/** Start the startup run (after `options.after`) and return the handle `/readyz` and the dispatcher use. */
export function createOAuthDiscovery(options: OAuthDiscoveryOptions): OAuthDiscovery {
  const { log, registry } = options;
  const trustedOrigins = new Set([
    options.mcpUrl.origin,
    ...options.trustedOrigins.flatMap((raw) => origin(raw) ?? []),
  ]);
  const trusted = (value: string) => trustedOrigins.has(value);
  const stopping = new AbortController();
  const http = discoveryHttp(options, trusted, stopping.signal);
  const classify: HostClassifier = createHostClassifier({
    includeLoopback: options.hosts.loopback,
    includePrivate: options.hosts.private,
    suffixes: options.hosts.suffixes,
    patterns: options.hosts.patterns,
  });
  /** `role href` of what a run already offered for registration: a second run must not add `-1` twins. */
  const registered = new Set<string>();
  let state: DiscoveryState = { kind: "pending" };
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function discover(): Promise<ResourceDiscovery> {
    const result = await discoverResourceMetadata(http, options.mcpUrl);
    if (!result.metadata) return result;
    const authServer = await authServerOf(http, result.metadata.document, log);
    if (registry) {
      const records = await discoveredUrls({
        trusted,
        source: result.metadata.source,
        resource: result.metadata.document,
        ...(authServer ? { authServer } : {}),
      });
      const fresh = records.filter((record) => !registered.has(`${record.role} ${String(record.url)}`));
      registerDiscovered(registry, classify, fresh, log);
      for (const record of fresh) registered.add(`${record.role} ${String(record.url)}`);
    }
    return result;
  }

  /** One startup run, settling `state`; a failure is tried again in the background, so readiness recovers. */
  const settle = async (): Promise<void> => {
    const result = await discover().catch(
      (error: unknown): ResourceDiscovery => ({
        attempts: [],
        error: error instanceof Error ? error.message : String(error),
      }),
    );
    if (result.metadata) {
      state = { kind: "ready" };
      log.info("OAuth discovery ProtectedResourceMetaData fetched", {
        status_code: result.metadata.status,
        source: result.metadata.source.href,
      });
    } else if (isOptionalMiss(result)) {
      state = { kind: "absent", detail: result.error ?? "" };
      log.info("OAuth discovery: the MCP server publishes no protected-resource metadata");
    } else {
      state = { kind: "failed", detail: result.error ?? "unknown error" };
      log.warn("OAuth discovery failed", { error: state.detail });
      if (stopping.signal.aborted) return;
      timer = setTimeout(() => void settle(), options.recheckMs ?? RECHECK_MS);
      (timer as { unref?: () => void }).unref?.();
    }
  };
  const done = (options.after ?? Promise.resolve()).then(() => (stopping.signal.aborted ? undefined : settle()));
  return {
    state: () => state,
    done,
    discover,
    async close() {
      stopping.abort();
      if (timer) clearTimeout(timer);
      await done;
    },
  };
}

/** The server discovery looks at: the polled main channel's single HTTP MCP server. */
export const discoveryTarget = polledMainHttpBackend;

/** Start discovery for `run`, or `undefined` when it does not apply (stdio main, Harpoon-only polling). */
export function startOAuthDiscovery(
  config: AgentConfig,
  registry: HarpoonRegistry | undefined,
  log: Logger,
  after?: Promise<void>,
): { discovery: OAuthDiscovery; client: HttpClient } | undefined {
  const backend = discoveryTarget(config);
  if (!backend) return undefined;
  const client = createHttpClient(backendConnection(backend, config.caBundle));
  const { harpoon, mcp } = config;
  const discovery = createOAuthDiscovery({
    mcpUrl: new URL(backend.url),
    headers: mcp.discoveryExtraHeaders,
    trustedOrigins: mcp.oauthTrustedOrigins,
    hosts: {
      suffixes: harpoon.hostsIncludeSuffix,
      patterns: harpoon.hostsIncludeRegex,
      loopback: harpoon.hostsIncludeLoopback,
      private: harpoon.hostsIncludePrivate,
    },
    ...(registry ? { registry } : {}),
    ...(after ? { after } : {}),
    // The connection dials the server's socket whatever the URL says: other origins would reach it too.
    mcpOriginOnly: backend.unixSocket !== undefined,
    fetch: client.fetch,
    log,
  });
  return { discovery, client };
}
