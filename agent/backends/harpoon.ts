/**
 * Harpoon as a {@link Backend}: the built-in MCP server of the reserved `harpoon` channel,
 * which makes allowlisted HTTP calls from inside the private network (tunnel-client's
 * Harpoon; the tunnel service's OAuth shim uses it for metadata discovery, client
 * registration, token and revocation requests to `harpoon://<label>` targets).
 *
 * The MCP protocol side is the SDK's `Server`, reached through an in-memory transport pair.
 * Each exchange gets a server of its own: Harpoon keeps no per-client state, so there is
 * nothing to share, and clients' JSON-RPC ids can never collide. A client's
 * `notifications/cancelled` aborts the call it names. Sessions do not exist here; every
 * request is answered whether or not `initialize` came first.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError } from "@modelcontextprotocol/sdk/types.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { isNotification, isObject, isRequest, isResponse } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import type { HarpoonTargetConfig } from "../config/types.ts";
import { createHttpClient, type FetchLike, type HttpClient } from "../runtime/http-client.ts";
import { VERSION } from "../version.ts";
import { createCaller, type HarpoonCallRecord } from "../harpoon/call.ts";
import { createRegistry, type HarpoonRegistry, type HarpoonTarget } from "../harpoon/registry.ts";
import { HARPOON_INSTRUCTIONS, HARPOON_SERVER_INFO, UnknownToolError, createToolRunner, harpoonTools } from "../harpoon/tools.ts";
import type { Backend, BackendHealth, ExchangeResult, McpExchange, TerminationResult } from "./types.ts";

export interface HarpoonBackendOptions {
  /** Configured targets (`harpoon.targets`), registered in order with category `config`. */
  targets: HarpoonTargetConfig[];
  allowPlaintextHttp: boolean;
  /** Ceiling and default of `max_response_bytes` (≤ 102 400). */
  maxResponseBytes: number;
  /** Ceiling and default of `max_redirects` (≤ 5). */
  maxRedirects: number;
  /** Keep request and response bodies in the call history (debugging only). */
  capturePayloads?: boolean;
  /** The fetch that reaches a target. Default: built from `caFile`, `httpProxy` and the target's Unix socket. */
  fetchFor?: (target: HarpoonTarget) => FetchLike;
  caFile?: string;
  /** `harpoon.http_proxy`: every TCP call goes through it (Unix-socket targets do not). */
  httpProxy?: string;
  /** Calls kept in the history. Default 100. */
  historySize?: number;
  log: Logger;
  /** Each call, as the history records it (metrics). */
  onCall?(record: HarpoonCallRecord): void;
}

/** The Harpoon backend, plus what the admin UI and OAuth discovery need from it. */
export interface HarpoonBackend extends Backend {
  /** The allowlist; OAuth discovery adds targets to it (`registerDiscovered`). */
  readonly registry: HarpoonRegistry;
  /** The most recent calls, oldest first. */
  calls(): HarpoonCallRecord[];
}

const JSON_HEADERS: HeaderMap = { "Content-Type": ["application/json"] };

/** The proxy as logged: scheme, host and port, never credentials. */
function proxyOrigin(proxy: string): string {
  try {
    return new URL(proxy).origin;
  } catch {
    return "(unparseable proxy URL)";
  }
}

interface InFlight {
  id: JsonRpcId;
  abort: AbortController;
}

