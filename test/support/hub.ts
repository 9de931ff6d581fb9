/**
 * The hub Worker in workerd (Miniflare) on 127.0.0.1:0 for tests, with a pool of
 * configured tunnels so the tests of one file share one hub without sharing state,
 * plus a plain-fetch "agent" that speaks the contract (poll / response) by hand.
 */
import type { Backend } from "../../agent/backends/types.ts";
import type { WireCommand } from "../../relay/hub/tunnel-state.ts";
import { failureMessage, failureStatus } from "../../shared/protocol/index.ts";
import { startLocalHub, type LocalHub, type LocalHubSettings } from "../../agent/hub-local/run.ts";

export const AGENT_KEY = "test-agent-key-0123456789";
export const SECOND_AGENT_KEY = "test-agent-key-second-987654";
export const CLIENT_TOKEN = "test-client-token-0123456789";
/** A second client token on every ordinary tunnel: another client of the same tunnel. */
export const SECOND_CLIENT_TOKEN = "test-client-token-second-5a5a5a";
export const HUB_TOKEN = "test-hub-token-for-passthrough";

/** A tunnel id from a small integer: `tunnel_` + 32 lowercase hex. */
export function tunnelId(n: number): string {
  return `tunnel_${n.toString(16).padStart(32, "0")}`;
}

export interface TestHubOptions {
  /** How many ordinary tunnels to configure (ids `tunnelId(1..n)`). */
  tunnels?: number;
  settings?: LocalHubSettings;
  stateDir?: string;
  port?: number;
  /** Keep the audit log (default true, as the local hub does). */
  audit?: boolean;
  /** Send the hub's spans to this OTLP/HTTP collector. */
  otlpEndpoint?: string;
  /** Turn tunnel management on (`/v1/admin/tunnels`) with this hub admin token. */
  adminToken?: string;
}

export interface TestHub {
  url: URL;
  /** A fresh configured tunnel id, not used by any other test on this hub. */
  tunnel(): string;
  /** A tunnel configured with `pass_client_authorization` and hub token {@link HUB_TOKEN}. */
  passThroughTunnel: string;
  /** The MCP ingress URL of a tunnel (and channel). */
  mcpUrl(tunnel: string, channel?: string): URL;
  agent(tunnel: string, options?: TestAgentOptions): TestAgent;
  close(): Promise<void>;
}

export const PASS_THROUGH_TUNNEL = tunnelId(0xfff);

/** Start a hub for one test file. */
export async function startTestHub(options: TestHubOptions = {}): Promise<TestHub> {
  const count = options.tunnels ?? 16;
  const ids = Array.from({ length: count }, (_, i) => tunnelId(i + 1));
  const hub: LocalHub = await startLocalHub({
    port: options.port,
    stateDir: options.stateDir,
    ...(options.audit === undefined ? {} : { audit: options.audit }),
    settings: { livenessMs: 2000, sseKeepaliveMs: 200, ...options.settings },
    ...(options.otlpEndpoint ? { otlpEndpoint: options.otlpEndpoint } : {}),
    ...(options.adminToken ? { adminToken: options.adminToken } : {}),
    tunnels: [
      ...ids.map((id) => ({
        id,
        agentKeys: [AGENT_KEY, SECOND_AGENT_KEY],
        clientTokens: [CLIENT_TOKEN, SECOND_CLIENT_TOKEN],
        name: `Test ${id.slice(-4)}`,
      })),
      { id: PASS_THROUGH_TUNNEL, agentKeys: [AGENT_KEY], clientTokens: [HUB_TOKEN], passClientAuthorization: true },
    ],
  });
  let next = 0;
  return {
    url: hub.url,
    tunnel() {
      const id = ids[next++];
      if (!id) throw new Error(`the test hub has only ${count} tunnels; start it with more`);
      return id;
    },
    passThroughTunnel: PASS_THROUGH_TUNNEL,
    mcpUrl: (tunnel, channel) => new URL(`v1/mcp/${tunnel}${channel ? `/${channel}` : ""}`, hub.url),
    agent: (tunnel, agentOptions) => new TestAgent(hub.url, tunnel, agentOptions),
    close: () => hub.close(),
  };
}

export interface TestAgentOptions {
  instanceId?: string;
  key?: string;
  /** `X-Tunnel-MCP-Server-Info` channels; omitted header when undefined. */
  channels?: Array<{ name: string; procAffinity?: boolean }>;
  /** `X-Airlock-Capabilities`. */
  capabilities?: string[];
}

