/**
 * The `fetch` seam for outbound HTTP to MCP servers and Harpoon targets. Without a custom
 * CA, a proxy or a Unix socket this is the global `fetch`. Otherwise each runtime needs its
 * own switch, picked lazily so no runtime loads another's module:
 * Node → an undici 7 `Agent` / `ProxyAgent` as `dispatcher` (with undici's own `fetch`,
 * because Node 20's bundled undici does not accept a dispatcher from the npm package); Deno →
 * `Deno.createHttpClient({ caCerts, proxy })`; Bun → `fetch(url, { tls: { ca }, proxy, unix })`
 * (Bun replaces the undici package with a stub). Over a Unix socket Deno writes the request
 * line in absolute form (`GET http://host/path`), which HTTP/1.1 servers must accept.
 *
 * Without an explicit proxy, the standard `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` variables
 * apply, as in tunnel-client (Go's `http.ProxyFromEnvironment`): Deno's and Bun's `fetch`
 * read them natively; Node's global `fetch` ignores them, so there undici's
 * `EnvHttpProxyAgent` routes each request by those variables.
 */
import { readFile } from "node:fs/promises";
import process from "node:process";
import { RUNTIME } from "../version.ts";

/** The slice of `fetch` the backends use. */
export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

/** One outbound request as the client metrics see it (agent/ops/metrics-http-client.ts). */
export interface OutboundRequest {
  method: string;
  url: string;
  /** The response's status; absent when no response came (refused, timed out, aborted). */
  status?: number;
  /** The request body's size in bytes (0 without a body). */
  bodyBytes: number;
  /** From the call to the response headers. */
  seconds: number;
}

type NodeBuffer = { byteLength(text: string): number };
const nodeBuffer = (globalThis as { Buffer?: NodeBuffer }).Buffer;

/** UTF-8 size of a string without encoding it (`Buffer` is global on Node, Deno and Bun). */
function utf8Bytes(text: string): number {
  return nodeBuffer ? nodeBuffer.byteLength(text) : new TextEncoder().encode(text).byteLength;
}

function bodyBytes(body: RequestInit["body"]): number {
  if (body === undefined || body === null) return 0;
  if (typeof body === "string") return utf8Bytes(body);
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  // A stream or form: its size is not known without reading it.
  return 0;
}

/** `fetch` that reports each request to `observe` once its headers arrived, or it failed. */
export function measuredFetch(fetch: FetchLike, observe: (request: OutboundRequest) => void): FetchLike {
  return async (input, init) => {
    const started = performance.now();
    const base = {
      method: init?.method ?? "GET",
      url: typeof input === "string" ? input : input.href,
      bodyBytes: bodyBytes(init?.body),
    };
    try {
      const response = await fetch(input, init);
      observe({ ...base, status: response.status, seconds: (performance.now() - started) / 1000 });
      return response;
    } catch (error) {
      observe({ ...base, seconds: (performance.now() - started) / 1000 });
      throw error;
    }
  };
}

export interface HttpClientOptions {
  /** Extra trusted CA certificates, PEM. */
  ca?: string;
  /** A file holding extra trusted CA certificates, PEM; read on first use. */
  caFile?: string;
  /** Send every request through this HTTP(S) proxy (`http://[user:pass@]proxy:3128`). */
  proxy?: string;
  /** Dial this Unix-domain socket instead of TCP; URLs keep their logical host (a proxy is then unused). */
  unixSocket?: string;
  /** mTLS: a PEM client certificate file presented to the server, with its key file. */
  clientCert?: string;
  clientKey?: string;
  /**
   * On Node, without a CA, proxy, socket or mTLS setting, send requests through `node:http`
   * keep-alive agents, far cheaper per request than the global `fetch`
   * (agent/runtime/node-http-fetch.ts): `whole` when the caller reads every body whole (the
   * control-plane client), `streamed` when it reads bodies as streams (MCP HTTP backends: SSE).
   * Nothing comes back compressed; a redirect is followed by the global `fetch`.
   */
  nodeHttp?: "whole" | "streamed";
  /** Told about every request (tunnel-client's otelhttp `http_client_*` metrics). */
  observe?: (request: OutboundRequest) => void;
  /**
   * How long a response body may send nothing before it is ended; `0`: never, for SSE streams
   * that live until the client or the server ends them (the GET stream, `subscriptions/listen`).
   * Unset, the runtime's own limit applies: Node's `fetch` ends a body silent for 300 s
   * (undici's `bodyTimeout`, `UND_ERR_BODY_TIMEOUT`). Node applies any value (undici's
   * `bodyTimeout`); Bun is told `timeout: false` for `0`; Deno sets no such limit.
   */
  bodyTimeoutMs?: number;
}

/** PEM material for one client, loaded once. */
interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
}

