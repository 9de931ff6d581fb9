/**
 * The local hub's listener: a thin Node HTTP proxy in front of workerd. Local workerd
 * does not notice a client that hangs up while the Worker is still waiting (it finds
 * out on its next write), but the hub must: an MCP client that disconnects cancels its
 * command, an agent that dies mid-poll must not be handed work. This proxy sees the
 * socket close and reports it to the Worker (relay/connection.ts). On Cloudflare the
 * runtime does this itself through `request.signal`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, type Dispatcher, request as undiciRequest } from "undici";
import type { HubVars } from "../../relay/config.ts";
import { DISCONNECTED_PATH, INTERNAL_CONNECTION_HEADER, INTERNAL_SECRET_HEADER } from "../../relay/connection.ts";
import { PUBLIC_ORIGIN_HEADER } from "../../relay/identity/origin.ts";
import { admit, type Admission } from "./gate.ts";

export interface FrontProxy {
  url: URL;
  close(): Promise<void>;
}

/** Connection-level headers that must not be forwarded (and that fetch refuses to set). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "expect",
  "proxy-connection",
]);
const TUNNEL_PATH = /^\/v1\/(?:tunnels|mcp)\/(tunnel_[a-z0-9]{32})(?:[/?]|$)/;

/** Header names (lower case) → values, as Node parsed them and undici sends them. */
type HeaderRecord = Record<string, string | string[]>;

function requestHeaders(req: IncomingMessage): HeaderRecord {
  const headers: HeaderRecord = {};
  const nominated = new Set(
    String(req.headers.connection ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || nominated.has(name)) continue;
    // The proxy's own headers are only ever set below, never passed through from a client.
    if (name.startsWith("x-airlock-internal")) continue;
    // The body is forwarded whole, with the length undici sets for it; the client's may not match it.
    if (name === "content-length") continue;
    headers[name] = value;
  }
  return headers;
}

/** One request header as text (repeated ones joined), by lower-case name. */
function headerText(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * The Worker's answer headers for the client. The body passes through as workerd sent it
 * (undici's `request` decodes nothing), so its length and encoding stay true.
 */
function responseHeaders(from: UpstreamResponse["headers"]): HeaderRecord {
  const headers: HeaderRecord = {};
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    headers[name] = value;
  }
  return headers;
}

/**
 * The path and query of an origin-form request target (`/path?query`), or `undefined`
 * for anything else. Only a path starting with exactly one `/` is a path on this host:
 * `//host/…` is a scheme-relative URL and absolute-form (`http://host/…`) names another
 * host outright; URL parsing treats `\` as `/`, so it could build either. Any of them
 * would make this listener fetch whatever host the client named (an open proxy).
 */
export function originFormTarget(target: string): string | undefined {
  return /^\/(?![/\\])[^\\]*$/.test(target) ? target : undefined;
}

/**
 * Read the body into memory, at most `limit` bytes: `"too large"` as soon as the declared
 * length or the bytes received pass it. Listeners, not `for await`: leaving an async
 * iterator early destroys the socket, and the client would see a reset instead of the 413.
 */
function readBounded(req: IncomingMessage, limit: number): Promise<Uint8Array<ArrayBuffer> | "too large"> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve("too large");
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", reject);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        resolve("too large");
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      const body = new Uint8Array(size);
      let offset = 0;
      for (const chunk of chunks) {
        body.set(chunk, offset);
        offset += chunk.length;
      }
      resolve(body);
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", reject);
  });
}

/**
 * End an answer given before the body was read (401, 413) once the client has finished
 * sending it: the rest is read and dropped, at most `max` bytes, and only then does the
 * answer end (and a `Connection: close` socket close). Closing with unread data sends a
 * reset, and a client still uploading would lose the answer it was already sent — the
 * race that turned a 413 into a 502. Past `max` the connection is cut.
 */
function endAfterBody(req: IncomingMessage, res: ServerResponse, max: number): void {
  if (req.complete) {
    res.end();
    return;
  }
  let dropped = 0;
  req.on("data", (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > max) {
      res.end();
      req.socket.destroy();
    }
  });
  req.once("end", () => res.end());
  req.on("error", () => res.destroy());
  req.resume();
}

/** Write a whole JSON answer with its length (so a client knows it is complete), but leave it open. */
function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.write(text);
}

/** After an early answer, how much of the unread body is dropped before the connection is cut, in hub limits. */
const LINGER_FACTOR = 2;

/** How long a client may take to send its headers, and its whole request (headers and body). */
export interface FrontTimeouts {
  /** Default 30 s. */
  headersMs?: number;
  /** Default 60 s; at least `headersMs`. Long polls and SSE are unaffected: their requests end with the headers. */
  requestMs?: number;
  /** How often Node checks both. Default 1 s. */
  checkIntervalMs?: number;
}

/**
 * undici's `request`, not its `fetch`: the front forwards every call three times (the client's
 * POST, the agent's poll answer, its response post), and `fetch`'s WHATWG Request, Headers and
 * streams cost several times the CPU of the request itself (docs/performance.md).
 */
