/**
 * A fake of OpenAI's tunnel control-plane endpoint (the agent-facing half of Secure MCP
 * Tunnel) for tests of the agent: real HTTP on 127.0.0.1, any port, under Node, Deno and Bun.
 *
 * It is strict where the real service is and stricter where the contract is precise:
 * every request the agent sends is checked against `docs/openapi.json` (path, method, query
 * parameters, headers, response bodies, shard tokens) and each breach is recorded in
 * {@link FakeControlPlane.violations} — a test should end with `assertNoViolations()`.
 *
 * By default it behaves like the service: a poll takes up to `limit` queued commands, or
 * holds until one is queued or `timeout_ms` passes (then 204); a response post is
 * accepted once per request (a second final gets 404 `pending_request_not_found`).
 * Tests script deviations with {@link FakeControlPlane.scriptPoll},
 * {@link FakeControlPlane.scriptResponse} and {@link FakeControlPlane.scriptMetadata}.
 *
 * ```ts
 * const cp = await startFakeControlPlane();
 * t.after(() => cp.close());
 * const [cmd] = cp.enqueue({ jsonrpc: { jsonrpc: "2.0", id: 1, method: "tools/list" } });
 * // … start the agent against cp.baseUrl / cp.tunnelId / cp.apiKey …
 * const final = await cp.waitForFinal(cmd.request_id);
 * cp.assertNoViolations();
 * ```
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { serve } from "@hono/node-server";
import type { HttpBindings } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { decodeServerInfo, FINAL_RESPONSE_TYPES, normalizeChannel } from "../../shared/protocol/index.ts";
import type { ResponseType } from "../../shared/protocol/index.ts";
import { sleep } from "../../agent/control-plane/backoff.ts";
import { assertParameter, assertSchema, queryParameters, requiredHeaders } from "./openapi.ts";

/** A command as the fake delivers it (the wire shape, unvalidated so tests can send broken ones). */
export interface FakeCommand {
  request_id: string;
  shard_token: string;
  command_type?: string;
  channel?: string | null;
  created_at: string;
  response_timeout?: unknown;
  headers?: Record<string, string[]>;
  jsonrpc?: Record<string, unknown>;
  [field: string]: unknown;
}

/** What a test gives {@link FakeControlPlane.enqueue}; missing fields get defaults. */
export type FakeCommandInput = Partial<FakeCommand>;

/** A scripted answer, used once in place of the fake's normal behaviour. */
export interface ScriptedAnswer {
  /** HTTP status (default 200). */
  status?: number;
  /** For a 200 poll: the commands to deliver, as given (not validated). */
  commands?: FakeCommandInput[];
  /** For errors (status ≥ 400): the error envelope `{"error":{message,type,code}}`. */
  code?: string | null;
  message?: string;
  type?: string;
  /** `Retry-After` header value, sent as is (may be invalid on purpose). */
  retryAfter?: string;
  /** `X-Request-Id` header: the service's id for this request. */
  requestId?: string;
  /** A raw body replacing the JSON one (e.g. `"not json"`). */
  body?: string;
  /** Wait this long before answering (the long-poll keeps being held). */
  delayMs?: number;
  /** Close the connection without any HTTP answer (after `delayMs`). */
  drop?: boolean;
  /** Extra response headers (e.g. what an Airlock hub advertises). */
  headers?: Record<string, string>;
}

/** Restricts a scripted response answer to some posts. */
export interface ResponseMatch {
  requestId?: string;
  respType?: ResponseType;
}

/** One request the agent made, whatever route. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string[]>;
  /** Lower-cased names. */
  headers: Record<string, string>;
}

/** One poll and how the fake answered it. */
export interface RecordedPoll {
  limit?: number;
  timeoutMs?: number;
  channels: string[];
  headers: Record<string, string>;
  /** Status the fake answered with (undefined while held, or when dropped). */
  status?: number;
  /** Request ids delivered. */
  delivered: string[];
}

/** One response post and how the fake answered it. */
export interface RecordedResponse {
  requestId: string;
  respType: ResponseType;
  final: boolean;
  /** The parsed JSON body. */
  payload: Record<string, unknown>;
  /** The `X-Tunnel-Shard-Token` header. */
  shardToken?: string;
  headers: Record<string, string>;
  /** Status the fake answered with. */
  status?: number;
}

