/**
 * For routing-table tests: the argv of the npm MCP servers used as backends, and a tiny
 * MCP client that drives any {@link Backend} exchange by exchange (the way the dispatcher
 * does), keeping the session id the backend hands out.
 */
import { fileURLToPath } from "node:url";
import type { Backend, ExchangeResult } from "../../agent/backends/types.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { createRouteBackend } from "../../agent/routing/route.ts";
import { silentLogger } from "../../shared/log.ts";
import { exchangeOf, REPO_ROOT } from "./everything.ts";

const bin = (name: string) => fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));

/** server-memory over stdio; its graph lives in `MEMORY_FILE_PATH`. */
export function memoryCommand(): string[] {
  return [bin("mcp-server-memory")];
}

/** server-filesystem over stdio, confined to `dir`. */
export function filesystemCommand(dir: string): string[] {
  return [bin("mcp-server-filesystem"), dir];
}

export interface Answer {
  result: ExchangeResult;
  /** The JSON-RPC message of a `response` result. */
  message: JsonRpcMessage;
  /** Notifies posted before the answer, in order. */
  notified: JsonRpcMessage[];
}

export interface TestMcpClient {
  /** `Mcp-Session-Id` from the last initialize, if the backend gave one. */
  session?: string;
  headers(): HeaderMap;
  initialize(capabilities?: Record<string, unknown>, clientName?: string): Promise<Answer>;
  request(
    method: string,
    params?: Record<string, unknown>,
    options?: { id?: string | number; onNotify?: (message: JsonRpcMessage) => void; signal?: AbortSignal },
  ): Promise<Answer>;
  notify(method: string, params?: Record<string, unknown>): Promise<ExchangeResult>;
  /** Answer a server→client request. */
  respond(id: unknown, result: unknown): Promise<ExchangeResult>;
  /** Every item of a list method, following `nextCursor`; also returns how many pages it took. */
  listAll(method: string, field: string): Promise<{ items: Array<Record<string, unknown>>; pages: number }>;
  /** `tools/call`; the result object (throws on a JSON-RPC error or failure). */
  call(name: string, args?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

let ids = 0;

export function testClient(backend: Backend): TestMcpClient {
  const client: TestMcpClient = {
    headers: (): HeaderMap => (client.session ? { "Mcp-Session-Id": [client.session] } : {}),
    async initialize(capabilities = {}, clientName = "routing-test") {
      delete client.session;
      const answer = await client.request("initialize", {
        protocolVersion: "2025-06-18",
        capabilities,
        clientInfo: { name: clientName, version: "0.0.0" },
      });
      const session =
        answer.result.kind === "response" ? headerValue(answer.result.headers, "mcp-session-id") : undefined;
      if (session) client.session = session;
      if (answer.message.result) await client.notify("notifications/initialized");
      return answer;
    },
    async request(method, params = {}, options = {}) {
      const exchange = exchangeOf(
        { jsonrpc: "2.0", id: options.id ?? ++ids, method, params },
        { headers: client.headers(), ...(options.signal ? { signal: options.signal } : {}) },
      );
      if (options.onNotify) {
        const record = exchange.notify.bind(exchange);
        exchange.notify = (message, headers) => {
          record(message, headers);
          options.onNotify!(message);
        };
      }
      const result = await backend.exchange(exchange);
      return { result, message: result.kind === "response" ? result.message : {}, notified: exchange.notified };
    },
    notify: (method, params) =>
      backend.exchange(
        exchangeOf({ jsonrpc: "2.0", method, ...(params ? { params } : {}) }, { headers: client.headers() }),
      ),
    respond: (id, result) =>
      backend.exchange(exchangeOf({ jsonrpc: "2.0", id: id as string, result }, { headers: client.headers() })),
    async listAll(method, field) {
      const items: Array<Record<string, unknown>> = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const { message } = await client.request(method, cursor === undefined ? {} : { cursor });
        const result = message.result as Record<string, unknown> | undefined;
        if (!result) throw new Error(`${method} failed: ${JSON.stringify(message)}`);
        pages++;
        items.push(...(result[field] as Array<Record<string, unknown>>));
        cursor = result.nextCursor as string | undefined;
      } while (cursor !== undefined && pages < 1000);
      return { items, pages };
    },
    async call(name, args = {}) {
      const { result, message } = await client.request("tools/call", { name, arguments: args });
      if (!message.result)
        throw new Error(`tools/call ${name} failed: ${JSON.stringify(result.kind === "failure" ? result : message)}`);
      return message.result as Record<string, unknown>;
    },
  };
  return client;
}

export interface SpyBackend extends Backend {
  /** Every message sent to the backend, with what it answered. */
  calls: Array<{ message: JsonRpcMessage; headers: HeaderMap; result?: ExchangeResult }>;
  terminations: HeaderMap[];
  /** Session ids the backend handed out in initialize answers. */
  sessions(): string[];
}

/** `backend`, recording what passes through it. */
export function spyBackend(backend: Backend): SpyBackend {
  const calls: SpyBackend["calls"] = [];
  const terminations: HeaderMap[] = [];
  return {
    get name() {
      return backend.name;
    },
    get transport() {
      return backend.transport;
    },
    get procAffinity() {
      return backend.procAffinity;
    },
    calls,
    terminations,
    sessions: () =>
      calls.flatMap((call) => {
        const session =
          call.message.method === "initialize" && call.result?.kind === "response"
            ? headerValue(call.result.headers, "mcp-session-id")
            : undefined;
        return session ? [session] : [];
      }),
    start: () => backend.start(),
    async exchange(exchange) {
      const call: SpyBackend["calls"][number] = { message: exchange.message, headers: exchange.headers };
      calls.push(call);
      call.result = await backend.exchange(exchange);
      return call.result;
    },
    terminateSession(headers, signal) {
      terminations.push(headers);
      return backend.terminateSession(headers, signal);
    },
    health: () => backend.health(),
    close: () => backend.close(),
  };
}

/**
 * A routing table on channel `main` whose members are stdio servers (name → argv), started;
 * closed when the test ends.
 */
export async function startStdioRoutes(
  t: { after(fn: () => unknown): void },
  members: Record<string, string[]>,
): Promise<Backend> {
  const route = createRouteBackend(
    {
      channel: "main",
      origin: "routes",
      backends: Object.entries(members).map(([name, command]) => ({
        transport: "stdio" as const,
        name,
        command,
        env: {},
        cwd: REPO_ROOT,
      })),
    },
    { log: silentLogger },
  );
  t.after(() => route.close());
  await route.start();
  return route;
}