type UpstreamInit = Omit<NonNullable<Parameters<typeof undiciRequest>[1]>, "dispatcher">;
type UpstreamResponse = Awaited<ReturnType<typeof undiciRequest>>;

/** Above this a request body goes over a connection of its own (see {@link createUpstreamConnections}). */
const POOLED_BODY_BYTES = 16 * 1024;

/**
 * The connections to workerd. Kept alive and reused: a fresh TCP connection per request cost
 * the front proxy more CPU than everything else it does (bench/hops.ts). But workerd closes a
 * connection when it answers before reading a body it will not take (a 413, a 401), and a
 * pooled socket that races that close would turn the next request into a spurious 502. So a
 * large body goes over a connection used once, and a request whose pooled connection dies
 * before any answer is sent once more over a fresh one (the Worker never saw it: the socket
 * was already closing when it was written).
 */
function createUpstreamConnections(): {
  fetch: (input: URL, init?: UpstreamInit) => Promise<UpstreamResponse>;
  close(): Promise<void>;
} {
  const pooled = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });
  const once = new Agent({ pipelining: 0 });
  const bodyBytes = (init: UpstreamInit) =>
    init.body instanceof Uint8Array ? init.body.byteLength : typeof init.body === "string" ? init.body.length : 0;
  return {
    fetch: async (input, init = {}) => {
      if (bodyBytes(init) > POOLED_BODY_BYTES) return undiciRequest(input, { ...init, dispatcher: once });
      try {
        return await undiciRequest(input, { ...init, dispatcher: pooled });
      } catch (error) {
        if ((init.signal as AbortSignal | undefined)?.aborted || !socketClosed(error)) throw error;
        return undiciRequest(input, { ...init, dispatcher: once });
      }
    },
    close: async () => {
      await Promise.all([pooled.close(), once.close()]);
    },
  };
}

/** True when undici reports the connection closed or reset under a request (no answer came). */
function socketClosed(error: unknown): boolean {
  // `request` rejects with the socket's error itself; `fetch` wrapped it as the cause.
  const { code, cause } = error as { code?: unknown; cause?: { code?: unknown } };
  return [code, cause?.code].some(
    (c) => typeof c === "string" && ["UND_ERR_SOCKET", "ECONNRESET", "EPIPE", "UND_ERR_CLOSED"].includes(c),
  );
}

/** Listen on `host:port` and forward everything to the Worker at `upstream`. */
export async function startFrontProxy(options: {
  host: string;
  port: number;
  upstream: URL;
  secret: string;
  /** The Worker's variables: the front authenticates and bounds bodies with the Worker's own rules (gate.ts). */
  vars: HubVars;
  timeouts?: FrontTimeouts;
}): Promise<FrontProxy> {
  const upstreamConnections = createUpstreamConnections();
  const front: Front = {
    upstream: options.upstream,
    secret: options.secret,
    vars: options.vars,
    fetch: upstreamConnections.fetch,
    ownOrigin: "",
  };
  const server = createFrontServer(
    options.timeouts,
    (req, res, expectsContinue) => void handle(front, req, res, expectsContinue),
  );
  await listen(server, options.port, options.host);
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  front.ownOrigin = `http://${host}:${address.port}`;
  let closed: Promise<void> | undefined;
  return {
    url: new URL(`http://${host}:${address.port}/`),
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(
          () =>
            void upstreamConnections.close().then(
              () => resolve(),
              () => resolve(),
            ),
        );
        server.closeAllConnections();
      })),
  };
}

/** What every forwarded request needs: the Worker, the secret it trusts, its rules, and the connections to it. */
interface Front {
  upstream: URL;
  secret: string;
  vars: HubVars;
  fetch: (input: URL, init?: UpstreamInit) => Promise<UpstreamResponse>;
  /** This listener's origin, known once it listens (before any request); never the client's Host header. */
  ownOrigin: string;
}