export interface FakeControlPlaneOptions {
  /** Default: a valid `tunnel_` + 32 characters id. */
  tunnelId?: string;
  /** The bearer key the fake accepts. */
  apiKey?: string;
  /** Path prefix before `/v1` (`control_plane.url_path`), e.g. `/relay`. Requests outside it are violations. */
  urlPath?: string;
  /** Upper bound on a poll hold, whatever `timeout_ms` asks (default 30 000, like a service-side bound). */
  maxHoldMs?: number;
  /** Default `limit` when a poll sends none (default 1). */
  defaultLimit?: number;
  /** `GET /v1/tunnels/{id}` body. */
  metadata?: { name?: string; description?: string };
}

export interface FakeControlPlane {
  /** Host root to configure as `control_plane.base_url` (no path). */
  readonly baseUrl: string;
  readonly tunnelId: string;
  readonly apiKey: string;
  readonly urlPath: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  readonly polls: RecordedPoll[];
  readonly responses: RecordedResponse[];
  /** Contract breaches seen so far, one sentence each. */
  readonly violations: string[];
  /** Commands queued and not yet delivered. */
  readonly queued: number;
  /** Polls being held right now. */
  readonly heldPolls: number;
  /** Queue commands for delivery (defaults: ids, shard tokens, `created_at`, `command_type: "jsonrpc"`, a ping). Wakes held polls. */
  enqueue(...commands: FakeCommandInput[]): FakeCommand[];
  /** Answer the next `times` polls (default 1) with `answer` instead of the default behaviour. Scripts run in order. */
  scriptPoll(answer: ScriptedAnswer, times?: number): void;
  /** Answer the next response post that matches `match` with `answer`. Rules are tried in the order added, each used once. */
  scriptResponse(answer: ScriptedAnswer, match?: ResponseMatch): void;
  /** Answer the next metadata request with `answer`. */
  scriptMetadata(answer: ScriptedAnswer): void;
  /** Resolves with the first final response for `requestId` the fake accepted (200); rejects after `timeoutMs`. */
  waitForFinal(requestId: string, timeoutMs?: number): Promise<RecordedResponse>;
  /** Resolves once `predicate` holds (re-checked on every request and answer); rejects after `timeoutMs`. */
  waitFor<T>(predicate: () => T | undefined | false, timeoutMs?: number, what?: string): Promise<T>;
  /** Resolves once `count` polls have arrived. */
  waitForPolls(count: number, timeoutMs?: number): Promise<RecordedPoll>;
  /** Responses recorded for one request, in order. */
  responsesFor(requestId: string): RecordedResponse[];
  /** Throws, listing them, when there are violations. */
  assertNoViolations(): void;
  /** Release held polls and close the server and its connections. */
  close(): Promise<void>;
}

const DEFAULT_TUNNEL_ID = "tunnel_0123456789abcdefghijklmnopqrstuv";
const DEFAULT_API_KEY = "sk-fake-runtime-key-0001";
const PATHS = {
  metadata: "/v1/tunnels/{tunnel_id}",
  poll: "/v1/tunnels/{tunnel_id}/poll",
  response: "/v1/tunnels/{tunnel_id}/response",
} as const;

