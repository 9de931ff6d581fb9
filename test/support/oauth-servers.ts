/**
 * Loopback servers for OAuth discovery tests: a protected MCP server that answers 401 with a
 * `WWW-Authenticate: Bearer resource_metadata=…` challenge and serves RFC 9728 / RFC 8414
 * metadata from its own origin, and a "private" server that records anything that reaches it
 * (it must never be reached by discovery when nothing vouched for it).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SeenRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface LoopbackServer {
  /** `http://<host>:<port>` as the tests should address it. */
  origin: string;
  seen: SeenRequest[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, origin: string) => void | Promise<void>;

/** Serve `handler` on 127.0.0.1 (a literal: Deno and Bun need not try `localhost`'s IPv6 address). */
export async function startLoopback(handler: Handler): Promise<LoopbackServer> {
  const seen: SeenRequest[] = [];
  let origin = "";
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers });
    req.resume();
    void Promise.resolve(handler(req, res, origin)).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface ProtectedMcpOptions {
  /** The challenge's `resource_metadata` (default: none, a bare `Bearer` challenge). */
  challenge?: (origin: string) => string | undefined;
  /** Protected-resource metadata by path; absent paths are 404. */
  resourceMetadata?: (origin: string) => Record<string, Record<string, unknown> | string>;
  /** `/.well-known/oauth-authorization-server` document. */
  authServer?: (origin: string) => Record<string, unknown>;
  /** Held before any metadata is served (to observe `oauth discovery pending`). */
  hold?: Promise<void>;
}

/** The protected MCP server: `/mcp` is 401 for everyone; metadata as configured. */
export function startProtectedMcp(options: ProtectedMcpOptions): Promise<LoopbackServer> {
  return startLoopback(async (req, res, origin) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/mcp") {
      const metadata = options.challenge?.(origin);
      res.writeHead(401, {
        "WWW-Authenticate": metadata ? `Bearer realm="mcp", resource_metadata="${metadata}"` : "Bearer",
        "Content-Type": "application/json",
      });
      res.end('{"error":"unauthorized"}');
      return;
    }
    await options.hold;
    const documents: Record<string, Record<string, unknown> | string> = {
      ...(options.resourceMetadata?.(origin) ?? {}),
      ...(options.authServer ? { "/.well-known/oauth-authorization-server": options.authServer(origin) } : {}),
    };
    const document = documents[path];
    if (document === undefined) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(typeof document === "string" ? document : JSON.stringify(document));
  });
}
