/**
 * A `fetch` on Node's own `http`/`https` modules with keep-alive agents, for callers that read
 * every body whole: the control-plane client (polls, response posts, metadata). Node's global
 * `fetch` spends 0.2–0.4 ms of CPU per loopback request in WHATWG streams and Request objects;
 * `http.request` 0.04 ms, and it sends headers and a small body in one write (docs/performance.md).
 * undici's `Pool` is as fast but adds ~9–18 MiB resident to an agent that has `node:http` loaded
 * already (the health listener). Deno and Bun keep their native `fetch`.
 *
 * What differs from `fetch`, none of which the control-plane contract uses: bodies are strings or
 * bytes; the response is built once its whole body arrived; no redirect is followed; no
 * `Accept-Encoding` is sent, so nothing comes back compressed.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import type { FetchLike } from "./http-client.ts";

/** Options for {@link createNodeHttpFetch}. */
export interface NodeHttpFetchOptions {
  /**
   * Resolve at the response headers with the body as a stream (Server-Sent Events from MCP
   * servers), instead of once the whole body arrived. For the WHATWG "bad ports" route, on any runtime.
   */
  stream?: boolean;
  /** Extra trusted CAs and an mTLS identity, PEM, for https. */
  tls?: { ca?: string; cert?: string; key?: string };
}

/** A keep-alive `fetch` (buffered unless `stream`) and the means to close its idle connections. */
export function createNodeHttpFetch(options: NodeHttpFetchOptions = {}): { fetch: FetchLike; close(): Promise<void> } {
  const http = new HttpAgent({ keepAlive: true });
  const { ca, ...identity } = options.tls ?? {};
  // A CA bundle adds to the default roots, as tunnel-client's ca_bundle does (Node's `ca` would replace them).
  const https = new HttpsAgent({ keepAlive: true, ...identity, ...(ca ? { ca: [...rootCertificates, ca] } : {}) });
  const fetch: FetchLike = (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = typeof input === "string" ? new URL(input) : input;
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        reject(new TypeError(`cannot fetch ${url.protocol} URLs; use http: or https:`));
        return;
      }
      const body = requestBody(init.body);
      if (body === "unsupported") {
        reject(new TypeError("this fetch sends only string or byte bodies"));
        return;
      }
      const signal = init.signal ?? undefined;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => {
        headers[name] = value;
      });
      if (body) headers["content-length"] = String(body.byteLength);
      const secure = url.protocol === "https:";
      const request = (secure ? httpsRequest : httpRequest)(url, {
        method: init.method ?? "GET",
        headers,
        agent: secure ? https : http,
      });
      // Reject here rather than wait for the destroyed request's error event, which not every
      // runtime's node:http emits.
      const onAbort = () => {
        request.destroy();
        reject(
          signal?.reason instanceof Error
            ? signal.reason
            : new DOMException("This operation was aborted", "AbortError"),
        );
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle = () => signal?.removeEventListener("abort", onAbort);
      request.on("error", (error) => {
        settle();
        reject(error);
      });
      request.on("response", (response) => {
        if (options.stream) {
          // The abort listener stays: aborting later destroys the request and so errors the body stream.
          resolve(toResponse(response, Readable.toWeb(response) as ReadableStream<Uint8Array>, init.method));
          return;
        }
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", (error) => {
          settle();
          reject(error);
        });
        response.on("end", () => {
          settle();
          resolve(toResponse(response, Buffer.concat(chunks), init.method));
        });
      });
      request.end(body);
    });
  return {
    fetch,
    close: async () => {
      http.destroy();
      https.destroy();
    },
  };
}

function requestBody(body: RequestInit["body"]): Uint8Array | undefined | "unsupported" {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof Uint8Array) return body;
  return "unsupported";
}

function toResponse(
  message: IncomingMessage,
  body: Buffer | ReadableStream<Uint8Array>,
  method: string | undefined,
): Response {
  const headers = new Headers();
  for (let i = 0; i + 1 < message.rawHeaders.length; i += 2)
    headers.append(message.rawHeaders[i]!, message.rawHeaders[i + 1]!);
  const status = message.statusCode ?? 502;
  // These statuses carry no body, and Response refuses one for them.
  const empty = status === 204 || status === 205 || status === 304 || method === "HEAD";
  if (empty && !Buffer.isBuffer(body)) void body.cancel().catch(() => {});
  const content = Buffer.isBuffer(body)
    ? new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.byteLength)
    : body;
  return new Response(empty ? null : content, {
    status,
    statusText: message.statusMessage ?? "",
    headers,
  });
}