/** Start the fake on 127.0.0.1 at a free port. Close it with `close()` (e.g. in `t.after`). */
export async function startFakeControlPlane(options: FakeControlPlaneOptions = {}): Promise<FakeControlPlane> {
  const tunnelId = options.tunnelId ?? DEFAULT_TUNNEL_ID;
  const apiKey = options.apiKey ?? DEFAULT_API_KEY;
  const prefix = (options.urlPath ?? "")
    .split("/")
    .filter(Boolean)
    .map((p) => `/${p}`)
    .join("");
  const maxHoldMs = options.maxHoldMs ?? 30_000;
  const defaultLimit = options.defaultLimit ?? 1;

  const requests: RecordedRequest[] = [];
  const polls: RecordedPoll[] = [];
  const responses: RecordedResponse[] = [];
  const violations: string[] = [];
  const queue: FakeCommand[] = [];
  const delivered = new Map<string, FakeCommand>();
  const finals = new Map<string, RecordedResponse>();
  const pollScripts: ScriptedAnswer[] = [];
  const responseScripts: Array<{ answer: ScriptedAnswer; match: ResponseMatch }> = [];
  const metadataScripts: ScriptedAnswer[] = [];
  const closing = new AbortController();
  let instanceId: string | undefined;
  let counter = 0;
  let held = 0;
  let listeners: Array<() => void> = [];

  /** Wake everything waiting for a change: held polls and `waitFor` callers. */
  const changed = () => {
    const current = listeners;
    listeners = [];
    for (const listener of current) listener();
  };
  const nextChange = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      listeners.push(done);
      signal.addEventListener("abort", done, { once: true });
    });
  const violation = (text: string) => {
    violations.push(text);
    changed();
  };

  function complete(input: FakeCommandInput): FakeCommand {
    counter++;
    const command: FakeCommand = {
      request_id: `req_${counter}`,
      shard_token: `shard.${counter}.${crypto.randomUUID().slice(0, 8)}`,
      command_type: "jsonrpc",
      channel: "main",
      created_at: new Date().toISOString(),
      ...input,
    };
    if (command.command_type === "jsonrpc" && input.jsonrpc === undefined) {
      command.jsonrpc = { jsonrpc: "2.0", id: counter, method: "ping" };
    }
    return command;
  }

  function headersOf(c: Context): Record<string, string> {
    const out: Record<string, string> = {};
    c.req.raw.headers.forEach((value, name) => {
      out[name.toLowerCase()] = value;
    });
    return out;
  }

  /** Checks every agent → control plane call shares; records violations. */
  function checkCommon(c: Context, path: string, method: string): Record<string, string> {
    const headers = headersOf(c);
    const url = new URL(c.req.url);
    const query: Record<string, string[]> = {};
    url.searchParams.forEach((value, name) => {
      const values = query[name] ?? [];
      values.push(value);
      query[name] = values;
    });
    requests.push({ method: c.req.method, path: url.pathname, query, headers });
    const where = `${method.toUpperCase()} ${path}`;
    const auth = headers.authorization;
    if (!auth || !/^Bearer \S+$/.test(auth)) violation(`${where}: Authorization is not "Bearer <key>"`);
    if (!(headers.accept ?? "").includes("application/json"))
      violation(`${where}: Accept is not application/json (got ${JSON.stringify(headers.accept)})`);
    // Every header the contract requires on this operation (the client headers on all of them).
    for (const name of requiredHeaders(path, method)) {
      if (name === "X-Tunnel-Shard-Token" || name === "X-Tunnel-MCP-Server-Info") continue; // checked below, in detail
      const value = headers[name.toLowerCase()];
      if (!value) violation(`${where}: ${name} missing`);
      else check(() => assertParameter(path, method, name, value), where);
    }
    const instance = headers["x-tunnel-client-instance-id"];
    if (instance) {
      if (instanceId === undefined) instanceId = instance;
      else if (instanceId !== instance)
        violation(`${where}: X-Tunnel-Client-Instance-Id changed from ${instanceId} to ${instance} within one process`);
    }
    const info = headers["x-tunnel-mcp-server-info"];
    if (info === undefined) violation(`${where}: X-Tunnel-MCP-Server-Info missing`);
    else {
      check(() => assertParameter(path, method, "X-Tunnel-MCP-Server-Info", info), where);
      const decoded = decodeServerInfo(info);
      if (!decoded) violation(`${where}: X-Tunnel-MCP-Server-Info is not a valid v1 declaration: ${info}`);
      else {
        const names = decoded.channels.map((ch) => ch.name);
        if (new Set(names).size !== names.length)
          violation(`${where}: X-Tunnel-MCP-Server-Info declares a channel twice`);
        if (decoded.channels.some((ch) => ch.proc_affinity === false))
          violation(`${where}: X-Tunnel-MCP-Server-Info sends proc_affinity:false (omit it instead)`);
        if (JSON.stringify(JSON.parse(info)) !== info)
          violation(`${where}: X-Tunnel-MCP-Server-Info is not compact JSON`);
      }
    }
    changed();
    return headers;
  }

  function check(fn: () => void, where: string) {
    try {
      fn();
    } catch (error) {
      violation(`${where}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** The service's answer to a request authenticated for another key or tunnel. */
  function refused(c: Context, headers: Record<string, string>): Response | undefined {
    if (c.req.param("tunnelId") !== tunnelId) {
      return c.json(
        {
          error: {
            message: "The caller does not have tunnel use permission.",
            type: "invalid_request_error",
            param: null,
            code: "tunnel_use_forbidden",
          },
        },
        403,
      );
    }
    if (headers.authorization !== `Bearer ${apiKey}`) {
      return c.json(
        {
          error: {
            message: "Incorrect API key provided.",
            type: "invalid_request_error",
            param: null,
            code: "invalid_api_key",
          },
        },
        401,
      );
    }
    return undefined;
  }

  /** Build the HTTP answer for a script (a dropped connection destroys the socket first). */
  async function scripted(
    c: Context<{ Bindings: HttpBindings }>,
    answer: ScriptedAnswer,
    okBody: unknown,
  ): Promise<Response> {
    if (answer.delayMs) await sleep(answer.delayMs, closing.signal);
    if (answer.drop) {
      c.env.incoming.socket.destroy();
      return new Response(null, { status: 500 });
    }
    const status = answer.status ?? 200;
    const headers: Record<string, string> = { ...answer.headers };
    if (answer.retryAfter !== undefined) headers["Retry-After"] = answer.retryAfter;
    if (answer.requestId !== undefined) headers["X-Request-Id"] = answer.requestId;
    if (answer.body !== undefined)
      return new Response(answer.body, { status, headers: { "Content-Type": "application/json", ...headers } });
    if (status === 204) return new Response(null, { status, headers });
    if (status >= 400) {
      const error = {
        message: answer.message ?? `scripted ${status}`,
        type: answer.type ?? (status >= 500 ? "server_error" : "invalid_request_error"),
        param: null,
        code: answer.code ?? null,
      };
      return Response.json({ error }, { status, headers });
    }
    return Response.json(okBody, { status, headers });
  }

  function take(limit: number, channels: string[]): FakeCommand[] {
    const out: FakeCommand[] = [];
    for (let i = 0; i < queue.length && out.length < limit; ) {
      const command = queue[i]!;
      const channel = normalizeChannel(typeof command.channel === "string" ? command.channel : undefined);
      if (channels.length === 0 || (channel !== undefined && channels.includes(channel))) {
        out.push(command);
        queue.splice(i, 1);
      } else i++;
    }
    return out;
  }

  function deliver(poll: RecordedPoll, commands: FakeCommand[]) {
    for (const command of commands) {
      delivered.set(command.request_id, command);
      poll.delivered.push(command.request_id);
    }
  }

  /** A query parameter as the schema sees it: digits become integers, anything else stays a string. */
  const queryValue = (raw: string) => (/^[0-9]+$/.test(raw) ? Number(raw) : raw);

  const app = new Hono<{ Bindings: HttpBindings }>();
  const base = `${prefix}/v1/tunnels/:tunnelId`;

  app.get(base, async (c) => {
    const headers = checkCommon(c, PATHS.metadata, "get");
    const refusal = refused(c, headers);
    if (refusal) return refusal;
    const script = metadataScripts.shift();
    const body = {
      id: tunnelId,
      name: options.metadata?.name ?? "Fake tunnel",
      description: options.metadata?.description ?? "fake control plane",
    };
    return scripted(c, script ?? {}, body);
  });

  app.get(`${base}/poll`, async (c) => {
    const headers = checkCommon(c, PATHS.poll, "get");
    const where = "GET /poll";
    const url = new URL(c.req.url);
    for (const name of new Set(url.searchParams.keys())) {
      if (!queryParameters(PATHS.poll, "get").includes(name)) violation(`${where}: unexpected query parameter ${name}`);
    }
    const poll: RecordedPoll = { channels: url.searchParams.getAll("channel"), headers, delivered: [] };
    for (const [name, key] of [
      ["limit", "limit"],
      ["timeout_ms", "timeoutMs"],
    ] as const) {
      const raw = url.searchParams.getAll(name);
      if (raw.length > 1) violation(`${where}: ${name} given ${raw.length} times`);
      if (raw.length === 0) continue;
      const value = queryValue(raw[0]!);
      check(() => assertParameter(PATHS.poll, "get", name, value), where);
      if (typeof value === "number") poll[key] = value;
    }
    polls.push(poll);
    changed();
    const refusal = refused(c, headers);
    if (refusal) {
      poll.status = refusal.status;
      return refusal;
    }
    const script = pollScripts.shift();
    if (script) {
      const commands = (script.commands ?? []).map(complete);
      if ((script.status ?? 200) === 200) deliver(poll, commands);
      const response = await scripted(c, script, { commands });
      if (!script.drop) poll.status = response.status;
      changed();
      return response;
    }
    const limit = poll.limit ?? defaultLimit;
    const holdMs = Math.min(poll.timeoutMs ?? maxHoldMs, maxHoldMs);
    const until = Date.now() + holdMs;
    const signal = AbortSignal.any([closing.signal, c.req.raw.signal]);
    let commands = take(limit, poll.channels);
    held++;
    while (commands.length === 0 && !signal.aborted && Date.now() < until) {
      await nextChange(until - Date.now(), signal);
      commands = take(limit, poll.channels);
    }
    held--;
    if (signal.aborted && commands.length > 0) queue.unshift(...commands);
    if (signal.aborted || commands.length === 0) {
      poll.status = 204;
      changed();
      return c.body(null, 204);
    }
    deliver(poll, commands);
    poll.status = 200;
    changed();
    return c.json({ commands }, 200);
  });

  app.post(`${base}/response`, async (c) => {
    const headers = checkCommon(c, PATHS.response, "post");
    const refusal = refused(c, headers);
    if (refusal) return refusal;
    let where = "POST /response";
    if (!(headers["content-type"] ?? "").startsWith("application/json"))
      violation(`${where}: Content-Type is not application/json`);
    const text = await c.req.text();
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(text) as Record<string, unknown>;
    } catch {
      violation(`${where}: body is not JSON: ${text.slice(0, 200)}`);
      return c.json(
        { error: { message: "invalid JSON", type: "invalid_request_error", param: null, code: null } },
        400,
      );
    }
    check(() => assertSchema("TunnelResponsePayload", payload), where);
    const requestId = String(payload.request_id);
    const respType = (payload.resp_type ?? "jsonrpc_response") as ResponseType;
    where = `${where} ${requestId} ${respType}`;
    if (payload && typeof payload === "object" && "shard_token" in payload)
      violation(`${where}: shard_token must not be in the body`);
    const shardToken = headers["x-tunnel-shard-token"];
    const record: RecordedResponse = {
      requestId,
      respType,
      final: FINAL_RESPONSE_TYPES.has(respType),
      payload,
      headers,
    };
    if (shardToken !== undefined) record.shardToken = shardToken;
    responses.push(record);
    const command = delivered.get(requestId);
    if (!command) violation(`${where}: answers a request the fake never delivered`);
    else {
      if (shardToken === undefined) violation(`${where}: X-Tunnel-Shard-Token missing`);
      else if (shardToken !== command.shard_token)
        violation(`${where}: X-Tunnel-Shard-Token ${shardToken} is not the command's (${command.shard_token})`);
      const channel = normalizeChannel(typeof command.channel === "string" ? command.channel : undefined);
      if (channel !== undefined && payload.channel !== channel)
        violation(
          `${where}: channel ${JSON.stringify(payload.channel)} does not echo the command's ${JSON.stringify(channel)}`,
        );
    }
    const hasBody = payload.resp_json !== undefined && payload.resp_json !== null;
    // Airlock's get-stream extension opens a stream with a notify that carries no message.
    const streamOpen = respType === "jsonrpc_notify" && command?.command_type === "airlock_stream_open";
    if ((respType === "jsonrpc_response" || respType === "jsonrpc_notify") && !hasBody && !streamOpen)
      violation(`${where}: resp_json missing`);
    if ((respType === "notify_ack" || respType === "session_termination_response") && hasBody)
      violation(`${where}: resp_json must be absent`);
    // tunnel-client's OAuth discovery: the command is answered with its own type, carrying the metadata document.
    if (respType === "oauth_discovery_response" && !hasBody) violation(`${where}: resp_json missing`);
    if ((command?.command_type === "oauth_discovery") !== (respType === "oauth_discovery_response") && command)
      violation(`${where}: a ${command.command_type} command answered with ${respType}`);
    if (command?.command_type === "oauth_discovery")
      check(() => assertSchema("OAuthDiscoveryPolledCommand", command), `${where} (the command delivered)`);
    const earlier = finals.get(requestId);
    if (earlier) {
      violation(`${where}: posted after a final response was already accepted`);
      record.status = 404;
      changed();
      return c.json(
        {
          error: {
            message: "The pending request was already processed, expired, or never existed.",
            type: "invalid_request_error",
            param: null,
            code: "pending_request_not_found",
          },
        },
        404,
      );
    }
    const rule = responseScripts.findIndex(
      ({ match }) =>
        (match.requestId === undefined || match.requestId === requestId) &&
        (match.respType === undefined || match.respType === respType),
    );
    let response: Response;
    if (rule >= 0) {
      const answer = responseScripts.splice(rule, 1)[0]!.answer;
      response = await scripted(c, answer, { status: "ok" });
      if (answer.drop) {
        changed();
        return response;
      }
    } else if (!command) {
      response = c.json(
        {
          error: {
            message: "The pending request was already processed, expired, or never existed.",
            type: "invalid_request_error",
            param: null,
            code: "pending_request_not_found",
          },
        },
        404,
      );
    } else {
      // The service names each request it answers; tunnel-client logs it as `tunnel_request_id`.
      response = c.json({ status: "ok" }, 200, { "X-Request-Id": `tsreq_${requestId}` });
    }
    record.status = response.status;
    if (record.final && response.status === 200) finals.set(requestId, record);
    changed();
    return response;
  });

  app.notFound((c) => {
    const url = new URL(c.req.url);
    requests.push({ method: c.req.method, path: url.pathname, query: {}, headers: headersOf(c) });
    violation(`${c.req.method} ${url.pathname}: not an operation of the contract${prefix ? ` under ${prefix}` : ""}`);
    return c.json({ error: { message: "Not found", type: "invalid_request_error", param: null, code: null } }, 404);
  });

  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>((resolve) => {
    // overrideGlobalObjects: false — the adapter would otherwise swap the global Request/Response for its
    // lightweight ones, which breaks Bun.serve and other servers sharing the test process.
    const server = serve(
      { fetch: app.fetch, hostname: "127.0.0.1", port: 0, overrideGlobalObjects: false },
      (info: AddressInfo) => resolve({ server, port: info.port }),
    );
  });

  async function waitFor<T>(predicate: () => T | undefined | false, timeoutMs = 5_000, what = "condition"): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const value = predicate();
      if (value !== undefined && value !== false) return value;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`fake control plane: timed out after ${timeoutMs} ms waiting for ${what}`);
      await nextChange(left, closing.signal);
      if (closing.signal.aborted) throw new Error(`fake control plane closed while waiting for ${what}`);
    }
  }

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    tunnelId,
    apiKey,
    urlPath: prefix,
    requests,
    polls,
    responses,
    violations,
    get queued() {
      return queue.length;
    },
    get heldPolls() {
      return held;
    },
    enqueue(...inputs) {
      const commands = inputs.map(complete);
      queue.push(...commands);
      changed();
      return commands;
    },
    scriptPoll(answer, times = 1) {
      for (let i = 0; i < times; i++) pollScripts.push(answer);
    },
    scriptResponse(answer, match = {}) {
      responseScripts.push({ answer, match });
    },
    scriptMetadata(answer) {
      metadataScripts.push(answer);
    },
    waitForFinal(requestId, timeoutMs = 5_000) {
      return waitFor(() => finals.get(requestId), timeoutMs, `a final response to ${requestId}`).catch(
        (error: Error) => {
          const seen = responses.filter((r) => r.requestId === requestId).map((r) => `${r.respType}→${r.status}`);
          throw new Error(`${error.message}; received for it: [${seen.join(", ")}]`);
        },
      );
    },
    waitFor,
    waitForPolls(count, timeoutMs = 5_000) {
      return waitFor(
        () => polls.length >= count && polls[count - 1],
        timeoutMs,
        `${count} polls (have ${polls.length})`,
      );
    },
    responsesFor: (requestId) => responses.filter((r) => r.requestId === requestId),
    assertNoViolations() {
      if (violations.length > 0) throw new Error(`control-plane contract violations:\n- ${violations.join("\n- ")}`);
    },
    async close() {
      closing.abort();
      changed();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      });
    },
  };
}
