/**
 * Who may reach the operator surface's interactive parts (the admin UI, Harpoon's HTTP
 * transport): by default only this host. The peer address alone is not enough — a web page
 * in the operator's browser also connects from loopback — so the `Host` must be a loopback
 * name or an allowed host (defeats DNS rebinding) and a browser's `Origin`, when sent, must
 * be one too (defeats cross-site requests). These are network checks; the admin UI also
 * needs its own credential (`ui-auth.ts`), because every local process is a loopback peer.
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
  const name = hostName(host);
  return name === "localhost" || name.endsWith(".localhost") || isLoopbackAddress(name);
}

/** Who may reach an interactive part of the operator surface (the admin UI, Harpoon's HTTP transport). */
export interface AccessRule {
  /** `admin_ui.allow_remote`: peers on other hosts too (the peer check is skipped, nothing else). */
  allowRemote: boolean;
  /** `admin_ui.allowed_hosts`: names besides loopback ones that `Host` and `Origin` may carry. */
  allowedHosts: readonly string[];
  /** Overrides how the connecting address is found (tests; unusual servers). */
  remoteAddress?: (c: Context) => string | undefined;
}

/** True when `host` (`name[:port]`) is a loopback name or one of `allowedHosts` (names compared without port). */
export function isAllowedHost(host: string, allowedHosts: readonly string[]): boolean {
  if (isLoopbackHost(host)) return true;
  const name = hostName(host);
  return name !== "" && allowedHosts.some((allowed) => hostName(allowed) === name);
}

function hostName(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/:\d+$/, "")
    .replace(/^\[|\]$/g, "");
}

/**
 * Why a request may not use an interactive surface, or `undefined` when it may. The peer
 * must be this host unless `allowRemote`; the `Host` (DNS rebinding) and a browser's
 * `Origin` (cross-site requests) are checked always, against loopback names and
 * `allowedHosts`, so widening the peer never drops them.
 */
export function accessRefusal(c: Context, rule: AccessRule): string | undefined {
  if (!rule.allowRemote) {
    const address = (rule.remoteAddress ?? connectingAddress)(c);
    if (address === undefined)
      return "the connecting address is unknown, so this request cannot be shown to come from this host";
    if (!isLoopbackAddress(address)) return `this request came from ${address}, not from this host`;
  }
  const host = c.req.header("host") ?? "";
  if (!isAllowedHost(host, rule.allowedHosts)) {
    return `the request names host "${host}", which is neither a loopback name nor in admin_ui.allowed_hosts (a web page on another site may be trying to reach it)`;
  }
  const origin = c.req.header("origin");
  if (origin === "null") return "the request was sent by a sandboxed or file:// web page";
  if (origin !== undefined) {
    let originHost = "";
    try {
      originHost = new URL(origin).host;
    } catch {
      /* not a URL: refused below */
    }
    if (!isAllowedHost(originHost, rule.allowedHosts)) return `the request was sent by a web page from ${origin}`;
  }
  return undefined;
}
