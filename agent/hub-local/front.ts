/**
 * The local hub's listener: a thin Node HTTP proxy in front of workerd. Local workerd
 * does not notice a client that hangs up while the Worker is still waiting (it finds
 * out on its next write), but the hub must: an MCP client that disconnects cancels its
 * command, an agent that dies mid-poll must not be handed work. This proxy sees the
 * socket close and reports it to the Worker (relay/connection.ts). On Cloudflare the
 * runtime does this itself through `request.signal`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, fetch as undiciFetch } from "undici";
import { DISCONNECTED_PATH, INTERNAL_CONNECTION_HEADER, INTERNAL_SECRET_HEADER } from "../../relay/connection.ts";

export interface FrontProxy {
  url: URL;
  close(): Promise<void>;
}

/** Connection-level headers that must not be forwarded (and that fetch refuses to set). */
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "host", "expect", "proxy-connection",
]);
const TUNNEL_PATH = /^\/v1\/(?:tunnels|mcp)\/(tunnel_[a-z0-9]{32})(?:[/?]|$)/;

function requestHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  const nominated = new Set(String(req.headers.connection ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || nominated.has(name)) continue;
    // The proxy's own headers are only ever set below, never passed through from a client.
    if (name.startsWith("x-airlock-internal")) continue;
    for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
  }
  return headers;
}

function copyResponseHeaders(from: Headers, to: ServerResponse): void {
  for (const [name, value] of from) {
    // fetch already decoded the body; length and encoding are the proxy's to set again.
    if (name === "content-encoding" || name === "content-length" || HOP_BY_HOP.has(name)) continue;
    to.setHeader(name, value);
  }
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

/** Far above any hub body limit; only stops a runaway upload from filling memory. */
const MAX_BODY_BYTES = 256 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<Uint8Array<ArrayBuffer> | "too large"> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return "too large";
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

type UpstreamInit = NonNullable<Parameters<typeof undiciFetch>[1]>;
type UpstreamResponse = Awaited<ReturnType<typeof undiciFetch>>;

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
function createUpstreamConnections(): { fetch: (input: URL, init?: UpstreamInit) => Promise<UpstreamResponse>; close(): Promise<void> } {
  const pooled = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });
  const once = new Agent({ pipelining: 0 });
  const bodyBytes = (init: UpstreamInit) => (init.body instanceof Uint8Array ? init.body.byteLength : typeof init.body === "string" ? init.body.length : 0);
  return {
    fetch: async (input, init = {}) => {
      if (bodyBytes(init) > POOLED_BODY_BYTES) return undiciFetch(input, { ...init, dispatcher: once });
      try {
        return await undiciFetch(input, { ...init, dispatcher: pooled });
      } catch (error) {
        if (init.signal?.aborted || !socketClosed(error)) throw error;
        return undiciFetch(input, { ...init, dispatcher: once });
      }
    },
    close: async () => { await Promise.all([pooled.close(), once.close()]); },
  };
}

/** True when undici reports the connection closed or reset under a request (no answer came). */
function socketClosed(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === "string" && ["UND_ERR_SOCKET", "ECONNRESET", "EPIPE", "UND_ERR_CLOSED"].includes(cause.code);
}

/** Listen on `host:port` and forward everything to the Worker at `upstream`. */
export async function startFrontProxy(options: { host: string; port: number; upstream: URL; secret: string }): Promise<FrontProxy> {
  const { upstream, secret } = options;
  const upstreamConnections = createUpstreamConnections();
  const fetch = upstreamConnections.fetch;

  const reportGone = (tunnelId: string, connection: string) => {
    void fetch(new URL(DISCONNECTED_PATH, upstream), {
      method: "POST",
      headers: { "Content-Type": "application/json", [INTERNAL_SECRET_HEADER]: secret },
      body: JSON.stringify({ tunnel_id: tunnelId, connection }),
    }).then((r) => r.body?.cancel(), () => {});
  };

  const server = createServer(async (req, res) => {
    const path = originFormTarget(req.url ?? "");
    if (path === undefined) {
      res.writeHead(400, { "Content-Type": "application/json", Connection: "close" });
      res.end(JSON.stringify({
        error: { message: "The request target must be a path on this hub (origin-form, starting with a single '/'); the local hub is not a proxy.", type: "invalid_request_error", param: null, code: null },
      }));
      return;
    }
    // Built from the origin alone: nothing in the client's target can change the host.
    const target = new URL(upstream.origin + path);
    const headers = requestHeaders(req);
    headers.set("accept-encoding", "identity");
    const tunnel = TUNNEL_PATH.exec(path)?.[1];
    const connection = crypto.randomUUID();
    if (tunnel) {
      headers.set(INTERNAL_SECRET_HEADER, secret);
      headers.set(INTERNAL_CONNECTION_HEADER, connection);
    }
    const upstreamAbort = new AbortController();
    res.on("close", () => {
      if (res.writableFinished) return;
      upstreamAbort.abort();
      if (tunnel) reportGone(tunnel, connection);
    });
    try {
      // Buffered, not streamed: the Worker may answer 413 before reading a body, and a
      // half-sent upload would turn that answer into a connection error.
      const body = req.method === "GET" || req.method === "HEAD" ? undefined : await readBody(req);
      if (body === "too large") {
        res.writeHead(413, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { message: `The request body exceeds ${MAX_BODY_BYTES} bytes.`, type: "invalid_request_error", code: "request_body_too_large" } }));
        return;
      }
      const response = await fetch(target, {
        method: req.method,
        headers: [...headers],
        body,
        redirect: "manual",
        signal: upstreamAbort.signal,
      });
      copyResponseHeaders(response.headers, res);
      res.writeHead(response.status);
      // SSE must not sit in a buffer: every chunk goes out as it arrives.
      res.flushHeaders();
      if (response.body) {
        for await (const chunk of response.body) res.write(chunk);
      }
      res.end();
    } catch {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { message: "The local hub's Worker did not answer.", type: "server_error", code: null } }));
      } else {
        res.destroy();
      }
    }
  });
  // Long polls and SSE streams outlive Node's default timeouts.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  let closed: Promise<void> | undefined;
  return {
    url: new URL(`http://${host}:${address.port}/`),
    close: () => (closed ??= new Promise<void>((resolve) => {
      server.close(() => void upstreamConnections.close().then(() => resolve(), () => resolve()));
      server.closeAllConnections();
    })),
  };
}
