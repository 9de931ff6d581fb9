/**
 * The one way OAuth discovery reaches the network. Discovery follows URLs that a server
 * wrote (a `WWW-Authenticate` header, a metadata document), so every request is an SSRF
 * risk: it goes only to an origin the operator allowed (the main MCP server's, an
 * `mcp.oauth_trusted_origins` entry, a host `harpoon.hosts_include_*` admits), follows a
 * redirect only within the same origin, carries no credentials but
 * `mcp.discovery_extra_headers`, and reads a bounded body under a timeout.
 */
import { BodyTooLarge, readBounded } from "../runtime/body.ts";
import type { FetchLike } from "../runtime/http-client.ts";
import { VERSION } from "../version.ts";

/** Protected-resource and authorization-server metadata are small documents; more is refused. */
export const METADATA_BODY_LIMIT = 64 * 1024;
/** One request's budget, redirects included. */
export const DISCOVERY_REQUEST_TIMEOUT_MS = 5_000;
/** Same-origin redirects followed at most (tunnel-client stops after 10). */
const MAX_REDIRECTS = 10;

export interface DiscoveryHttp {
  fetch: FetchLike;
  /** `mcp.discovery_extra_headers`: sent on every discovery request, and only there. */
  headers: Readonly<Record<string, string>>;
  /** Whether discovery may contact this URL's origin at all. */
  allows(url: URL): boolean;
  timeoutMs?: number;
  /** Ends every request at once (the agent is stopping). */
  signal?: AbortSignal;
}

export interface DiscoveryResponse {
  status: number;
  headers: Headers;
  body: string;
  /** The URL that answered (after same-origin redirects). */
  url: URL;
}

/** A discovery request that was not made or did not complete; the message says which and why. */
export class DiscoveryFetchError extends Error {
  override name = "DiscoveryFetchError";
}

/** Send one discovery request; throws {@link DiscoveryFetchError} naming the URL's origin and the reason. */
export async function discoveryFetch(
  http: DiscoveryHttp,
  start: URL,
  init: {
    method: "GET" | "POST";
    accept: string /** false: only status and headers matter (the challenge probe). */;
    readBody?: boolean;
  },
): Promise<DiscoveryResponse> {
  if (!http.allows(start))
    throw new DiscoveryFetchError(`${start.origin} is not an origin OAuth discovery may contact`);
  const timeout = AbortSignal.timeout(http.timeoutMs ?? DISCOVERY_REQUEST_TIMEOUT_MS);
  const signal = http.signal ? AbortSignal.any([http.signal, timeout]) : timeout;
  let url = start;
  for (let hops = 0; ; hops++) {
    let response: Response;
    try {
      response = await http.fetch(url, {
        method: init.method,
        headers: { ...http.headers, Accept: init.accept, "User-Agent": `airlock/${VERSION}` },
        redirect: "manual",
        signal,
        ...(init.method === "POST" ? { body: "" } : {}),
      });
    } catch (error) {
      const name = error instanceof Error ? error.name : "";
      const why =
        name === "TimeoutError" || name === "AbortError"
          ? "timed out"
          : error instanceof Error
            ? error.message
            : String(error);
      throw new DiscoveryFetchError(`${init.method} ${url.origin}${url.pathname} failed: ${why}`);
    }
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel().catch(() => {});
      const next = new URL(location, url);
      if (next.origin !== start.origin)
        throw new DiscoveryFetchError(`redirect from ${url.origin} to another origin (${next.origin}) refused`);
      if (hops >= MAX_REDIRECTS) throw new DiscoveryFetchError(`stopped after ${MAX_REDIRECTS} redirects`);
      url = next;
      continue;
    }
    if (init.readBody === false) {
      // A GET on a Streamable HTTP endpoint may open an event stream that never ends.
      await response.body?.cancel().catch(() => {});
      return { status: response.status, headers: response.headers, body: "", url };
    }
    try {
      const body = await readBounded(response, METADATA_BODY_LIMIT, signal);
      return { status: response.status, headers: response.headers, body, url };
    } catch (error) {
      const why =
        error instanceof BodyTooLarge
          ? `body larger than ${METADATA_BODY_LIMIT} bytes`
          : error instanceof Error
            ? error.message
            : String(error);
      throw new DiscoveryFetchError(`${init.method} ${url.origin}${url.pathname}: ${why}`);
    }
  }
}
