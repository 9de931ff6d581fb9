/**
 * Knowing when a client or agent connection goes away, so its MCP request is cancelled
 * or its held poll ends. On Cloudflare the runtime aborts `request.signal`
 * (`enable_request_signal`). Local workerd only notices on the next write, so the local
 * runner puts a small front proxy before it that reports closed sockets here; its
 * headers are trusted only with the per-run `AIRLOCK_INTERNAL_SECRET` (never set in a
 * real deployment) and never reach an agent (`x-airlock-internal*` is always stripped).
 */
import { Hono, type Context } from "hono";
import { TUNNEL_ID_PATTERN } from "../shared/protocol/index.ts";
import { constantTimeEqual } from "./auth.ts";
import { background, fail, hubFor, type WorkerContext, type WorkerDeps } from "./context.ts";

export const INTERNAL_SECRET_HEADER = "X-Airlock-Internal-Secret";
export const INTERNAL_CONNECTION_HEADER = "X-Airlock-Internal-Connection";
/** Where the local runner's proxy reports a closed connection: `{"tunnel_id","connection"}`. */
export const DISCONNECTED_PATH = "/_airlock/disconnected";

const MAX_KEY_LENGTH = 128;

function trusted(c: Context<WorkerContext>): boolean {
  const secret = c.env.AIRLOCK_INTERNAL_SECRET;
  const presented = c.req.header(INTERNAL_SECRET_HEADER);
  return !!secret && presented !== undefined && constantTimeEqual(presented, secret);
}

/** True when the request came through the local runner's front proxy (it carries the per-run secret). */
export { trusted as isTrustedFront };

/**
 * The key naming this request's connection in the tunnel's hub; when the connection
 * goes away the hub hears `disconnected(key)`.
 */
export function watchConnection(c: Context<WorkerContext>): string {
  const announced = trusted(c) ? c.req.header(INTERNAL_CONNECTION_HEADER)?.slice(0, MAX_KEY_LENGTH) : undefined;
  const key = announced || crypto.randomUUID();
  const hub = c.get("hub");
  c.req.raw.signal.addEventListener("abort", () => background(c, hub.disconnected(key)), { once: true });
  return key;
}

/** `POST /_airlock/disconnected`, for the local runner only. */
export function disconnectApi(deps: WorkerDeps): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  app.post(DISCONNECTED_PATH, async (c) => {
    if (!trusted(c))
      return fail({ status: 404, code: null, message: `No route for POST ${DISCONNECTED_PATH} on this hub.` });
    const body = (await c.req.json().catch(() => undefined)) as
      | { tunnel_id?: unknown; connection?: unknown }
      | undefined;
    const tunnelId = body?.tunnel_id;
    const connection = body?.connection;
    if (
      typeof tunnelId !== "string" ||
      !TUNNEL_ID_PATTERN.test(tunnelId) ||
      typeof connection !== "string" ||
      connection === ""
    ) {
      return fail({ status: 400, code: null, message: 'expected {"tunnel_id": "tunnel_…", "connection": "…"}' });
    }
    await hubFor(deps, c.env, tunnelId).disconnected(connection.slice(0, MAX_KEY_LENGTH));
    return c.body(null, 204);
  });
  return app;
}
