/**
 * The serving seam: bind a fetch handler to a TCP address on whichever runtime is running.
 * Deno and Bun serve natively (`Deno.serve`, `Bun.serve`); Node loads @hono/node-server
 * only when it is the runtime, so the other two never import it. The same choice picks
 * Hono's `getConnInfo` for that runtime ({@link peerAddress}).
 */
import { lstat, mkdir, rm, readFile } from "node:fs/promises";
import { writePrivateFile } from "./private-file.ts";
import { Buffer } from "node:buffer";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import type { Context } from "hono";
import type { GetConnInfo } from "hono/conninfo";
import { detectRuntime, type RuntimeName } from "../version.ts";

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface ServeOptions {
  /** Interface to bind; `""` for all (dual-stack, as Go's `:8080`), `0.0.0.0` for all IPv4, `::` for all. */
  hostname: string;
  /** `0` asks the OS for a free port. */
  port: number;
  /** Write the bound base URL here once listening (tunnel-client `health.url_file`); removed on close. */
  urlFile?: string;
  /** Listen on this Unix-domain socket instead of `hostname:port` (tunnel-client `health.unix_socket`). */
  unixSocket?: string;
}

export interface ServedApp {
  /** Base URL a local client can use, e.g. `http://127.0.0.1:41234` (loopback for wildcard binds). */
  url: string;
  hostname: string;
  port: number;
  close(): Promise<void>;
}

/**
 * `host:port` as Go's net.SplitHostPort reads it: `127.0.0.1:8080`, `:8080` (all interfaces:
 * hostname `""`, bound dual-stack by {@link serve}), `[::1]:0`.
 */
export function parseListenAddr(addr: string): { hostname: string; port: number } {
  const text = addr.trim();
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]+)$/.exec(text);
  if (!match) {
    throw new Error(
      `listen address "${addr}" is not host:port; write e.g. 127.0.0.1:8080, :8080 (all interfaces) or 127.0.0.1:0 (any free port)`,
    );
  }
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`listen address "${addr}" has port ${port}; ports go up to 65535`);
  const host = match[1] ?? match[2] ?? "";
  return { hostname: host, port };
}

/** One way to bind: the address, and for `::` whether IPv4 clients are refused. */
export interface ListenAttempt {
  hostname: string;
  ipv6Only?: boolean;
}

/**
 * What binding `hostname` tries, in order. An empty host is Go's "all interfaces": one IPv6
 * socket that also takes IPv4 (`::`, `ipv6Only: false`), and plain `0.0.0.0` where the host
 * has no IPv6 (a container with IPv6 disabled). Any other host is bound as written.
 */
export function listenAttempts(hostname: string): ListenAttempt[] {
  return hostname === "" ? [{ hostname: "::", ipv6Only: false }, { hostname: "0.0.0.0" }] : [{ hostname }];
}

/** Errors saying the host has no IPv6 (so an IPv4 bind may still work), on Node, Deno and Bun. */
export function ipv6Unavailable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === "string" && ["EAFNOSUPPORT", "EADDRNOTAVAIL", "EPROTONOSUPPORT"].includes(code)) return true;
  return typeof message === "string" && /address family not supported|cannot assign requested address/i.test(message);
}

/**
 * Try each attempt with `listen` until one binds; fall through only when IPv6 is missing, so
 * a port already in use is reported as it is rather than hidden behind an IPv4 retry.
 */
export async function listenFirst<T>(
  attempts: readonly ListenAttempt[],
  listen: (attempt: ListenAttempt) => Promise<T>,
): Promise<T> {
  for (const [index, attempt] of attempts.entries()) {
    try {
      return await listen(attempt);
    } catch (error) {
      if (index === attempts.length - 1 || !ipv6Unavailable(error)) throw error;
    }
  }
  throw new Error("no listen attempt");
}