/** The Node server, with its slow-sender timeouts; `handle` gets `expectsContinue` for `Expect: 100-continue`. */
function createFrontServer(
  options: FrontTimeouts | undefined,
  handle: (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean) => void,
): Server {
  const timeouts = { headersMs: 30_000, requestMs: 60_000, checkIntervalMs: 1000, ...options };
  const server = createServer(
    {
      // Slow senders: Node answers 408 once the headers, or the whole request, take longer.
      headersTimeout: timeouts.headersMs,
      requestTimeout: Math.max(timeouts.requestMs, timeouts.headersMs),
      connectionsCheckingInterval: timeouts.checkIntervalMs,
    },
    (req, res) => handle(req, res, false),
  );
  server.keepAliveTimeout = 65_000;
  // Expect: 100-continue: the body is asked for only once the headers passed the gate.
  server.on("checkContinue", (req, res) => handle(req, res, true));
  return server;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Tell the Worker a client connection closed before its answer ended (it cannot see that itself locally). */
function reportGone(front: Front, tunnelId: string, connection: string): void {
  void front
    .fetch(new URL(DISCONNECTED_PATH, front.upstream), {
      method: "POST",
      headers: { "Content-Type": "application/json", [INTERNAL_SECRET_HEADER]: front.secret },
      body: JSON.stringify({ tunnel_id: tunnelId, connection }),
    })
    .then(
      (r) => r.body.dump(),
      () => {},
    );
}

/**
 * One request: authenticate on the headers, bound the body by the hub's limit, then
 * forward it whole. An unauthenticated request is forwarded without its body, so the
 * Worker words the 401 (and never sees the body); the front reads none of it first.
 */
async function handle(
  front: Front,
  req: IncomingMessage,
  res: ServerResponse,
  expectsContinue: boolean,
): Promise<void> {
  const path = originFormTarget(req.url ?? "");
  if (path === undefined) return refuseTarget(res);
  // Built from the origin alone: nothing in the client's target can change the host.
  const target = new URL(front.upstream.origin + path);
  const headers = requestHeaders(req);
  headers["accept-encoding"] = "identity";
  const tunnel = TUNNEL_PATH.exec(path)?.[1];
  const connection = crypto.randomUUID();
  // The Worker sees workerd's own origin; OAuth (issuer, resources) needs the one clients use.
  headers[INTERNAL_SECRET_HEADER.toLowerCase()] = front.secret;
  headers[PUBLIC_ORIGIN_HEADER.toLowerCase()] = front.ownOrigin;
  if (tunnel) headers[INTERNAL_CONNECTION_HEADER.toLowerCase()] = connection;
  const upstreamAbort = new AbortController();
  res.on("close", () => {
    if (res.writableFinished) return;
    upstreamAbort.abort();
    if (tunnel) reportGone(front, tunnel, connection);
  });
  try {
    const admission = await admit(front.vars, path, (name) => headerText(req, name));
    const body = await readAdmittedBody(req, res, admission, expectsContinue);
    if (body === "answered") return;
    const response = await front.fetch(target, {
      method: (req.method ?? "GET") as Dispatcher.HttpMethod,
      headers,
      body,
      signal: upstreamAbort.signal,
    });
    await relayResponse(response, res);
    endAfterBody(req, res, LINGER_FACTOR * admission.maxBodyBytes);
  } catch {
    answerUpstreamFailure(res);
  }
}

/** 400 for a target that is not a path on this hub: the front must never act as an open proxy. */
function refuseTarget(res: ServerResponse): void {
  res.writeHead(400, { "Content-Type": "application/json", Connection: "close" });
  res.end(
    JSON.stringify({
      error: {
        message:
          "The request target must be a path on this hub (origin-form, starting with a single '/'); the local hub is not a proxy.",
        type: "invalid_request_error",
        param: null,
        code: null,
      },
    }),
  );
}

/**
 * The body to forward: none for GET/HEAD or an unauthenticated request, else the whole body
 * within the hub's limit. `"answered"` when it was over the limit and the 413 is already sent.
 */
async function readAdmittedBody(
  req: IncomingMessage,
  res: ServerResponse,
  admission: Admission,
  expectsContinue: boolean,
): Promise<Uint8Array<ArrayBuffer> | undefined | "answered"> {
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  if (!hasBody || !admission.authenticated) return undefined;
  if (expectsContinue && !(Number(req.headers["content-length"]) > admission.maxBodyBytes)) res.writeContinue();
  // Buffered, not streamed: a half-sent upload would turn an early answer into a connection error.
  const read = await readBounded(req, admission.maxBodyBytes);
  if (read !== "too large") return read;
  writeJson(res, 413, {
    error: {
      message: `${admission.what} is larger than the hub's limit of ${admission.maxBodyBytes} bytes; send a smaller payload.`,
      type: "invalid_request_error",
      param: null,
      code: "request_body_too_large",
    },
  });
  endAfterBody(req, res, LINGER_FACTOR * admission.maxBodyBytes);
  return "answered";
}

/** Up to this size an answer with a length is read whole and sent in one write, headers included. */
const ONE_WRITE_BYTES = 64 * 1024;

/**
 * Copy the Worker's answer to the client. One with a small declared length (every JSON
 * answer, every poll answer) goes out in one write with its headers; anything else (SSE)
 * chunk by chunk as it arrives.
 */
async function relayResponse(response: UpstreamResponse, res: ServerResponse): Promise<void> {
  const headers = responseHeaders(response.headers);
  const length = Number(headerFirst(response.headers["content-length"]));
  if (Number.isSafeInteger(length) && length <= ONE_WRITE_BYTES) {
    const body = Buffer.from(await response.body.arrayBuffer());
    res.writeHead(response.statusCode, headers);
    if (body.length > 0) res.write(body);
    return;
  }
  res.writeHead(response.statusCode, headers);
  // SSE must not sit in a buffer: every chunk goes out as it arrives.
  res.flushHeaders();
  for await (const chunk of response.body) res.write(chunk);
}

function headerFirst(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The Worker failed: a 502 when nothing was sent yet, else cut the half-sent answer. */
function answerUpstreamFailure(res: ServerResponse): void {
  if (!res.headersSent && !res.destroyed) {
    res.writeHead(502, { "Content-Type": "application/json" });
    res.end(
      JSON.stringify({
        error: { message: "The local hub's Worker did not answer.", type: "server_error", code: null },
      }),
    );
  } else {
    res.destroy();
  }
}
