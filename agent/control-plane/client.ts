/**
 * HTTP client for the control plane (OpenAI's tunnel service, an Airlock hub or relay):
 * tunnel metadata, long-poll, response post. It speaks the wire contract and nothing
 * more: retries, backoff and queueing belong to the poller and the poster. Results are
 * values, never exceptions, so callers decide per status what to do.
 */
import {
  AIRLOCK_IDENTITY,
  APIErrorResponse,
  CLIENT_HEADERS,
  decodeCommand,
  MAX_POLL_DEADLINE_MS,
  POLL_LIMIT_MAX,
  PolledCommandList,
  TunnelClientMetadata,
  withoutHubAssertedHeaders,
} from "../../shared/protocol/index.ts";
import type {
  DecodedCommand,
  HeaderMap,
  TransportErrorKind,
  TunnelResponsePayload,
} from "../../shared/protocol/index.ts";
import { classifyFetchError, connectionNeverMade } from "../backends/failure-kind.ts";
import { linkSignals } from "../runtime/signals.ts";
import type { FetchLike } from "../runtime/http-client.ts";
import { scrubSecrets } from "../../shared/log.ts";
import type { Logger } from "../../shared/log.ts";

export interface ControlPlaneClientOptions {
  /** Host root of the control plane, e.g. `https://api.openai.com`. */
  baseUrl: string;
  /** Optional path prefix placed before `/v1/…` (`control_plane.url_path`); slashes are normalised. */
  urlPath?: string;
  tunnelId: string;
  /** The runtime API key, already resolved from `env:`/`file:` references. Never logged. */
  apiKey: string;
  /** `X-Tunnel-Client-Name`, e.g. `airlock`. */
  clientName: string;
  clientVersion: string;
  /** `X-Tunnel-Client-Instance-Id`: random per process, stable for its life. Default: a fresh UUID. */
  instanceId?: string;
  /** `X-Tunnel-MCP-Server-Info`, from `encodeServerInfo`. */
  serverInfo: string;
  /** `X-Airlock-Capabilities`, sent only when given (Airlock extensions, hub only). */
  capabilities?: string;
  /** `OpenAI-Organization`, for organisation-backed tunnels (`control_plane.organization_id`). */
  organizationId?: string;
  /**
   * Static headers for every control-plane call (`control_plane.extra_headers`). They cannot
   * replace the protocol's own headers (auth, client identity, server info): those always win.
   */
  extraHeaders?: Record<string, string>;
  /** Per-request deadline for metadata and response posts, ms (default 30 000). */
  requestTimeoutMs?: number;
  fetch?: FetchLike;
  /** Monotonic clock in ms (default `performance.now`); poll receipt times use it. */
  now?: () => number;
  /** Where a warning about a refused extra header goes. */
  log?: Logger;
}

/** The error envelope's fields, when the control plane sent one. */
export interface ControlPlaneErrorBody {
  code?: string;
  message?: string;
  type?: string;
}

/** Why a call did not produce a usable answer. */
export type ControlPlaneFailure =
  /** A non-success status. `retryAfter` is the raw header; `error` the parsed envelope. */
  | { kind: "http_error"; status: number; retryAfter?: string; error?: ControlPlaneErrorBody; requestId?: string }
  /**
   * No HTTP answer. `sent: false` when the connection failed before the request left
   * (refused, DNS): replaying cannot duplicate work. `timedOut` when our own deadline hit.
   */
  /** `transportErrorKind`: the bounded kind the one transport classifier gives (agent/backends/failure-kind.ts). */
  | { kind: "network_error"; message: string; sent: boolean; timedOut: boolean; transportErrorKind: TransportErrorKind }
  /** A success status whose body does not follow the contract. */
  | { kind: "protocol_error"; status: number; message: string }
  /** The caller's signal aborted the call. */
  | { kind: "aborted" };

/** What an Airlock hub says about itself in its answers' headers; OpenAI's control plane says nothing. */
export interface HubAdvert {
  /** `X-Airlock-Capabilities`: the hub's extensions (e.g. `lease`). */
  capabilities: string[];
  /** `X-Airlock-Max-Response-Bytes`: the largest response post the hub accepts. */
  maxResponseBytes?: number;
}