/** Build Harpoon. Throws (naming the `harpoon.targets` entry) when a target is not acceptable. */
export function createHarpoonBackend(options: HarpoonBackendOptions): HarpoonBackend {
  const log = options.log.child({ backend: "harpoon" });
  const registry = createRegistry({
    allowPlaintext: options.allowPlaintextHttp,
    targets: options.targets.map((target) => ({ ...target, category: "config" })),
  });
  const clients = new Map<string, HttpClient>();
  /** One client per route: the proxy (or direct) for TCP targets, one per Unix socket. */
  const clientFor = (unixSocket?: string): HttpClient => {
    const key = unixSocket ?? "";
    let client = clients.get(key);
    if (!client) {
      client = createHttpClient({ caFile: options.caFile, ...(unixSocket ? { unixSocket } : { proxy: options.httpProxy }) });
      clients.set(key, client);
    }
    return client;
  };
  const fetchFor = options.fetchFor ?? ((target: HarpoonTarget) => clientFor(target.unixSocket).fetch);
  const historySize = options.historySize ?? 100;
  const history: HarpoonCallRecord[] = [];
  const caller = createCaller({
    registry,
    fetchFor,
    maxResponseBytes: options.maxResponseBytes,
    maxRedirects: options.maxRedirects,
    userAgent: `airlock/${VERSION}`,
    capturePayloads: options.capturePayloads ?? false,
    log,
    onCall: (record) => {
      history.push(record);
      if (history.length > historySize) history.shift();
      options.onCall?.(record);
    },
  });
  const runner = createToolRunner(registry, caller);
  const tools = harpoonTools({ maxResponseBytes: options.maxResponseBytes, maxRedirects: options.maxRedirects });
  const inflight = new Set<InFlight>();
  const closing = new AbortController();
  let lastError: string | undefined;

  function mcpServer(signal: AbortSignal): Server {
    const server = new Server(
      { ...HARPOON_SERVER_INFO, version: VERSION },
      { capabilities: { tools: { listChanged: false } }, instructions: HARPOON_INSTRUCTIONS },
    );
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
    server.setRequestHandler(CallToolRequestSchema, async (request) => {
      try {
        return await runner.call(request.params.name, request.params.arguments, signal);
      } catch (error) {
        if (error instanceof UnknownToolError) throw new McpError(ErrorCode.InvalidParams, error.message);
        throw error;
      }
    });
    return server;
  }

  async function request(exchange: McpExchange, message: JsonRpcMessage & { id: JsonRpcId }): Promise<ExchangeResult> {
    const entry: InFlight = { id: message.id, abort: new AbortController() };
    const signal = AbortSignal.any([exchange.signal, entry.abort.signal, closing.signal]);
    const server = mcpServer(signal);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    inflight.add(entry);
    try {
      return await new Promise<ExchangeResult>((resolve) => {
        const settle = (result: ExchangeResult) => {
          signal.removeEventListener("abort", onAbort);
          resolve(result);
        };
        const onAbort = () => {
          const detail = closing.signal.aborted ? "backend closed" : entry.abort.signal.aborted ? "cancelled by the client" : "exchange aborted";
          settle(closing.signal.aborted
            ? { kind: "failure", failure: { source: "transport_closed", kind: "connection_closed" }, detail }
            : entry.abort.signal.aborted
              ? { kind: "failure", failure: { source: "client_internal" }, detail }
              : { kind: "failure", failure: { source: "timeout", kind: "timeout" }, detail });
        };
        signal.addEventListener("abort", onAbort, { once: true });
        if (signal.aborted) return onAbort();
        server.onerror = (error) => {
          lastError = error.message;
          log.warn("harpoon MCP server error", { error: error.message });
          settle({ kind: "failure", failure: { source: "protocol", kind: "invalid_protocol_response" }, detail: error.message });
        };
        clientSide.onmessage = (reply) => {
          const answer = reply as JsonRpcMessage;
          if (isResponse(answer) && answer.id === message.id) settle({ kind: "response", status: 200, headers: JSON_HEADERS, message: answer });
          else exchange.notify(answer, {});
        };
        void (async () => {
          await server.connect(serverSide);
          await clientSide.start();
          await clientSide.send(message as JSONRPCMessage);
        })().catch((error: unknown) => {
          settle({ kind: "failure", failure: { source: "client_internal" }, detail: error instanceof Error ? error.message : String(error) });
        });
      });
    } finally {
      inflight.delete(entry);
      await server.close().catch(() => {});
    }
  }

  /** Notifications and client responses need no server: Harpoon only acts on cancellation. */
  function deliver(message: JsonRpcMessage): ExchangeResult {
    if (message.method === "notifications/cancelled" && isObject(message.params)) {
      const requestId = message.params.requestId;
      // Without sessions an id may be shared by two clients; the newest call with it is the likeliest one meant.
      const target = [...inflight].reverse().find((entry) => entry.id === requestId);
      target?.abort.abort();
    }
    return { kind: "ack", status: 202, headers: {} };
  }

  return {
    name: "harpoon",
    transport: "memory",
    procAffinity: true,
    registry,
    calls: () => [...history],

    async start() {
      log.info("harpoon enabled", {
        targets: registry.targets().map((target) => ({ label: target.label, origin: target.url.origin })),
        allowPlaintextHttp: options.allowPlaintextHttp,
        proxy: options.httpProxy ? proxyOrigin(options.httpProxy) : "none",
        maxResponseBytes: options.maxResponseBytes,
        maxRedirects: options.maxRedirects,
      });
      if (options.fetchFor) return;
      await clientFor().ready().catch((error: unknown) => {
        lastError = error instanceof Error ? error.message : String(error);
        log.warn("harpoon cannot load its CA bundle; calls to https targets may fail", { error: lastError });
      });
    },

    async exchange(exchange) {
      const message = exchange.message;
      if (closing.signal.aborted) return { kind: "failure", failure: { source: "transport_closed", kind: "connection_closed" }, detail: "backend closed" };
      if (isRequest(message)) return request(exchange, message);
      if (isNotification(message) || isResponse(message)) return deliver(message);
      return { kind: "failure", failure: { source: "client_internal" }, detail: "the command's message is not a JSON-RPC request, notification or response" };
    },

    async terminateSession(): Promise<TerminationResult> {
      // Harpoon has no sessions, as over tunnel-client's in-memory transport.
      return { kind: "terminated", status: 405, headers: {} };
    },

    health(): BackendHealth {
      const health: BackendHealth = { name: "harpoon", transport: "memory", state: closing.signal.aborted ? "stopped" : "up", restarts: 0, inflight: inflight.size };
      if (lastError !== undefined) health.lastError = lastError;
      return health;
    },

    async close() {
      closing.abort();
      await Promise.all([...clients.values()].map((client) => client.close()));
    },
  };
}
