/**
 * The relay Worker in workerd (Miniflare) in front of the contract-checking fake control
 * plane, plus an agent speaking the wire contract with plain fetch that keeps every
 * status, header and body it receives, so a test can prove what never reached an agent.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { startFakeControlPlane, type FakeCommand, type FakeControlPlane } from "../support/fake-control-plane.ts";
import {
  startLocalHub,
  type LocalHub,
  type LocalHubOptions,
  type LocalHubSettings,
} from "../../agent/hub-local/run.ts";
import { parseNdjson, verifyChain, type AuditRecord } from "../../shared/audit/index.ts";
import { AGENT_KEY, CLIENT_TOKEN, TestAgent, tunnelId } from "../support/hub.ts";

export const UPSTREAM_KEY = "sk-upstream-relay-key-5f2c9a0e7b13";
export const RELAY_AGENT_KEY = "relay-agent-key-0123456789";
export const AUDITOR_TOKEN = "auditor-token-0123456789";

/** The test policy: issue 5's example, with request limits, a response limit and tool pinning in block mode. */
export const RELAY_POLICY = readFileSync(new URL("./policy.yaml", import.meta.url), "utf8");

export interface RelayStack {
  cp: FakeControlPlane;
  relay: LocalHub;
  agent: CapturingAgent;
  /** GET /v1/audit/<tunnel>[?after=SEQ] with the auditor token. */
  exportAudit(after?: number, token?: string): Promise<Response>;
  /** The whole chain, parsed. */
  records(): Promise<AuditRecord[]>;
  close(): Promise<void>;
}

/** Start the fake upstream and a relay in front of it; extra tunnels may relay elsewhere. */
export async function startRelayStack(
  options: Partial<LocalHubOptions> & { maxHoldMs?: number } = {},
): Promise<RelayStack> {
  const cp = await startFakeControlPlane({ apiKey: UPSTREAM_KEY, maxHoldMs: options.maxHoldMs ?? 2000 });
  let relay: LocalHub;
  try {
    relay = await startLocalHub({
      policy: RELAY_POLICY,
      auditorToken: AUDITOR_TOKEN,
      ...options,
      tunnels: [
        {
          id: cp.tunnelId,
          agentKeys: [RELAY_AGENT_KEY],
          clientTokens: [],
          upstream: cp.baseUrl,
          upstreamKey: UPSTREAM_KEY,
        },
        ...(options.tunnels ?? []),
      ],
    });
  } catch (error) {
    await cp.close();
    throw error;
  }
  const exportAudit = (after?: number, token = AUDITOR_TOKEN) =>
    fetch(new URL(`v1/audit/${cp.tunnelId}${after === undefined ? "" : `?after=${after}`}`, relay.url), {
      headers: { Authorization: `Bearer ${token}` },
    });
  return {
    cp,
    relay,
    agent: new CapturingAgent(relay.url, cp.tunnelId),
    exportAudit,
    async records() {
      const parsed = parseNdjson(await (await exportAudit()).text());
      if (!parsed.ok) throw new Error(`the export does not parse at line ${parsed.line}: ${parsed.reason}`);
      return parsed.records;
    },
    close: async () => {
      await relay.close();
      await cp.close();
    },
  };
}

/** A hub (no upstream) with {@link RELAY_POLICY} and audit on, and tunnels `tunnelId(1..8)` for {@link AGENT_KEY} / {@link CLIENT_TOKEN}. */
export function startPolicyHub(settings: LocalHubSettings): Promise<LocalHub> {
  return startLocalHub({
    policy: RELAY_POLICY,
    auditorToken: AUDITOR_TOKEN,
    settings,
    tunnels: Array.from({ length: 8 }, (_, i) => ({
      id: tunnelId(i + 1),
      agentKeys: [AGENT_KEY],
      clientTokens: [CLIENT_TOKEN],
    })),
  });
}

/** A tunnel's whole audit export from `hub`, parsed, its chain verified. */
export async function hubRecords(hub: LocalHub, id: string): Promise<AuditRecord[]> {
  const response = await fetch(new URL(`v1/audit/${id}`, hub.url), {
    headers: { Authorization: `Bearer ${AUDITOR_TOKEN}` },
  });
  if (response.status !== 200) throw new Error(`the audit export answered ${response.status}`);
  const parsed = parseNdjson(await response.text());
  if (!parsed.ok) throw new Error(`the export does not parse at line ${parsed.line}: ${parsed.reason}`);
  const verified = await verifyChain(parsed.records);
  if (!verified.ok) throw new Error(`the chain does not verify: ${JSON.stringify(verified)}`);
  return parsed.records;
}

/** One answer the agent received, kept whole. */
export interface Seen {
  status: number;
  headers: Headers;
  text: string;
}

/** An agent (the plain-fetch {@link TestAgent}) that records everything it receives (`seen`). */
export class CapturingAgent {
  readonly seen: Seen[];
  readonly wire: TestAgent;