export type PollResult =
  /** `receivedAt` is the monotonic time the response headers arrived: deadlines anchor there. */
  | { kind: "commands"; commands: DecodedCommand[]; receivedAt: number; advert?: HubAdvert }
  /** `204`, or `200` with an empty list. */
  | { kind: "empty"; status: number; receivedAt: number; advert?: HubAdvert }
  | ControlPlaneFailure;

/** `requestId`: the service's `X-Request-Id` for the post (tunnel-client logs it as `tunnel_request_id`). */
export type PostResult = { kind: "ok"; status: number; requestId?: string } | ControlPlaneFailure;

export type MetadataResult = { kind: "ok"; tunnel: TunnelClientMetadata } | ControlPlaneFailure;

export interface PollRequest {
  /** Commands wanted, clamped to 1..25 (a hint, not a concurrency limit). */
  limit: number;
  /** Requested server hold, ms. */
  timeoutMs: number;
  /** Added to `timeoutMs` for our own HTTP deadline (the sum is capped at 600 s). */
  guardrailMs: number;
  /** Restrict the poll to these channels (`channel=` query, repeated). */
  channels?: readonly string[];
  /**
   * A lease-only poll (Airlock extension `lease`, only for a hub that advertised it): it
   * keeps a busy agent's lease on the commands it holds and is handed no new command.
   */
  leaseOnly?: boolean;
  signal?: AbortSignal;
}

export interface ControlPlaneClient {
  readonly instanceId: string;
  /** The `/v1/tunnels/{id}` URL, for diagnostics (contains no secret). */
  readonly tunnelUrl: string;
  getTunnel(signal?: AbortSignal): Promise<MetadataResult>;
  poll(request: PollRequest): Promise<PollResult>;
  /** One response post; the shard token goes in `X-Tunnel-Shard-Token`, never in the body. */
  postResponse(
    payload: TunnelResponsePayload,
    shardToken: string,
    signal?: AbortSignal,
    clientRequestId?: string,
  ): Promise<PostResult>;
  /** What the hub last advertised (nothing until a poll was answered, or ever from OpenAI). */
  advert(): HubAdvert | undefined;
}

/** The hub's self-description from an answer's headers, or `undefined` when it gave none. */
export function readAdvert(headers: Headers): HubAdvert | undefined {
  const capabilities = headers.get(CLIENT_HEADERS.capabilities);
  const maxBytes = Number(headers.get(CLIENT_HEADERS.maxResponseBytes) ?? NaN);
  if (capabilities === null && !Number.isSafeInteger(maxBytes)) return undefined;
  const advert: HubAdvert = {
    capabilities: (capabilities ?? "")
      .split(",")
      .map((c) => c.trim().toLowerCase())
      .filter(Boolean),
  };
  if (Number.isSafeInteger(maxBytes) && maxBytes > 0) advert.maxResponseBytes = maxBytes;
  return advert;
}

/** Headers `extraHeaders` may not replace: the contract's identity and auth headers. */
const PROTECTED_HEADERS = new Set(
  ["Authorization", "Accept", "User-Agent", "Content-Type", ...Object.values(CLIENT_HEADERS)].map((h) =>
    h.toLowerCase(),
  ),
);

/** Join the host root, the optional prefix and `/v1/tunnels/{id}` with exactly one slash between parts. */
export function tunnelUrl(baseUrl: string, urlPath: string | undefined, tunnelId: string): string {
  const base = baseUrl.replace(/\/+$/, "");
  const prefix = (urlPath ?? "").split("/").filter(Boolean).join("/");
  return `${base}${prefix ? `/${prefix}` : ""}/v1/tunnels/${encodeURIComponent(tunnelId)}`;
}

/** What every request of one client shares: the transport, the contract's headers, and how to keep the key out of messages. */
interface Transport {
  fetch: FetchLike;
  /** The headers every call carries (`extraHeaders` first, then the protocol's own, which win). */
  headers: Headers;
  /** Removes the API key from any text a failure carries. */
  scrub: (text: string) => string;
}

/**
 * Create a client; cheap, no I/O. The only state it keeps is the hub's last advert; the
 * wire work is done by the plain functions below, which take the shared {@link Transport}.
 */
