/**
 * A `fetch` on Node's own `http`/`https` modules with keep-alive agents. Node's global `fetch`
 * spends 0.2–0.4 ms of CPU per loopback request in WHATWG streams and Request objects;
 * `http.request` 0.04 ms, and it sends headers and a small body in one write (docs/performance.md).
 * undici's `Pool` is as fast but adds ~9–18 MiB resident to an agent that has `node:http` loaded
 * already (the health listener). Deno and Bun keep their native `fetch`.
 *
 * Two ways to hand back the body: `whole` (the control-plane client: polls, response posts,
 * metadata) builds the response once its whole body arrived; `streamed` (MCP HTTP backends,
 * whose answers may be SSE) hands the body on as a stream as soon as the headers are in.
 *
 * What differs from `fetch`: bodies sent are strings or bytes; no `Accept-Encoding` is sent, so
 * nothing comes back compressed; `whole` follows no redirect (the control-plane contract has
 * none), `streamed` leaves a redirect to the global `fetch` when the caller asked to follow.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import type { FetchLike } from "./http-client.ts";

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Options for {@link createNodeHttpFetch}. */
export interface NodeHttpFetchOptions {
  /** `whole` (default) or `streamed`, as above. */
  bodies?: "whole" | "streamed";
  /** Extra trusted CAs and an mTLS identity, PEM, for https (the WHATWG "bad ports" route). */
  tls?: { ca?: string; cert?: string; key?: string };
}

/** A keep-alive `fetch` and the means to close its idle connections. */
export function createNodeHttpFetch(options: NodeHttpFetchOptions = {}): {
  fetch: FetchLike;
  close(): Promise<void>;
} {
  const bodies = options.bodies ?? "whole";
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
      // runtime's node:http emits. A streamed body already handed on ends with the same reason.
      const reason = () =>
        signal?.reason instanceof Error ? signal.reason : new DOMException("This operation was aborted", "AbortError");
      let received: IncomingMessage | undefined;
      const onAbort = () => {
        received?.destroy(reason());
        request.destroy(reason());
        reject(reason());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle = () => signal?.removeEventListener("abort", onAbort);
      request.on("error", (error) => {
        settle();
        reject(error);
      });
      request.on("response", (response) => {
        received = response;
        if (bodies === "streamed") {
          const status = response.statusCode ?? 502;
          if (init.redirect !== "manual" && REDIRECTS.has(status) && response.headers.location) {
            // Rare for an MCP server; the global fetch knows the rules (method, body, hops).
            settle();
            response.on("error", () => {}).resume();
            globalThis.fetch(input, init).then(resolve, reject);
            return;
          }
          response.once("close", settle);
          resolve(streamedResponse(response, init.method));
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

function responseHeaders(message: IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < message.rawHeaders.length; i += 2)
    headers.append(message.rawHeaders[i]!, message.rawHeaders[i + 1]!);
  return headers;
}

/** These statuses carry no body, and Response refuses one for them. */
function bodyless(status: number, method: string | undefined): boolean {
  return status === 204 || status === 205 || status === 304 || method === "HEAD";
}

function toResponse(message: IncomingMessage, body: Buffer, method: string | undefined): Response {
  const status = message.statusCode ?? 502;
  return new Response(
    bodyless(status, method) ? null : new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.byteLength),
    { status, statusText: message.statusMessage ?? "", headers: responseHeaders(message) },
  );
}

function streamedResponse(message: IncomingMessage, method: string | undefined): Response {
  const status = message.statusCode ?? 502;
  const empty = bodyless(status, method);
  // Nobody reads an empty body; a connection cut under it must not become an unhandled error.
  if (empty) message.on("error", () => {}).resume();
  return new Response(empty ? null : (Readable.toWeb(message) as ReadableStream<Uint8Array>), {
    status,
    statusText: message.statusMessage ?? "",
    headers: responseHeaders(message),
  });
}
