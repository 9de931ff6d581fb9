/**
 * Doctor's MCP backend checks, per backend of the routing table: the stdio program exists
 * and is executable, the HTTP URL answers at all, the server answers a client (`server/discover`,
 * then `tools/list`, through the same backend code `run` uses, era bridge included — so the
 * server's era is found and shown, and a 2026-only server passes), and whether an HTTP server advertises
 * OAuth protected-resource metadata (reported, never a failure). Stdio servers are started
 * for `initialize` only with `probeMcp` (`--probe-mcp`): as tunnel-client's doctor, the
 * default only checks that the program exists.
 */
import { wellKnownResourceUrls } from "../oauth/resource-metadata.ts";
import { bridgeEras } from "../bridge/backend.ts";
import { describeServer, eraWords, isRefusal, toolNames } from "../bridge/inspect.ts";
import { createHttpBackend } from "../backends/http.ts";
import { createStdioBackend } from "../backends/stdio.ts";
import { childEnvironment } from "../backends/factory.ts";
import { classifyFetchError } from "../backends/failure-kind.ts";
import type { Backend, ExchangeResult } from "../backends/types.ts";
import type { BackendConfig, HttpBackendConfig, RouteConfig, StdioBackendConfig } from "../config/types.ts";
import { createHttpClient } from "../runtime/http-client.ts";
import { backendConnection } from "../ops/startup-probe.ts";
import type { FetchLike } from "../runtime/http-client.ts";
import { DEFAULT_CHANNEL, headerValue } from "../../shared/protocol/index.ts";
import { isObject } from "../../shared/jsonrpc.ts";
import { silentLogger } from "../../shared/log.ts";
import { VERSION } from "../version.ts";
import { findProgram } from "./command.ts";
import { check } from "./types.ts";
import type { Check } from "./types.ts";

export interface BackendCheckOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** Kept out of stdio children's environments, as `run` does. */
  secrets?: readonly string[];
  cwd: string;
  /** Per step (reachability, initialize, metadata), ms. */
  timeoutMs: number;
  /** Start stdio servers for an `initialize` handshake (`--probe-mcp`). */
  probeMcp?: boolean;
  /** For the reachability and metadata GETs; defaults to a CA-aware client per backend. */
  fetch?: FetchLike;
  caBundle?: string;
}

const WHY = {
  command:
    "A stdio backend is a program Airlock starts itself; if it cannot be started, every call routed to it fails at once (the agent itself keeps running).",
  reachable:
    "Airlock forwards each call to this URL from this host; it must be reachable from here, not only from your laptop.",
  initialize:
    "Every MCP client starts by asking the server what it offers (`initialize`, or `server/discover` in 2026-07-28); if that fails here, it fails for ChatGPT too.",
  oauth:
    "An MCP server that does its own OAuth advertises /.well-known/oauth-protected-resource so clients can discover its authorization server. Servers without OAuth have none; both are fine.",
};

/**
 * A backend check's id: tunnel-client's bare id (`mcp_server_reachable`) for the main
 * channel's single server, which is the one tunnel-client checks; the id plus the label for
 * every other backend (`mcp_server_reachable docs`, `mcp_server_reachable main/github`).
 */
export function backendCheckId(base: string, label: string): string {
  return label === DEFAULT_CHANNEL ? base : `${base} ${label}`;
}

/** The label of a backend in check ids: the channel, plus the backend name when a channel has several. */
export function backendLabel(route: RouteConfig, backend: BackendConfig): string {
  return route.backends.length === 1 && backend.name === route.channel
    ? route.channel
    : `${route.channel}/${backend.name}`;
}

export async function checkBackends(routes: readonly RouteConfig[], options: BackendCheckOptions): Promise<Check[]> {
  const jobs = routes.flatMap((route) =>
    route.backends.map((backend) => {
      const label = backendLabel(route, backend);
      return backend.transport === "stdio" ? checkStdio(label, backend, options) : checkHttp(label, backend, options);
    }),
  );
  return (await Promise.all(jobs)).flat();
}