/** A `fetch` bound to one trust configuration, and the means to release its connections. */
export interface HttpClient {
  fetch: FetchLike;
  /** Resolve once the CA bundle is loaded; rejects with an operator-readable error when it cannot be. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** Raised when the configured CA bundle cannot be used; names the file and what to do. */
export class CaBundleError extends Error {
  override name = "CaBundleError";
}

interface DenoHttpClient {
  close(): void;
}
type DenoProxy =
  | { url: string; basicAuth?: { username: string; password: string } }
  | { transport: "unix"; path: string };
interface DenoGlobal {
  createHttpClient(options: { caCerts?: string[]; proxy?: DenoProxy; cert?: string; key?: string }): DenoHttpClient;
}

/** Where connections go besides the default route; `env`: by HTTP(S)_PROXY / NO_PROXY (Node only). */
interface Route {
  proxy?: string;
  unixSocket?: string;
  env?: boolean;
}

/** True when the standard proxy variables name a proxy (either case, as Go and undici read them). */
export function envProxyConfigured(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"].some((name) => (env[name] ?? "").trim() !== "");
}

/**
 * WHATWG fetch's "bad ports" (fetch.spec.whatwg.org/#port-blocking): Node's and Deno's `fetch`
 * refuse them, Go (tunnel-client) and Bun do not.
 */
const BAD_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
  111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
  540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061,
  6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** True for an http(s) URL whose explicit port the runtime's `fetch` would refuse. */
export function isBadPort(input: string | URL): boolean {
  const url = typeof input === "string" ? new URL(input) : input;
  return url.port !== "" && BAD_PORTS.has(Number(url.port));
}

/** Build the fetch for one backend, measured when `observe` is given. Nothing runtime-specific is loaded until the first call. */
export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  const client = withBadPortRoute(routedHttpClient(options), options);
  return options.observe ? { ...client, fetch: measuredFetch(client.fetch, options.observe) } : client;
}

function routedHttpClient(options: HttpClientOptions): HttpClient {
  const custom = options.ca !== undefined || options.caFile !== undefined;
  const mtls = options.clientCert !== undefined || options.clientKey !== undefined;
  const route: Route = options.unixSocket
    ? { unixSocket: options.unixSocket }
    : options.proxy
      ? { proxy: options.proxy }
      : RUNTIME.name === "node" && envProxyConfigured()
        ? { env: true }
        : {};
  // The global fetch has the runtime's body timeout: another one needs a client of its own.
  // node:http sets none, so on Node its client serves "never" (0) as it is.
  const viaNodeHttp = RUNTIME.name === "node" && !options.bodyTimeoutMs ? options.nodeHttp : undefined;
  const timed = options.bodyTimeoutMs !== undefined && RUNTIME.name !== "deno" && !viaNodeHttp;
  if (!custom && !mtls && !route.proxy && !route.unixSocket && !route.env && !timed) {
    if (viaNodeHttp) return nodeHttpClient(viaNodeHttp);
    return { fetch: (input, init) => fetch(input, init), ready: async () => {}, close: async () => {} };
  }
  let closer: (() => Promise<void>) | undefined;
  let pending: Promise<FetchLike> | undefined;
  const init = (): Promise<FetchLike> => {
    pending ??= (async () => {
      const material: TlsMaterial = {
        ...(custom ? { ca: await loadPem(options) } : {}),
        ...(mtls ? await loadClientCert(options) : {}),
      };
      const built = await customFetch(material, route, options.bodyTimeoutMs);
      closer = built.close;
      return built.fetch;
    })();
    return pending;
  };
  return {
    fetch: async (input, requestInit) => (await init())(input, requestInit),
    ready: async () => {
      await init();
    },
    close: async () => {
      await closer?.();
    },
  };
}

/**
 * A server on a bad port (an MCP server on 6000, a gateway on 10080) is reachable with
 * tunnel-client, so it must be with Airlock: on Node and Deno such URLs go through `node:http`
 * (which has no port list; Deno implements it too), streaming, with the same CA and mTLS
 * identity. Through a proxy (explicit, or HTTP(S)_PROXY on Node) or a Unix socket the port
 * rule stays the runtime's: the request then goes where the proxy or socket says.
 */
function withBadPortRoute(client: HttpClient, options: HttpClientOptions): HttpClient {
  const proxied = options.proxy !== undefined || (RUNTIME.name === "node" && envProxyConfigured());
  if (RUNTIME.name === "bun" || proxied || options.unixSocket !== undefined) return client;
  let loaded: Promise<{ fetch: FetchLike; close(): Promise<void> }> | undefined;
  const load = () =>
    (loaded ??= (async () => {
      const custom = options.ca !== undefined || options.caFile !== undefined;
      const mtls = options.clientCert !== undefined || options.clientKey !== undefined;
      const tls = { ...(custom ? { ca: await loadPem(options) } : {}), ...(mtls ? await loadClientCert(options) : {}) };
      return (await import("./node-http-fetch.ts")).createNodeHttpFetch({ bodies: "streamed", tls });
    })());
  return {
    fetch: async (input, init) => (isBadPort(input) ? (await load()).fetch(input, init) : client.fetch(input, init)),
    ready: client.ready,
    close: async () => {
      await client.close();
      if (loaded) await (await loaded).close();
    },
  };
}