export function createControlPlaneClient(options: ControlPlaneClientOptions): ControlPlaneClient {
  const now = options.now ?? (() => performance.now());
  const instanceId = options.instanceId ?? crypto.randomUUID();
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const root = tunnelUrl(options.baseUrl, options.urlPath, options.tunnelId);
  const transport: Transport = {
    fetch: options.fetch ?? ((input, init) => fetch(input, init)),
    headers: commonHeaders(options, instanceId),
    scrub: (text) => scrubSecrets(text, [options.apiKey]),
  };
  let lastAdvert: HubAdvert | undefined;

  // A plain object, not a class: callers wrap it with `{ ...client }` (telemetry/posts.ts).
  return {
    instanceId,
    tunnelUrl: root,
    advert: () => lastAdvert,

    getTunnel(signal) {
      return send(transport, root, { method: "GET" }, requestTimeoutMs, signal, (response, linked) =>
        readMetadata(transport, response, linked),
      );
    },

    poll(request) {
      const { url, init, deadlineMs } = pollRequest(root, request);
      return send(transport, url, init, deadlineMs, request.signal, (response, linked) => {
        // The contract anchors every response_timeout here: when the headers arrive, before the body is read.
        const receivedAt = now();
        if (response.ok) lastAdvert = readAdvert(response.headers);
        return readPollAnswer(transport, response, linked, receivedAt, lastAdvert);
      });
    },

    async postResponse(payload, shardToken, signal, clientRequestId) {
      const init = postInit(payload, shardToken, clientRequestId);
      return send(transport, `${root}/response`, init, requestTimeoutMs, signal, (response) =>
        readPostAck(transport, response),
      );
    },
  };
}

/** The headers of every call: the operator's `extraHeaders`, then the contract's identity and auth headers over them. */
function commonHeaders(options: ControlPlaneClientOptions, instanceId: string): Headers {
  const common = new Headers();
  for (const [name, value] of Object.entries(options.extraHeaders ?? {})) {
    if (PROTECTED_HEADERS.has(name.toLowerCase())) {
      options.log?.warn("control_plane.extra_headers cannot replace a protocol header; ignoring it", { header: name });
      continue;
    }
    common.set(name, value);
  }
  common.set("Authorization", `Bearer ${options.apiKey}`);
  common.set("Accept", "application/json");
  common.set("User-Agent", `${options.clientName}/${options.clientVersion}`);
  common.set(CLIENT_HEADERS.name, options.clientName);
  common.set(CLIENT_HEADERS.version, options.clientVersion);
  common.set(CLIENT_HEADERS.instanceId, instanceId);
  common.set(CLIENT_HEADERS.serverInfo, options.serverInfo);
  if (options.capabilities) common.set(CLIENT_HEADERS.capabilities, options.capabilities);
  if (options.organizationId) common.set("OpenAI-Organization", options.organizationId);
  return common;
}

/**
 * Run one request and read its answer with `read`, all within `deadlineMs` (body
 * included) and `signal`; a transport failure becomes a failure value.
 */
async function send<T>(
  transport: Transport,
  url: string,
  init: RequestInit,
  deadlineMs: number,
  signal: AbortSignal | undefined,
  read: (response: Response, signal: AbortSignal) => Promise<T>,
): Promise<T | ControlPlaneFailure> {
  if (signal?.aborted) return { kind: "aborted" };
  const linked = linkSignals([signal], deadlineMs);
  const headers = new Headers(transport.headers);
  new Headers(init.headers).forEach((value, name) => {
    headers.set(name, value);
  });
  let response: Response;
  try {
    response = await transport.fetch(url, { ...init, headers, signal: linked.signal });
  } catch (error) {
    linked.dispose();
    if (signal?.aborted) return { kind: "aborted" };
    const timedOut = linked.timedOut;
    const message = timedOut ? `no answer within ${deadlineMs} ms` : describeFetchError(error);
    // A request that timed out may well have reached the control plane: only a failed
    // connect proves it was never sent (a notify is retried only then).
    return {
      kind: "network_error",
      message: transport.scrub(message),
      sent: !connectionNeverMade(error),
      timedOut,
      transportErrorKind: classifyFetchError(error, timedOut).failure.kind ?? "unknown",
    };
  }
  try {
    return await read(response, linked.signal);
  } finally {
    linked.dispose();
  }
}