/** The base URL for a bound address; wildcard binds are reached through loopback. */
export function baseUrl(hostname: string, port: number): string {
  // A dual-stack wildcard takes IPv4 too: 127.0.0.1 works wherever scripts run.
  const host = hostname === "0.0.0.0" || hostname === "" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

type Listener = { hostname: string; port: number; stop(): Promise<void> };

const UNIX_SCHEME = "http+unix:";

/** tunnel-client's health URL for a Unix socket (`pkg/healthurl`): `http+unix://<base64url(path)>`. */
export function unixBaseUrl(path: string): string {
  return `${UNIX_SCHEME}//${Buffer.from(path, "utf8").toString("base64url")}`;
}

/** The socket path of an `http+unix://` health URL, or undefined for any other URL. */
export function unixSocketOf(url: string): string | undefined {
  if (!url.startsWith(`${UNIX_SCHEME}//`)) return undefined;
  const encoded = url.slice(UNIX_SCHEME.length + 2).replace(/\/.*$/, "");
  const path = Buffer.from(encoded, "base64url").toString("utf8");
  return path === "" ? undefined : path;
}

/**
 * A socket file left by an agent that died is removed; one that still answers, or a path that
 * is not a socket, is an error (as tunnel-client: never take over a live listener or a file).
 */
export async function removeStaleSocket(path: string): Promise<void> {
  const info = await lstat(path).catch((error: { code?: string }) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!info) return;
  if (!info.isSocket()) throw new Error(`${path} exists and is not a unix socket; remove it or choose another path`);
  const live = await new Promise<boolean>((resolve, reject) => {
    const socket = createConnection({ path });
    socket.setTimeout(100, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", (error: NodeJS.ErrnoException) =>
      error.code === "ECONNREFUSED" || error.code === "ENOENT" ? resolve(false) : reject(error),
    );
  });
  if (live) throw new Error(`${path} is already accepting connections: another agent serves it`);
  await rm(path, { force: true });
}

interface DenoServer {
  addr: { hostname: string; port: number };
  shutdown(): Promise<void>;
}
interface DenoGlobal {
  serve(
    options:
      | { hostname: string; port: number; onListen?: (addr: unknown) => void }
      | { transport: "unix"; path: string; onListen?: (addr: unknown) => void },
    handler: FetchHandler,
  ): DenoServer;
}
interface BunServer {
  hostname?: string;
  port?: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}
interface BunGlobal {
  serve(
    options: (
      | {
          hostname: string;
          port: number;
          ipv6Only?: boolean;
        }
      | { unix: string }
    ) & { fetch: FetchHandler; idleTimeout?: number },
  ): BunServer;
}

// Deno has no ipv6Only switch: `::` takes IPv4 as well wherever the OS default (Linux's bindv6only=0) allows.
async function listenDeno(fetch: FetchHandler, { hostname }: ListenAttempt, port: number): Promise<Listener> {
  const deno = (globalThis as unknown as { Deno: DenoGlobal }).Deno;
  // onListen is given to silence Deno's default "Listening on …" line on stdout.
  const server = deno.serve({ hostname, port, onListen: () => {} }, fetch);
  return { hostname, port: server.addr.port, stop: () => server.shutdown() };
}

async function listenBun(fetch: FetchHandler, { hostname, ipv6Only }: ListenAttempt, port: number): Promise<Listener> {
  const bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
  // idleTimeout 0: Bun's default 10 s would cut long-lived responses (SSE in the admin UI).
  const server = bun.serve({ hostname, port, fetch, idleTimeout: 0, ...(ipv6Only === undefined ? {} : { ipv6Only }) });
  return {
    hostname,
    port: server.port ?? port,
    stop: async () => {
      await server.stop(true);
    },
  };
}

async function listenNode(fetch: FetchHandler, { hostname, ipv6Only }: ListenAttempt, port: number): Promise<Listener> {
  const { createAdaptorServer } = await import("@hono/node-server");
  // Leave the process-wide Request/Response alone: the agent's own fetch calls share them.
  const server = createAdaptorServer({ fetch, overrideGlobalObjects: false });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: hostname, ...(ipv6Only === undefined ? {} : { ipv6Only }) }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  return {
    hostname,
    port: bound,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Health probes and scrapers keep connections alive; don't let them hold shutdown.
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}

/** Listen on a Unix-domain socket (its directory created, a stale socket removed); the file goes on stop. */
async function listenUnix(runtime: RuntimeName, fetch: FetchHandler, path: string): Promise<Listener> {
  await mkdir(dirname(path), { recursive: true });
  await removeStaleSocket(path);
  let stop: () => Promise<void>;
  if (runtime === "deno") {
    const server = (globalThis as unknown as { Deno: DenoGlobal }).Deno.serve(
      { transport: "unix", path, onListen: () => {} },
      fetch,
    );
    stop = () => server.shutdown();
  } else if (runtime === "bun") {
    const server = (globalThis as unknown as { Bun: BunGlobal }).Bun.serve({ unix: path, fetch, idleTimeout: 0 });
    stop = async () => {
      await server.stop(true);
    };
  } else {
    const { createAdaptorServer } = await import("@hono/node-server");
    const server = createAdaptorServer({ fetch, overrideGlobalObjects: false });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    stop = () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      });
  }
  return {
    hostname: path,
    port: 0,
    stop: async () => {
      await stop();
      await rm(path, { force: true });
    },
  };
}