/** The `node:http` client, loaded on first use so Deno and Bun never import it. */
function nodeHttpClient(bodies: "whole" | "streamed"): HttpClient {
  let loaded: Promise<{ fetch: FetchLike; close(): Promise<void> }> | undefined;
  const load = () =>
    (loaded ??= import("./node-http-fetch.ts").then((module) => module.createNodeHttpFetch({ bodies })));
  return {
    fetch: async (input, init) => (await load()).fetch(input, init),
    ready: async () => {
      await load();
    },
    close: async () => {
      if (loaded) await (await loaded).close();
    },
  };
}

async function loadPem(options: HttpClientOptions): Promise<string> {
  let pem = options.ca;
  if (pem === undefined && options.caFile !== undefined) {
    try {
      pem = await readFile(options.caFile, "utf8");
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new CaBundleError(
        `custom CA bundle ${options.caFile} could not be read (${typeof code === "string" ? code : "read error"}); fix the path or remove the CA setting`,
      );
    }
  }
  if (!pem?.includes("-----BEGIN CERTIFICATE-----")) {
    throw new CaBundleError(
      `custom CA bundle ${options.caFile ?? "(inline)"} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"); supply a PEM file`,
    );
  }
  return pem;
}

/** Read the mTLS certificate and key; both are needed, and each must be PEM. */
async function loadClientCert(options: HttpClientOptions): Promise<{ cert: string; key: string }> {
  if (!options.clientCert || !options.clientKey) {
    throw new CaBundleError("mTLS needs both client_cert and client_key; set the missing one or remove the other");
  }
  const read = async (path: string, what: string, marker: RegExp) => {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new CaBundleError(
        `${what} ${path} could not be read (${typeof code === "string" ? code : "read error"}); fix the path`,
      );
    }
    if (!marker.test(text)) throw new CaBundleError(`${what} ${path} is not PEM; supply a PEM file`);
    return text;
  };
  return {
    cert: await read(options.clientCert, "client certificate", /-----BEGIN CERTIFICATE-----/),
    key: await read(options.clientKey, "client key", /-----BEGIN [A-Z ]*PRIVATE KEY-----/),
  };
}

async function customFetch(
  material: TlsMaterial,
  route: Route,
  bodyTimeoutMs?: number,
): Promise<{ fetch: FetchLike; close: () => Promise<void> }> {
  const runtime = RUNTIME.name;
  const pem = material.ca;
  const identity = material.cert && material.key ? { cert: material.cert, key: material.key } : {};
  if (runtime === "deno") {
    const deno = (globalThis as unknown as { Deno: DenoGlobal }).Deno;
    // Deno adds caCerts to its default roots.
    const proxy = denoProxy(route);
    const client = deno.createHttpClient({
      ...(pem ? { caCerts: [pem] } : {}),
      ...(proxy ? { proxy } : {}),
      ...identity,
    });
    const denoFetch = fetch as (
      input: string | URL,
      init?: RequestInit & { client: DenoHttpClient },
    ) => Promise<Response>;
    return {
      fetch: (input, init) => denoFetch(input, { ...init, client }),
      close: async () => client.close(),
    };
  }
  // Node and Bun replace the default roots with `ca`, so the public roots go along.
  const ca = pem ? [...(await import("node:tls")).rootCertificates, pem] : undefined;
  if (runtime === "bun") {
    const tlsOptions = { ...(ca ? { ca } : {}), ...identity };
    const extra = {
      ...(Object.keys(tlsOptions).length ? { tls: tlsOptions } : {}),
      ...(route.proxy ? { proxy: route.proxy } : {}),
      ...(route.unixSocket ? { unix: route.unixSocket } : {}),
      ...(bodyTimeoutMs === 0 ? { timeout: false } : {}),
    };
    return { fetch: (input, init) => fetch(input, { ...init, ...extra } as RequestInit), close: async () => {} };
  }
  const undici = await import("undici");
  const tls = { ...(ca ? { ca } : {}), ...identity };
  const timeouts = bodyTimeoutMs === undefined ? {} : { bodyTimeout: bodyTimeoutMs };
  const dispatcher = route.proxy
    ? new undici.ProxyAgent({ uri: route.proxy, requestTls: tls, proxyTls: tls, ...timeouts })
    : route.env
      ? new undici.EnvHttpProxyAgent({ connect: tls, requestTls: tls, proxyTls: tls, ...timeouts })
      : new undici.Agent({
          connect: { ...tls, ...(route.unixSocket ? { socketPath: route.unixSocket } : {}) },
          ...timeouts,
        });
  const undiciFetch = undici.fetch as unknown as (
    input: string | URL,
    init?: RequestInit & { dispatcher: unknown },
  ) => Promise<Response>;
  return {
    fetch: (input, init) => undiciFetch(input, { ...init, dispatcher }),
    close: () => dispatcher.close(),
  };
}

/** Deno takes proxy credentials apart from the URL. */
function denoProxy(route: Route): DenoProxy | undefined {
  if (route.unixSocket) return { transport: "unix", path: route.unixSocket };
  if (!route.proxy) return undefined;
  const url = new URL(route.proxy);
  const basicAuth = url.username
    ? { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }
    : undefined;
  url.username = "";
  url.password = "";
  return { url: url.href, ...(basicAuth ? { basicAuth } : {}) };
}