/** Turn a non-success response into a failure value, reading the error envelope. */
async function httpError(transport: Transport, response: Response): Promise<ControlPlaneFailure> {
  const failure: ControlPlaneFailure = { kind: "http_error", status: response.status };
  const retryAfter = response.headers.get("retry-after");
  if (retryAfter !== null) failure.retryAfter = retryAfter;
  // The service's id for this request (tunnel-client logs it as `tunnel_request_id`).
  const requestId = response.headers.get("x-request-id");
  if (requestId) failure.requestId = requestId;
  const text = await response.text().catch(() => "");
  try {
    const envelope = APIErrorResponse.safeParse(JSON.parse(text));
    if (envelope.success) {
      const { code, message, type } = envelope.data.error;
      failure.error = { message: transport.scrub(message), type };
      if (code) failure.error.code = code;
    }
  } catch {
    // Not JSON: the status alone has to do.
  }
  return failure;
}

/** Read a success body as JSON, or explain why it is not. */
async function readJson(
  response: Response,
  signal?: AbortSignal,
): Promise<{ ok: true; value: unknown } | ControlPlaneFailure> {
  try {
    const text = await response.text();
    return { ok: true, value: text.trim() === "" ? undefined : JSON.parse(text) };
  } catch (error) {
    if (signal?.aborted) return { kind: "aborted" };
    return {
      kind: "protocol_error",
      status: response.status,
      message: `unreadable JSON body: ${describeFetchError(error)}`,
    };
  }
}

/** The answer to `GET /v1/tunnels/{id}`. */
async function readMetadata(transport: Transport, response: Response, signal: AbortSignal): Promise<MetadataResult> {
  if (!response.ok) return httpError(transport, response);
  const body = await readJson(response, signal);
  if (!("ok" in body)) return body;
  const parsed = TunnelClientMetadata.safeParse(body.value);
  if (!parsed.success)
    return {
      kind: "protocol_error",
      status: response.status,
      message: "tunnel metadata lacks id, name or description",
    };
  return { kind: "ok", tunnel: parsed.data };
}

/** The poll's URL (limit clamped to 1..25), headers, and our own deadline (hold plus guardrail, capped). */
function pollRequest(root: string, request: PollRequest): { url: string; init: RequestInit; deadlineMs: number } {
  const limit = Math.max(1, Math.min(POLL_LIMIT_MAX, Math.floor(request.limit)));
  const timeoutMs = Math.max(1, Math.floor(request.timeoutMs));
  const query = new URLSearchParams({ limit: String(limit), timeout_ms: String(timeoutMs) });
  for (const channel of request.channels ?? []) query.append("channel", channel);
  const deadlineMs = Math.min(timeoutMs + Math.max(0, request.guardrailMs), MAX_POLL_DEADLINE_MS);
  const init: RequestInit = {
    method: "GET",
    ...(request.leaseOnly ? { headers: { [CLIENT_HEADERS.lease]: "renew" } } : {}),
  };
  return { url: `${root}/poll?${query}`, init, deadlineMs };
}

/** A raw command without hub-asserted headers: from a control plane that does not assert them, they could be a client's. */
function withoutAssertedIdentity(raw: unknown): unknown {
  if (
    typeof raw !== "object" ||
    raw === null ||
    !("headers" in raw) ||
    typeof raw.headers !== "object" ||
    raw.headers === null
  )
    return raw;
  return { ...raw, headers: withoutHubAssertedHeaders(raw.headers as HeaderMap) };
}

/** The answer to a poll: commands, nothing (`204` or an empty list), or why not. */
async function readPollAnswer(
  transport: Transport,
  response: Response,
  signal: AbortSignal,
  receivedAt: number,
  lastAdvert: HubAdvert | undefined,
): Promise<PollResult> {
  const advert = lastAdvert ? { advert: lastAdvert } : {};
  if (response.status === 204) {
    await response.body?.cancel().catch(() => {});
    return { kind: "empty", status: 204, receivedAt, ...advert };
  }
  if (!response.ok) return httpError(transport, response);
  const body = await readJson(response, signal);
  if (!("ok" in body)) return body;
  if (body.value === undefined) return { kind: "empty", status: response.status, receivedAt, ...advert };
  const list = PolledCommandList.safeParse(body.value);
  if (!list.success)
    return { kind: "protocol_error", status: response.status, message: 'poll answer is not {"commands":[…]}' };
  if (list.data.commands.length === 0) return { kind: "empty", status: response.status, receivedAt, ...advert };
  // Only a hub that asserts identity (and so drops clients' copies) may send X-Airlock-Identity.
  const asserts = lastAdvert?.capabilities.includes(AIRLOCK_IDENTITY) ?? false;
  return {
    kind: "commands",
    commands: list.data.commands.map((raw) => decodeCommand(asserts ? raw : withoutAssertedIdentity(raw))),
    receivedAt,
    ...advert,
  };
}