/** A command as a poll returns it. */
export type PolledCommand = WireCommand;

export interface PollResult {
  status: number;
  headers: Headers;
  body: unknown;
  commands: PolledCommand[];
}

/** An agent speaking the wire contract with plain fetch. */
export class TestAgent {
  readonly base: URL;
  readonly tunnel: string;
  readonly instanceId: string;
  readonly #headers: Record<string, string>;

  constructor(base: URL, tunnel: string, options: TestAgentOptions = {}) {
    this.base = base;
    this.tunnel = tunnel;
    this.instanceId = options.instanceId ?? `agent-${crypto.randomUUID()}`;
    this.#headers = {
      Authorization: `Bearer ${options.key ?? AGENT_KEY}`,
      Accept: "application/json",
      "X-Tunnel-Client-Name": "airlock-test-agent",
      "X-Tunnel-Client-Version": "0.0.0",
      "X-Tunnel-Client-Instance-Id": this.instanceId,
    };
    if (options.channels) {
      this.#headers["X-Tunnel-MCP-Server-Info"] = JSON.stringify({
        version: 1,
        channels: options.channels.map((c) =>
          c.procAffinity ? { name: c.name, proc_affinity: true } : { name: c.name },
        ),
      });
    }
    if (options.capabilities) this.#headers["X-Airlock-Capabilities"] = options.capabilities.join(",");
  }

  url(path = ""): URL {
    return new URL(`v1/tunnels/${this.tunnel}${path}`, this.base);
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.#headers, ...extra };
  }

  metadata(): Promise<Response> {
    return fetch(this.url(), { headers: this.headers() });
  }

  /** One long-poll. */
  async poll(
    params: { limit?: number; timeoutMs?: number; channels?: string[]; signal?: AbortSignal } = {},
  ): Promise<PollResult> {
    const url = this.url("/poll");
    url.searchParams.set("limit", String(params.limit ?? 25));
    url.searchParams.set("timeout_ms", String(params.timeoutMs ?? 5000));
    for (const channel of params.channels ?? []) url.searchParams.append("channel", channel);
    const response = await fetch(url, { headers: this.headers(), signal: params.signal });
    const text = await response.text();
    const body: unknown = text ? JSON.parse(text) : undefined;
    const commands = response.status === 200 ? (body as { commands: PolledCommand[] }).commands : [];
    return { status: response.status, headers: response.headers, body, commands };
  }

  /** Poll until at least one command arrives (each poll held up to `timeoutMs`). */
  async next(timeoutMs = 5000): Promise<PolledCommand> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const result = await this.poll({ timeoutMs: Math.max(1, deadline - Date.now()), limit: 1 });
      if (result.commands[0]) return result.commands[0];
    }
    throw new Error(`agent ${this.instanceId}: no command within ${timeoutMs} ms`);
  }

  /** Post one response for `command`. */
  respond(
    command: Pick<PolledCommand, "request_id" | "shard_token" | "channel">,
    payload: Record<string, unknown>,
    shardToken?: string,
  ): Promise<Response> {
    return fetch(this.url("/response"), {
      method: "POST",
      headers: this.headers({
        "Content-Type": "application/json",
        "X-Tunnel-Shard-Token": shardToken ?? command.shard_token,
      }),
      body: JSON.stringify({ request_id: command.request_id, channel: command.channel, ...payload }),
    });
  }

  /** Answer a JSON-RPC request command with `result`. */
  reply(
    command: PolledCommand,
    result: unknown,
    headers: Record<string, string[]> = { "Content-Type": ["application/json"] },
  ): Promise<Response> {
    return this.respond(command, {
      resp_json: { jsonrpc: "2.0", id: command.jsonrpc?.id ?? null, result },
      resp_headers: headers,
      resp_code: 200,
      resp_type: "jsonrpc_response",
    });
  }
}

