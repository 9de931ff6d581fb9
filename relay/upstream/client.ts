/**
 * Calls to the upstream control plane on an agent's behalf. The agent's identity
 * headers (`X-Tunnel-*`) go through; its key does not — the relay's upstream key is
 * swapped in, and nothing that comes back to the agent may contain that key (bodies are
 * scrubbed, upstream headers are not copied). Upstream trouble reaches the agent as the
 * statuses the upstream itself would give (429 and 5xx with `Retry-After`), or 502 when
 * it cannot be reached at all, so the agent's retry logic works unchanged.
 */
import type { TunnelConfig } from "../config.ts";
import { HubConfigError } from "../config.ts";
import { errorResponse, type HubError } from "../errors.ts";

/** Where one relay tunnel's upstream is, and the key to use there. */
export interface Upstream {
  /** `<upstream_url>/v1/tunnels/<tunnel id>`. */
  tunnelUrl: string;
  /** For messages: the upstream's origin, never its key. */
  origin: string;
  key: string;
}

/** The Worker secret a relay tunnel's upstream key is read from unless it names another. */
export const DEFAULT_UPSTREAM_KEY_SECRET = "AIRLOCK_UPSTREAM_KEY";

/** What stands in for the upstream key if an upstream body ever echoes it. */
export const SCRUBBED_KEY = "[upstream key removed by the relay]";

/** The upstream of a relay tunnel; a configuration error when its key secret is not set. */
export function upstreamOf(env: object, tunnelId: string, tunnel: TunnelConfig & { upstream_url: string }): Upstream {
  const name = tunnel.upstream_key_secret ?? DEFAULT_UPSTREAM_KEY_SECRET;
  const key = (env as Record<string, unknown>)[name];
  if (typeof key !== "string" || key.trim() === "") {
    throw new HubConfigError(
      `the upstream key of relay tunnel ${tunnelId} is missing: set the Worker secret ${name} (wrangler secret put ${name})`,
    );
  }
  const base = tunnel.upstream_url.replace(/\/+$/, "");
  return { tunnelUrl: `${base}/v1/tunnels/${tunnelId}`, origin: new URL(base).origin, key: key.trim() };
}

/** Headers for an upstream call: the agent's `X-Tunnel-*` headers, the relay's key, JSON. */
export function upstreamHeaders(agent: Headers, upstream: Upstream, extra: Record<string, string> = {}): Headers {
  const headers = new Headers();
  agent.forEach((value, name) => {
    if (name.toLowerCase().startsWith("x-tunnel-")) headers.set(name, value);
  });
  for (const [name, value] of Object.entries(extra)) headers.set(name, value);
  headers.set("Authorization", `Bearer ${upstream.key}`);
  headers.set("Accept", "application/json");
  return headers;
}

/** An upstream answer, or the error the agent gets when there was none. */
export type UpstreamResult = { ok: true; response: Response } | { ok: false; error: HubError };

/** One call to `<tunnelUrl><path>`; a network failure becomes a 502 the agent retries. */
export async function callUpstream(
  upstream: Upstream,
  path: string,
  init: { method: string; headers: Headers; body?: string; signal?: AbortSignal },
): Promise<UpstreamResult> {
  try {
    const response = await fetch(`${upstream.tunnelUrl}${path}`, { ...init, redirect: "manual" });
    return { ok: true, response };
  } catch (error) {
    const aborted = init.signal?.aborted === true;
    const detail = scrub(error instanceof Error ? error.message : String(error), upstream.key);
    return {
      ok: false,
      error: aborted
        ? {
            status: 499,
            code: null,
            message: "The agent closed the request before the upstream control plane answered.",
          }
        : {
            status: 502,
            code: null,
            retryAfter: 1,
            message: `The relay could not reach the upstream control plane at ${upstream.origin} (${detail.slice(0, 200)}); retry shortly.`,
          },
    };
  }
}

/** `text` with every occurrence of the upstream key replaced. */
export function scrub(text: string, key: string): string {
  return key && text.includes(key) ? text.split(key).join(SCRUBBED_KEY) : text;
}

/**
 * Answer the agent with the upstream's non-success answer: the status, `Retry-After`
 * and the error body pass through (scrubbed). A 401/403 means the upstream refused the
 * *relay's* key or tunnel, which the agent's operator cannot fix: it becomes a 502 that
 * names the relay's configuration.
 */
export async function passUpstreamFailure(response: Response, upstream: Upstream, tunnelId: string): Promise<Response> {
  const text = scrub(await response.text(), upstream.key);
  if (response.status === 401 || response.status === 403) {
    console.error(
      `airlock relay: the upstream ${upstream.origin} answered ${response.status} for tunnel ${tunnelId}: ${text.slice(0, 300)}`,
    );
    return errorResponse({
      status: 502,
      code: null,
      retryAfter: 30,
      message:
        `The upstream control plane refused the relay's credentials for tunnel ${tunnelId} (HTTP ${response.status}). ` +
        "The relay operator must check the tunnel's upstream key secret and upstream_url; the agent's own key is fine.",
    });
  }
  const headers = new Headers({ "Content-Type": response.headers.get("Content-Type") ?? "application/json" });
  const retryAfter = response.headers.get("Retry-After");
  if (retryAfter !== null) headers.set("Retry-After", retryAfter);
  return new Response(text, { status: response.status, headers });
}