/** Hono's `getConnInfo` for the runtime, loaded with the first server; requests only arrive through one. */
let runtimeConnInfo: GetConnInfo | undefined;

async function loadConnInfo(runtime: RuntimeName): Promise<GetConnInfo> {
  if (runtime === "deno") return (await import("hono/deno")).getConnInfo;
  if (runtime === "bun") return (await import("hono/bun")).getConnInfo;
  return (await import("@hono/node-server/conninfo")).getConnInfo;
}

/**
 * The peer address of a request served by {@link serve}, from Hono's `getConnInfo` for the
 * running runtime; `undefined` when unknown (a request that came through no server, such
 * as `app.request()` in a test).
 */
export function peerAddress(c: Context): string | undefined {
  if (!runtimeConnInfo) return undefined;
  try {
    return runtimeConnInfo(c).remote.address;
  } catch {
    // The runtime's server info is not in `c.env`: the request came some other way.
    return undefined;
  }
}

/** Serve `fetch` on `hostname:port` and resolve once it is listening. */
export async function serve(fetch: FetchHandler, options: ServeOptions): Promise<ServedApp> {
  const runtime = detectRuntime().name;
  runtimeConnInfo ??= await loadConnInfo(runtime);
  const listen = runtime === "deno" ? listenDeno : runtime === "bun" ? listenBun : listenNode;
  let listener: Listener;
  const socket = options.unixSocket;
  try {
    listener = socket
      ? await listenUnix(runtime, fetch, socket)
      : await listenFirst(listenAttempts(options.hostname), (attempt) => listen(fetch, attempt, options.port));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      socket
        ? `cannot listen on unix socket ${socket}: ${reason}; choose another health.unix_socket`
        : `cannot listen on ${options.hostname}:${options.port}: ${reason}; choose another health.listen_addr (port 0 picks a free one)`,
    );
  }
  // The dual-stack wildcard keeps the configured "" so its URL is the IPv4 loopback.
  if (options.hostname === "" && listener.hostname === "::") listener.hostname = "";
  const url = socket ? unixBaseUrl(socket) : baseUrl(listener.hostname, listener.port);
  if (options.urlFile) {
    try {
      await writeUrlFile(options.urlFile, url);
    } catch (error) {
      await listener.stop();
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`cannot write health.url_file ${options.urlFile}: ${reason}`);
    }
  }
  let closed: Promise<void> | undefined;
  return {
    url,
    hostname: listener.hostname,
    port: listener.port,
    close: () =>
      (closed ??= (async () => {
        await listener.stop();
        if (options.urlFile) await removeUrlFile(options.urlFile, url);
      })()),
  };
}

/** Readers may poll for the file, so it appears whole (writePrivateFile renames a sibling over it). */
const writeUrlFile = (path: string, url: string) => writePrivateFile(path, `${url}\n`);

/** Remove the file only if it still names this server (another run may have replaced it). */
async function removeUrlFile(path: string, url: string): Promise<void> {
  try {
    if ((await readFile(path, "utf8")).trim() === url) await rm(path, { force: true });
  } catch {
    // Already gone.
  }
}