/** An MCP client's POST to the ingress. */
export function mcpPost(
  url: URL,
  message: unknown,
  options: { token?: string; headers?: Record<string, string>; signal?: AbortSignal; accept?: string } = {},
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${options.token ?? CLIENT_TOKEN}`,
      "Content-Type": "application/json",
      Accept: options.accept ?? "application/json, text/event-stream",
      ...options.headers,
    },
    body: typeof message === "string" ? message : JSON.stringify(message),
    signal: options.signal,
  });
}

/**
 * A client (`token`) initializes at `url` and `agent` answers with `sessionId`: the hub
 * now holds that session, bound to the token. Resolves once the client has the answer.
 */
export async function openSession(url: URL, agent: TestAgent, sessionId: string, token = CLIENT_TOKEN): Promise<void> {
  const initialize = {
    jsonrpc: "2.0",
    id: 0,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1" } },
  };
  const response = mcpPost(url, initialize, { token });
  const command = await agent.next();
  await agent.respond(command, {
    resp_json: { jsonrpc: "2.0", id: 0, result: {} },
    resp_code: 200,
    resp_type: "jsonrpc_response",
    resp_headers: { "Content-Type": ["application/json"], "Mcp-Session-Id": [sessionId] },
  });
  const answer = await response;
  await answer.body?.cancel();
  if (answer.headers.get("mcp-session-id") !== sessionId)
    throw new Error(`initialize answered ${answer.status} without session ${sessionId}`);
}

/** What {@link serveTunnel} saw, for assertions. */
export interface ServedTunnel {
  /** `command_type` and JSON-RPC method (if any) of every command, in arrival order. */
  seen: Array<{ type: string; method?: string; id?: unknown }>;
  stop(): Promise<void>;
}

/**
 * A minimal agent loop for hub tests: polls with `agent`, forwards each `jsonrpc` command
 * to a real {@link Backend}, posts every notify and the final answer, ends sessions on
 * `session_termination`, and aborts work on `airlock_cancel`. The real agent lives in
 * `agent/`; this stands in for it where a test is about the hub.
 */
export function serveTunnel(
  agent: TestAgent,
  backend: Backend,
  options: { pollTimeoutMs?: number } = {},
): ServedTunnel {
  const seen: ServedTunnel["seen"] = [];
  const running = new Map<string, AbortController>();
  const work = new Set<Promise<void>>();
  const stopping = new AbortController();

  const handle = async (command: PolledCommand): Promise<void> => {
    const controller = new AbortController();
    running.set(command.request_id, controller);
    let chain = Promise.resolve();
    const post = (payload: Record<string, unknown>) => {
      chain = chain.then(() => agent.respond(command, payload).then((r) => void r.body?.cancel()));
      return chain;
    };
    try {
      if (command.command_type === "session_termination") {
        const result = await backend.terminateSession(command.headers, controller.signal);
        const status = result.kind === "terminated" ? result.status : failureStatus(result.failure);
        await post({ resp_code: status, resp_type: "session_termination_response" });
        return;
      }
      const message = command.jsonrpc!;
      const result = await backend.exchange({
        message,
        headers: command.headers,
        signal: controller.signal,
        notify: (notification, headers) =>
          void post({ resp_json: notification, resp_headers: headers, resp_code: 200, resp_type: "jsonrpc_notify" }),
      });
      if (controller.signal.aborted) return;
      if (result.kind === "response") {
        await post({
          resp_json: result.message,
          resp_headers: result.headers,
          resp_code: result.status,
          resp_type: "jsonrpc_response",
        });
      } else if (result.kind === "ack") {
        await post({ resp_headers: result.headers, resp_code: result.status, resp_type: "notify_ack" });
      } else if (result.kind === "failure") {
        await post({
          resp_json: failureMessage(message.id, result.failure),
          resp_code: failureStatus(result.failure),
          resp_type: "jsonrpc_response",
        });
      }
    } finally {
      running.delete(command.request_id);
    }
  };

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      let commands: PolledCommand[];
      try {
        ({ commands } = await agent.poll({ timeoutMs: options.pollTimeoutMs ?? 500, signal: stopping.signal }));
      } catch {
        continue;
      }
      for (const command of commands) {
        seen.push({
          type: command.command_type,
          method: command.jsonrpc?.method as string | undefined,
          id: command.jsonrpc?.id,
        });
        if (command.command_type === "airlock_cancel") {
          running.get(String(command.cancel_request_id))?.abort();
          continue;
        }
        const task = handle(command).catch(() => {});
        work.add(task);
        void task.then(() => work.delete(task));
      }
    }
  })();

  return {
    seen,
    async stop() {
      stopping.abort();
      await loop;
      for (const controller of running.values()) controller.abort();
      await Promise.all(work);
    },
  };
}