/** A response post: the payload as JSON, the shard token in its header (never in the body). */
function postInit(
  payload: TunnelResponsePayload,
  shardToken: string,
  clientRequestId: string | undefined,
): RequestInit {
  return {
    method: "POST",
    // `X-Client-Request-Id` echoes the command's `X-Request-Id`, as tunnel-client: support can join both halves.
    headers: {
      "Content-Type": "application/json",
      [CLIENT_HEADERS.shardToken]: shardToken,
      ...(clientRequestId ? { "X-Client-Request-Id": clientRequestId } : {}),
    },
    body: JSON.stringify(payload),
  };
}

/** The answer to a response post. */
async function readPostAck(transport: Transport, response: Response): Promise<PostResult> {
  if (!response.ok) return httpError(transport, response);
  // Read the small ack rather than cancel it: cancelling a body still in flight closes
  // the connection, and the next post would pay for a new one.
  await response.arrayBuffer().catch(() => undefined);
  const requestId = response.headers.get("x-request-id");
  return requestId ? { kind: "ok", status: response.status, requestId } : { kind: "ok", status: response.status };
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`;
}

/** What an operator should do about a control-plane error code (mitigations from the contract). */
export const ERROR_MITIGATIONS: Readonly<Record<string, string>> = {
  tunnel_use_forbidden:
    "the API key has no tunnel use permission for this tunnel: use a runtime key of a principal with access to the tunnel, or connect the runtime in the org/workspace that owns it (control_plane.api_key, CONTROL_PLANE_API_KEY)",
  tunnel_missing_principals:
    "the API key carries no organization/workspace principals: use a runtime API key associated with the tunnel's organization or workspace (control_plane.api_key)",
  tunnel_active_organization_required:
    "the tunnel is organization-backed: set control_plane.organization_id (CONTROL_PLANE_ORGANIZATION_ID, --control-plane.organization-id)",
  tunnel_request_mismatch:
    "the response does not belong to this tunnel: check that control_plane.tunnel_id is the tunnel that delivered the command",
  invalid_tunnel_id_format:
    "use the exact tunnel id from the tunnel settings (tunnel_ + 32 lowercase characters) in control_plane.tunnel_id, CONTROL_PLANE_TUNNEL_ID or --control-plane.tunnel-id",
  rate_limit_exceeded: "the control plane is rate limiting this tunnel; the agent backs off and retries",
  tunnel_transport_unavailable: "the control plane is briefly unavailable; the agent retries",
  request_body_too_large:
    "the response exceeded the control plane's size limit; return smaller results from the MCP server",
  pending_request_not_found: "the request was already answered or has expired; no action is needed unless this repeats",
};

/**
 * One line for logs and readiness: status, code, the server's message and, when known,
 * what to do. Contains no secret (messages are scrubbed of the API key).
 */
export function describeControlPlaneFailure(failure: ControlPlaneFailure): string {
  switch (failure.kind) {
    case "aborted":
      return "request aborted";
    case "network_error":
      return failure.timedOut
        ? `control plane did not answer: ${failure.message}`
        : `control plane unreachable: ${failure.message}`;
    case "protocol_error":
      return `control plane answered HTTP ${failure.status} with an invalid body: ${failure.message}`;
    case "http_error": {
      const code = failure.error?.code;
      const parts = [`HTTP ${failure.status}${code ? ` ${code}` : ""}`];
      if (failure.error?.message) parts.push(failure.error.message);
      const fix = code ? ERROR_MITIGATIONS[code] : undefined;
      if (fix) parts.push(`fix: ${fix}`);
      else if (failure.status === 401 || failure.status === 403) {
        parts.push(
          "fix: check that control_plane.api_key is a runtime API key with tunnel use permission for control_plane.tunnel_id",
        );
      }
      return parts.join(" — ");
    }
  }
}
