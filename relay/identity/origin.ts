/**
 * The hub's public origin: the issuer of its tokens and the origin of every resource.
 * On Cloudflare that is the request's own origin (or `AIRLOCK_PUBLIC_URL`). The local
 * runner's front proxy reaches workerd on another port, so it names its own origin in a
 * header that is believed only next to the per-run internal secret (relay/connection.ts).
 */
import type { Context } from "hono";
import { isTrustedFront } from "../connection.ts";
import type { WorkerContext } from "../context.ts";

/** Set by the local front proxy (agent/hub-local/front.ts) with the internal secret; `x-airlock-internal*` never reaches an agent. */
export const PUBLIC_ORIGIN_HEADER = "X-Airlock-Internal-Public-Origin";

/** `http(s)://host[:port]`, no trailing slash. */
export function publicOrigin(c: Context<WorkerContext>): string {
  const configured = c.env.AIRLOCK_PUBLIC_URL;
  if (configured) return new URL(configured).origin;
  const announced = isTrustedFront(c) ? c.req.header(PUBLIC_ORIGIN_HEADER) : undefined;
  if (announced && URL.canParse(announced)) return new URL(announced).origin;
  return new URL(c.req.url).origin;
}

/** The request as the public origin received it: the library compares URLs against its issuer. */
export function publicRequest(c: Context<WorkerContext>, origin: string): Request {
  const url = new URL(c.req.url);
  if (url.origin === origin) return c.req.raw;
  return new Request(`${origin}${url.pathname}${url.search}`, c.req.raw);
}
