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
import { linkSignals } from "../runtime/signals.ts";
import { VERSION } from "../version.ts";
import { createCaller, type HarpoonCallRecord } from "../harpoon/call.ts";
import type { ToolRunner } from "../harpoon/tools.ts";
import { createRegistry, type HarpoonRegistry, type HarpoonTarget } from "../harpoon/registry.ts";
import {
  HARPOON_INSTRUCTIONS,
  HARPOON_SERVER_INFO,
  UnknownToolError,
  createToolRunner,
  harpoonTools,
} from "../harpoon/tools.ts";
import { NOT_JSON_RPC } from "./inflight.ts";
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
  return new Harpoon(options);
}

class Harpoon implements HarpoonBackend {
  readonly name = "harpoon";
  readonly transport = "memory";
  readonly procAffinity = true;
  readonly registry: HarpoonRegistry;
  readonly #options: HarpoonBackendOptions;
  readonly #log: Logger;
  /** One client per route: the proxy (or direct) for TCP targets, one per Unix socket. */
  readonly #clients = new Map<string, HttpClient>();
  readonly #history: HarpoonCallRecord[] = [];
  readonly #runner: ToolRunner;
  readonly #tools: ReturnType<typeof harpoonTools>;
  readonly #inflight = new Set<InFlight>();
  readonly #closing = new AbortController();
  #lastError: string | undefined;