async function checkStdio(label: string, backend: StdioBackendConfig, options: BackendCheckOptions): Promise<Check[]> {
  const program = backend.command[0] ?? "";
  const lookup = await findProgram(program, {
    path: backend.env.PATH ?? options.env.PATH,
    cwd: backend.cwd ?? options.cwd,
  });
  const commandId = backendCheckId("mcp_command_executable", label);
  // tunnel-client reports these two for a stdio main server too, as SKIP.
  const notNetwork =
    label === DEFAULT_CHANNEL
      ? [
          check("mcp_server_reachable", "SKIP", "stdio targets are not probed over the network", WHY.reachable),
          check("oauth_metadata", "SKIP", "stdio targets do not expose OAuth metadata URLs", WHY.oauth),
        ]
      : [];
  if (!lookup.found) {
    return [
      check(commandId, "FAIL", lookup.reason, WHY.command, [
        `install ${program} for the user that runs Airlock, or fix the first word of the command (an absolute path avoids PATH differences between your shell and a service)`,
        "for a script: chmod +x it and check its #! line, or put its interpreter first (python3 /path/server.py)",
        "rerun: airlock doctor",
      ]),
      check(`mcp_initialize ${label}`, "SKIP", `blocked by ${commandId}`, WHY.initialize),
      ...notNetwork,
    ];
  }
  if (!options.probeMcp) {
    return [
      check(commandId, "PASS", lookup.path, WHY.command),
      check(
        `mcp_initialize ${label}`,
        "SKIP",
        "not run: doctor starts stdio servers only with --probe-mcp",
        WHY.initialize,
      ),
      ...notNetwork,
    ];
  }
  const stdio = createStdioBackend({
    name: backend.name,
    command: backend.command,
    env: backend.env,
    inheritEnv: childEnvironment(options.env, options.secrets ?? []),
    ...(backend.cwd ? { cwd: backend.cwd } : {}),
    log: silentLogger,
    // One try: doctor reports a crash, it does not supervise.
    restart: { crashLoopCount: 1, failedRetryMs: 3_600_000 },
    readyWaitMs: options.timeoutMs,
    stopGraceMs: 500,
  });
  return [
    check(commandId, "PASS", lookup.path, WHY.command),
    // Through the era bridge, as `run` serves it: a 2026-only server passes by way of server/discover.
    await initializeCheck(label, bridgeEras(stdio, { log: silentLogger }), options.timeoutMs),
    ...notNetwork,
  ];
}

async function checkHttp(label: string, backend: HttpBackendConfig, options: BackendCheckOptions): Promise<Check[]> {
  // The route `run` takes to this server: its CA, proxy, Unix socket and mTLS certificate.
  const connection = backendConnection(backend, options.caBundle);
  const client = options.fetch ? undefined : createHttpClient(connection);
  const fetcher: FetchLike = options.fetch ?? client!.fetch;
  try {
    const reach = await reachable(label, backend.url, fetcher, options.timeoutMs);
    if (reach.status !== "PASS") {
      return [
        reach,
        check(`mcp_initialize ${label}`, "SKIP", `blocked by ${reach.id}`, WHY.initialize),
        check(backendCheckId("oauth_metadata", label), "SKIP", `blocked by ${reach.id}`, WHY.oauth),
      ];
    }
    const http = createHttpBackend({
      name: backend.name,
      url: backend.url,
      headers: backend.headers,
      timeoutMs: options.timeoutMs,
      log: silentLogger,
      failureThreshold: 1_000,
      ...(options.fetch ? { fetch: options.fetch } : connection),
    });
    return [
      reach,
      await initializeCheck(label, bridgeEras(http, { log: silentLogger }), options.timeoutMs),
      await oauthCheck(label, backend.url, fetcher, options.timeoutMs),
    ];
  } finally {
    await client?.close().catch(() => {});
  }
}

