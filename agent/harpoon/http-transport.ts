/**
 * `harpoon.additional_transports: [http-streamable]`: Harpoon also answers MCP clients on
 * the health listener at `/harpoon/mcp`, as tunnel-client does — loopback clients only,
 * unless `admin_ui.allow_remote`; `Host` and `Origin` are checked always (`access.ts`). Harpoon keeps no per-client state, so this is the
 * sessionless form of Streamable HTTP: each `POST` carries one JSON-RPC message and gets a
 * JSON answer (or `202` for a notification); there is no `Mcp-Session-Id`, and `GET` (a
 * standalone SSE stream) and `DELETE` (session end) are `405`.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { isObject } from "../../shared/jsonrpc.ts";
import type { Backend } from "../backends/types.ts";
import { accessRefusal, type AccessRule } from "../ops/access.ts";

/** Where tunnel-client serves it; mount the app here on the health listener. */
export const HARPOON_HTTP_PATH = "/harpoon/mcp";

/** A JSON-RPC request body larger than this is refused (tool arguments are small). */
const MAX_BODY_BYTES = 1024 * 1024;

/** `admin_ui.allow_remote` and `admin_ui.allowed_hosts`, as for the admin UI. */
export type HarpoonHttpOptions = AccessRule;

function rpcError(c: Context, status: 400 | 403 | 405 | 413 | 415, code: number, message: string): Response {
  return c.json({ jsonrpc: "2.0", id: null, error: { code, message } }, status);
}

/** The sub-app: `ops.route(HARPOON_HTTP_PATH, createHarpoonHttpApp(harpoon, …))`. */
export function createHarpoonHttpApp(harpoon: Backend, options: HarpoonHttpOptions): Hono {
  const app = new Hono();
  app.use("*", async (c, next) => {
    const refusal = accessRefusal(c, options);
    if (refusal) {
      return rpcError(
        c,
        403,
        -32600,
        `Harpoon's HTTP transport answers only on loopback: ${refusal}; set admin_ui.allow_remote (--allow-remote-ui) and admin_ui.allowed_hosts to serve other hosts`,
      );
    }
    await next();
  });
  app.on(["GET", "DELETE"], "/", (c) => {
    c.header("Allow", "POST");
    return rpcError(c, 405, -32000, "Harpoon's HTTP transport is sessionless: POST one JSON-RPC message per request");
  });
  app.post(
    "/",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => rpcError(c, 413, -32600, `the request body exceeds ${MAX_BODY_BYTES} bytes`),
    }),
    async (c) => {
      // A browser can send text/plain cross-site without a preflight; JSON only, like the MCP spec.
      if (!/^application\/json\b/i.test(c.req.header("content-type") ?? "")) {
        return rpcError(c, 415, -32600, "send the JSON-RPC message with Content-Type: application/json");
      }
      let message: unknown;
      try {
        message = await c.req.json();
      } catch {
        return rpcError(c, 400, -32700, "the body is not JSON");
      }
      if (!isObject(message) || message.jsonrpc !== "2.0")
        return rpcError(c, 400, -32600, "the body is not one JSON-RPC 2.0 message (batches are not supported)");
      const result = await harpoon.exchange({ message, headers: {}, signal: c.req.raw.signal, notify: () => {} });
      if (result.kind === "response") return c.json(result.message, 200);
      // Harpoon never cancels; a cancelled call would have nothing to answer either.
      if (result.kind === "ack" || result.kind === "cancelled") return c.body(null, 202);
      return c.json(
        {
          jsonrpc: "2.0",
          id: "id" in message ? message.id : null,
          error: { code: -32603, message: `Harpoon could not answer: ${result.detail ?? result.failure.source}` },
        },
        200,
      );
    },
  );
  return app;
}