  constructor(options: HarpoonBackendOptions) {
    this.#options = options;
    this.#log = options.log.child({ backend: "harpoon" });
    this.registry = createRegistry({
      allowPlaintext: options.allowPlaintextHttp,
      targets: options.targets.map((target) => ({ ...target, category: "config" })),
    });
    const historySize = options.historySize ?? 100;
    const caller = createCaller({
      registry: this.registry,
      fetchFor: options.fetchFor ?? ((target: HarpoonTarget) => this.#clientFor(target.unixSocket).fetch),
      maxResponseBytes: options.maxResponseBytes,
      maxRedirects: options.maxRedirects,
      userAgent: `airlock/${VERSION}`,
      capturePayloads: options.capturePayloads ?? false,
      log: this.#log,
      onCall: (record) => {
        this.#history.push(record);
        options.onCall?.(record);
        if (this.#history.length > historySize) this.#history.shift();
      },
    });
    this.#runner = createToolRunner(this.registry, caller);
    this.#tools = harpoonTools({ maxResponseBytes: options.maxResponseBytes, maxRedirects: options.maxRedirects });
  }

  calls(): HarpoonCallRecord[] {
    return [...this.#history];
  }

  async start(): Promise<void> {
    const options = this.#options;
    this.#log.info("harpoon enabled", {
      targets: this.registry.targets().map((target) => ({ label: target.label, origin: target.url.origin })),
      allowPlaintextHttp: options.allowPlaintextHttp,
      proxy: options.httpProxy ? proxyOrigin(options.httpProxy) : "none",
      maxResponseBytes: options.maxResponseBytes,
      maxRedirects: options.maxRedirects,
    });
    if (options.fetchFor) return;
    await this.#clientFor()
      .ready()
      .catch((error: unknown) => {
        this.#lastError = error instanceof Error ? error.message : String(error);
        this.#log.warn("harpoon cannot load its CA bundle; calls to https targets may fail", {
          error: this.#lastError,
        });
      });
  }

  async exchange(exchange: McpExchange): Promise<ExchangeResult> {
    const message = exchange.message;
    if (this.#closing.signal.aborted)
      return {
        kind: "failure",
        failure: { source: "transport_closed", kind: "connection_closed" },
        detail: "backend closed",
      };
    if (isRequest(message)) return this.#request(exchange, message);
    if (isNotification(message) || isResponse(message)) return this.#deliver(message);
    return NOT_JSON_RPC;
  }

  async terminateSession(): Promise<TerminationResult> {
    // Harpoon has no sessions, as over tunnel-client's in-memory transport.
    return { kind: "terminated", status: 405, headers: {} };
  }

  health(): BackendHealth {
    const health: BackendHealth = {
      name: "harpoon",
      transport: "memory",
      state: this.#closing.signal.aborted ? "stopped" : "up",
      restarts: 0,
      inflight: this.#inflight.size,
    };
    if (this.#lastError !== undefined) health.lastError = this.#lastError;
    return health;
  }

  async close(): Promise<void> {
    this.#closing.abort();
    await Promise.all([...this.#clients.values()].map((client) => client.close()));
  }

  #clientFor(unixSocket?: string): HttpClient {
    const key = unixSocket ?? "";
    let client = this.#clients.get(key);
    if (!client) {
      client = createHttpClient({
        caFile: this.#options.caFile,
        ...(unixSocket ? { unixSocket } : { proxy: this.#options.httpProxy }),
      });
      this.#clients.set(key, client);
    }
    return client;
  }

  #mcpServer(signal: AbortSignal): Server {
    const server = new Server(
      { ...HARPOON_SERVER_INFO, version: VERSION },
      { capabilities: { tools: { listChanged: false } }, instructions: HARPOON_INSTRUCTIONS },
    );
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: this.#tools }));
    server.setRequestHandler(CallToolRequestSchema, async (request) => {
      try {
        return await this.#runner.call(request.params.name, request.params.arguments, signal);
      } catch (error) {
        if (error instanceof UnknownToolError) throw new McpError(ErrorCode.InvalidParams, error.message);
        throw error;
      }
    });
    return server;
  }

  async #request(exchange: McpExchange, message: JsonRpcMessage & { id: JsonRpcId }): Promise<ExchangeResult> {
    const entry: InFlight = { id: message.id, abort: new AbortController() };
    const closing = this.#closing.signal;
    const linked = linkSignals([exchange.signal, entry.abort.signal, closing]);
    const signal = linked.signal;
    const server = this.#mcpServer(signal);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    this.#inflight.add(entry);
    try {
      return await new Promise<ExchangeResult>((resolve) => {
        const settle = (result: ExchangeResult) => {
          signal.removeEventListener("abort", onAbort);
          resolve(result);
        };
        const onAbort = () => {
          const detail = closing.aborted
            ? "backend closed"
            : entry.abort.signal.aborted
              ? "cancelled by the client"
              : "exchange aborted";
          settle(
            closing.aborted
              ? { kind: "failure", failure: { source: "transport_closed", kind: "connection_closed" }, detail }
              : entry.abort.signal.aborted
                ? { kind: "failure", failure: { source: "client_internal" }, detail }
                : { kind: "failure", failure: { source: "timeout", kind: "timeout" }, detail },
          );
        };
        signal.addEventListener("abort", onAbort, { once: true });
        if (signal.aborted) return onAbort();
        server.onerror = (error) => {
          this.#lastError = error.message;
          this.#log.warn("harpoon MCP server error", { error: error.message });
          settle({
            kind: "failure",
            failure: { source: "protocol", kind: "invalid_protocol_response" },
            detail: error.message,
          });
        };
        clientSide.onmessage = (reply) => {
          const answer = reply as JsonRpcMessage;
          if (isResponse(answer) && answer.id === message.id)
            settle({ kind: "response", status: 200, headers: JSON_HEADERS, message: answer });
          else exchange.notify(answer, {});
        };
        void (async () => {
          await server.connect(serverSide);
          await clientSide.start();
          await clientSide.send(message as JSONRPCMessage);
        })().catch((error: unknown) => {
          settle({
            kind: "failure",
            failure: { source: "client_internal" },
            detail: error instanceof Error ? error.message : String(error),
          });
        });
      });
    } finally {
      linked.dispose();
      this.#inflight.delete(entry);
      await server.close().catch(() => {});
    }
  }

  /** Notifications and client responses need no server: Harpoon only acts on cancellation. */
  #deliver(message: JsonRpcMessage): ExchangeResult {
    if (message.method === "notifications/cancelled" && isObject(message.params)) {
      const requestId = message.params.requestId;
      // Without sessions an id may be shared by two clients; the newest call with it is the likeliest one meant.
      const target = [...this.#inflight].reverse().find((entry) => entry.id === requestId);
      target?.abort.abort();
    }
    return { kind: "ack", status: 202, headers: {} };
  }
}