async function reachable(label: string, url: string, fetcher: FetchLike, timeoutMs: number): Promise<Check> {
  const id = backendCheckId("mcp_server_reachable", label);
  try {
    const response = await fetcher(url, {
      method: "GET",
      headers: { Accept: "application/json, text/event-stream" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    // A Streamable HTTP server may answer GET with an open event stream: don't read it.
    await response.body?.cancel().catch(() => {});
    return check(id, "PASS", `${url} answered HTTP ${response.status}`, WHY.reachable);
  } catch (error) {
    const { failure, detail } = classifyFetchError(error, isTimeout(error));
    const what =
      failure.source === "dns"
        ? "the host name does not resolve"
        : failure.source === "tls"
          ? "the TLS handshake failed"
          : failure.source === "timeout"
            ? `no answer within ${timeoutMs} ms`
            : "the connection failed";
    return check(id, "FAIL", `${url}: ${what} (${detail})`, WHY.reachable, [
      failure.source === "tls"
        ? "trust the server's CA: set ca_bundle (or ca_file on the backend) to its PEM bundle"
        : "start the MCP server, or fix the host, port and path in the URL",
      `check from this host: curl -i ${url}`,
      "rerun: airlock doctor",
    ]);
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
}

const DOCTOR_CLIENT = { name: "airlock-doctor", version: VERSION };

/**
 * The server's era and tools as a client finds them: `server/discover`, then `tools/list`,
 * through the era bridge (agent/bridge/inspect.ts), so a 2026-only server passes as a 2025
 * one does; then the backend is closed.
 */
async function initializeCheck(label: string, backend: Backend, timeoutMs: number): Promise<Check> {
  const id = `mcp_initialize ${label}`;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    await backend.start();
    const described = await describeServer(backend, signal, DOCTOR_CLIENT);
    if (isRefusal(described)) {
      if (described.answer.kind === "failure") return initializeFailure(id, described.answer, backend, timeoutMs);
      return check(id, "FAIL", `the server did not answer: ${described.why}`, WHY.initialize, [
        "run the server by hand and read its log; make sure it speaks MCP (JSON-RPC) on this transport",
      ]);
    }
    const info = described.serverInfo;
    const server = `${String(info.name ?? "unnamed server")} ${String(info.version ?? "")}`.trim();
    const list = await toolNames(backend, signal, DOCTOR_CLIENT);
    const toolText = isRefusal(list)
      ? `; ${list.why}`
      : `; ${list.length} tool(s)${list.length ? `: ${list.slice(0, 8).join(", ")}${list.length > 8 ? ", …" : ""}` : ""}`;
    return check(id, "PASS", `${server}, ${eraWords(described.era)}${toolText}`, WHY.initialize);
  } catch (error) {
    return check(
      id,
      "FAIL",
      `initialize failed: ${error instanceof Error ? error.message : String(error)}`,
      WHY.initialize,
      ["rerun with LOG_LEVEL=debug, or run the server by hand"],
    );
  } finally {
    await backend.close().catch(() => {});
  }
}

function initializeFailure(
  id: string,
  answer: Extract<ExchangeResult, { kind: "failure" }>,
  backend: Backend,
  timeoutMs: number,
): ReturnType<typeof check> {
  const failure = answer.failure;
  if (failure.source === "target_http" && (failure.status === 401 || failure.status === 403)) {
    const challenge = headerValue(answer.headers, "www-authenticate");
    return check(
      id,
      "WARN",
      `the server requires authorization (HTTP ${failure.status}${challenge ? `, WWW-Authenticate: ${challenge}` : ""})`,
      WHY.initialize,
      [
        "expected for servers that do their own OAuth: users sign in through the MCP client and their token travels through the tunnel",
        "otherwise give the backend a static credential: headers (routes) or mcp.extra_headers with an env: reference",
      ],
    );
  }
  const health = backend.health();
  const tail = health.stderrTail?.slice(-5).join(" | ");
  const why =
    failure.source === "timeout"
      ? `no answer within ${timeoutMs} ms`
      : failure.source === "target_http"
        ? `HTTP ${failure.status} without a JSON-RPC answer`
        : `${failure.source}${failure.kind ? `/${failure.kind}` : ""}`;
  const detail = answer.detail ?? health.reason;
  return check(
    id,
    "FAIL",
    `initialize failed: ${why}${detail ? ` (${detail})` : ""}${tail ? `; its stderr ended with: ${tail}` : ""}`,
    WHY.initialize,
    [
      backend.transport === "stdio"
        ? "run the command by hand: it must stay running and speak JSON-RPC on stdin/stdout (logs go to stderr)"
        : "check that the URL is the MCP endpoint itself (often …/mcp) and that the server speaks Streamable HTTP",
      "rerun: airlock doctor --explain",
    ],
  );
}

/** RFC 9728 metadata: `/.well-known/oauth-protected-resource` + the resource path, then at the root. */
export function protectedResourceUrls(url: string): string[] {
  // The same candidates, in the same order, as OAuth discovery at run time.
  return wellKnownResourceUrls(new URL(url)).map(({ url: candidate }) => candidate.href);
}

async function oauthCheck(label: string, url: string, fetcher: FetchLike, timeoutMs: number): Promise<Check> {
  const id = backendCheckId("oauth_metadata", label);
  const seen: string[] = [];
  for (const candidate of protectedResourceUrls(url)) {
    let response: Response;
    try {
      response = await fetcher(candidate, {
        headers: { Accept: "application/json" },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      return check(id, "WARN", `${candidate}: ${error instanceof Error ? error.message : String(error)}`, WHY.oauth, [
        "if the server uses OAuth, make its metadata reachable from this host",
      ]);
    }
    const text = await response.text().catch(() => "");
    if (response.status === 404 || response.status === 405 || response.status === 401) {
      seen.push(`HTTP ${response.status}`);
      continue;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (response.ok && isObject(body) && Array.isArray(body.authorization_servers)) {
      return check(
        id,
        "PASS",
        `advertised at ${candidate}; authorization server(s): ${body.authorization_servers.map(String).join(", ") || "none listed"}`,
        WHY.oauth,
      );
    }
    return check(
      id,
      "WARN",
      `${candidate} answered HTTP ${response.status} without protected-resource metadata (no authorization_servers list)`,
      WHY.oauth,
      ["if the server uses OAuth, serve RFC 9728 metadata there; if it does not, ignore this"],
    );
  }
  return check(
    id,
    "SKIP",
    `none advertised (${seen.join(", ")}): the server does not announce OAuth, fine unless it is meant to`,
    WHY.oauth,
  );
}