  constructor(base: URL, tunnel: string, key = RELAY_AGENT_KEY, seen: Seen[] = []) {
    this.seen = seen;
    this.wire = new TestAgent(base, tunnel, {
      key,
      channels: [{ name: "main" }],
      instanceId: `relay-test-${crypto.randomUUID()}`,
    });
  }

  url(path = ""): URL {
    return this.wire.url(path);
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.wire.headers(extra);
  }

  async #keep(response: Promise<Response>): Promise<Seen> {
    const answer = await response;
    const seen = { status: answer.status, headers: answer.headers, text: await answer.text() };
    this.seen.push(seen);
    return seen;
  }

  /** The same agent presenting another key (what it receives is kept here too). */
  withKey(key: string): CapturingAgent {
    return new CapturingAgent(this.wire.base, this.wire.tunnel, key, this.seen);
  }

  /** Every header and body received so far, as one text to search. */
  everything(): string {
    return this.seen
      .map(
        (seen) =>
          `${seen.status}\n${[...seen.headers].map(([name, value]) => `${name}: ${value}`).join("\n")}\n\n${seen.text}`,
      )
      .join("\n");
  }

  metadata(): Promise<Seen> {
    return this.#keep(fetch(this.url(), { headers: this.headers() }));
  }

  /** One poll; `query` is sent as given (e.g. `limit=3&timeout_ms=500`). */
  poll(query = "limit=25&timeout_ms=300"): Promise<Seen> {
    return this.#keep(fetch(new URL(`${this.url("/poll")}?${query}`), { headers: this.headers() }));
  }

  /** The commands of a poll answer (none for 204). */
  static commands(seen: Seen): FakeCommand[] {
    return seen.status === 200 ? (JSON.parse(seen.text) as { commands: FakeCommand[] }).commands : [];
  }

  /** Post raw text as a response for a command. */
  postText(shardToken: string, text: string): Promise<Seen> {
    return this.#keep(
      fetch(this.url("/response"), {
        method: "POST",
        headers: this.headers({ "Content-Type": "application/json", "X-Tunnel-Shard-Token": shardToken }),
        body: text,
      }),
    );
  }

  /** Post a response payload for a command; returns what was sent too. */
  async post(command: FakeCommand, payload: Record<string, unknown>): Promise<Seen & { sent: string }> {
    const sent = JSON.stringify({ request_id: command.request_id, channel: command.channel ?? "main", ...payload });
    return { ...(await this.postText(command.shard_token, sent)), sent };
  }

  /** Answer a JSON-RPC request with `result`. */
  reply(command: FakeCommand, result: unknown): Promise<Seen & { sent: string }> {
    return this.post(command, {
      resp_json: { jsonrpc: "2.0", id: command.jsonrpc?.id ?? null, result },
      resp_headers: { "Content-Type": ["application/json"] },
      resp_code: 200,
      resp_type: "jsonrpc_response",
    });
  }
}

/** One exchange a {@link RecordingProxy} passed on. */
export interface Exchanged {
  method: string;
  path: string;
  requestBody: string;
  status: number;
  responseHeaders: Array<[string, string]>;
  responseBody: string;
}

export interface RecordingProxy {
  url: URL;
  exchanges: Exchanged[];
  /** Everything the client (the agent) received so far: statuses, headers and bodies, as one text. */
  received(): string;
  close(): Promise<void>;
}

/** A loopback HTTP proxy to `target` that keeps every request body and every answer whole. */
export async function startRecordingProxy(target: URL): Promise<RecordingProxy> {
  const exchanges: Exchanged[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
    const requestBody = Buffer.concat(chunks).toString("utf8");
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string" && !["host", "connection", "content-length", "transfer-encoding"].includes(name))
        headers.set(name, value);
    }
    // Kept at once: what the agent sent is visible before anything answers it.
    const exchange: Exchanged = {
      method: req.method ?? "",
      path: req.url ?? "",
      requestBody,
      status: 0,
      responseHeaders: [],
      responseBody: "",
    };
    exchanges.push(exchange);
    try {
      const answer = await fetch(new URL(req.url ?? "/", target), {
        method: req.method,
        headers,
        body: req.method === "GET" ? undefined : requestBody,
      });
      exchange.responseBody = await answer.text();
      exchange.responseHeaders = [...answer.headers].filter(
        ([name]) => !["content-length", "transfer-encoding", "connection", "keep-alive"].includes(name),
      );
      exchange.status = answer.status;
      res.writeHead(answer.status, Object.fromEntries(exchange.responseHeaders));
      res.end(exchange.responseBody);
    } catch {
      res.destroy();
    }
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}/`),
    exchanges,
    received: () =>
      exchanges
        .map((e) => `${e.status}\n${e.responseHeaders.map(([n, v]) => `${n}: ${v}`).join("\n")}\n\n${e.responseBody}`)
        .join("\n"),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
