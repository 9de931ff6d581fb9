/**
 * Who may use the operator surface's interactive parts (the admin UI, Harpoon's HTTP
 * transport): only this host. The peer address alone is not enough — a web page in the
 * operator's browser also connects from loopback — so the `Host` must be a loopback name
 * (defeats DNS rebinding) and a browser's `Origin`, when sent, must be a loopback origin
 * (defeats cross-site POSTs).
 */
import type { Context } from "hono";
import { peerAddress } from "../runtime/serve.ts";

/** The peer address of a request, from Hono's `getConnInfo` for the runtime that served it; `undefined` when unknown. */
export const connectingAddress: (c: Context) => string | undefined = peerAddress;

export function isLoopbackAddress(address: string): boolean {
  const plain = address.replace(/^\[|\]$/g, "").replace(/^::ffff:/i, "");
  return plain === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(plain);
}

export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "").toLowerCase();
  return name === "localhost" || name.endsWith(".localhost") || isLoopbackAddress(name);
}

/** Why a request may not use a loopback-only surface, or `undefined` when it may. */
export function loopbackRefusal(c: Context, remoteAddress: (c: Context) => string | undefined = connectingAddress): string | undefined {
  const address = remoteAddress(c);
  if (address === undefined) return "the connecting address is unknown, so this request cannot be shown to come from this host";
  if (!isLoopbackAddress(address)) return `this request came from ${address}, not from this host`;
  const host = c.req.header("host") ?? "";
  if (!isLoopbackHost(host)) return `the request names host "${host}", not a loopback name (a web page on another site may be trying to reach it)`;
  const origin = c.req.header("origin");
  if (origin !== undefined && origin !== "null") {
    let originHost = "";
    try { originHost = new URL(origin).host; } catch { /* not a URL: refused below */ }
    if (!isLoopbackHost(originHost)) return `the request was sent by a web page from ${origin}`;
  } else if (origin === "null") {
    return "the request was sent by a sandboxed or file:// web page";
  }
  return undefined;
}
