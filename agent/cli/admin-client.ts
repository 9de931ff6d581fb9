/**
 * The HTTP half of `airlock admin tunnels`: one request to the tunnel management API
 * (shared/protocol/admin-tunnels.ts), with tunnel-client's headers, 30 s limit and error
 * wording, so a script that reads its stderr or `--json` errors reads ours the same way.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import type { FetchLike } from "../runtime/http-client.ts";
import { VERSION } from "../version.ts";

/** tunnel-client's `defaultAdminRequestTimeout`. */
export const ADMIN_REQUEST_TIMEOUT_MS = 30_000;
/** tunnel-client reads at most this much of an error body. */
const ERROR_BODY_LIMIT = 4096;

/** Where management requests go and with which credential. */
export interface AdminTarget {
  /** The host root (OpenAI) or the hub's URL; only its origin and, for a hub, its path are used. */
  base: URL;
  /** Path prefix under the host root (`control_plane.url_path`); "" for none. */
  urlPath: string;
  /** `/v1/tunnels` (OpenAI) or `/v1/admin/tunnels` (hub). */
  route: string;
  key: string;
  fetch: FetchLike;
}

/** One per process, as tunnel-client's client instance id. */
const INSTANCE_ID = randomBytes(16).toString("hex");

/**
 * What to do about an error code. tunnel-client's table for the management codes, plus
 * `invalid_api_key`, which tunnel-client leaves unexplained: a 401 names the permission here.
 */
const MITIGATIONS: Readonly<Record<string, string>> = {
  invalid_api_key:
    "use an admin key (OPENAI_ADMIN_KEY / --admin-key; against a hub: --token with the hub's admin token) with Tunnels Read and Manage for the target org/workspace",
  tunnel_management_permission_required:
    "use an admin key or account with Tunnels Read and Manage for the target org/workspace",
  tunnel_active_organization_context_required:
    "select or pass the intended organization ID before listing principals or managing principal-validation overrides",
  tunnel_principal_association_unverified:
    "use an automatically verifiable org/workspace/tenant combination or request a reviewed association override",
  tunnel_principal_limit_exceeded:
    "reduce each of tenant_ids, workspace_ids, and organization_ids to the documented maximum",
  rate_limit_exceeded: "reduce request concurrency or volume and let tunnel-client retry after backoff",
  invalid_tunnel_id_format:
    "set --control-plane.tunnel-id, CONTROL_PLANE_TUNNEL_ID, or control_plane.tunnel_id to the exact tunnel_... ID from Platform tunnel settings",
};

/** A non-2xx answer, with what `--json` reports about it. */
export class AdminRequestError extends Error {
  override name = "AdminRequestError";
  readonly method: string;
  readonly path: string;
  readonly statusCode: number;
  readonly requestId: string;
  readonly info: ErrorInfo;
  constructor(method: string, path: string, statusCode: number, requestId: string, info: ErrorInfo) {
    super(formatRequestError(method, path, statusCode, info) + (requestId ? ` (x-request-id: ${requestId})` : ""));
    this.method = method;
    this.path = path;
    this.statusCode = statusCode;
    this.requestId = requestId;
    this.info = info;
  }
}

/** The error envelope's parts, as tunnel-client's `apierror.Parse` reads them. */
export interface ErrorInfo {
  code: string;
  type: string;
  message: string;
  /** The body as text, trimmed. */
  body: string;
  mitigation: string;
}

function stringField(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** `{"error":{message,type,code}}`, else top-level `message`/`type`/`code`/`detail`, else the text. */
export function parseErrorBody(text: string): ErrorInfo {
  const body = text.trim();
  const info: ErrorInfo = { code: "", type: "", message: "", body, mitigation: "" };
  if (!body) return info;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return info;
  }
  const record = (json !== null && typeof json === "object" ? json : {}) as Record<string, unknown>;
  const envelope = record.error;
  const source = (envelope !== null && typeof envelope === "object" ? envelope : record) as Record<string, unknown>;
  info.code = stringField(source.code);
  info.type = stringField(source.type);
  info.message = stringField(source.message);
  if (source === record && !info.message && record.detail !== undefined && record.detail !== null)
    info.message = typeof record.detail === "string" ? record.detail : JSON.stringify(record.detail);
  info.mitigation = MITIGATIONS[info.code] ?? "";
  return info;
}

function formatRequestError(method: string, path: string, status: number, info: ErrorInfo): string {
  if (method === "DELETE" && status === 404 && path.includes("/v1/tunnels/") && info.body.includes("Invalid URL"))
    return `request ${method} ${path} failed: ${status} delete is not exposed on this control-plane base URL yet; get/list/create/update may still work (${info.body})`;
  const parts = [info.code, info.message || info.body].filter((part) => part !== "");
  let detail = parts.join(": ");
  if (info.mitigation) detail = detail ? `${detail} mitigation: ${info.mitigation}` : `mitigation: ${info.mitigation}`;
  return `request ${method} ${path} failed: ${status} ${detail}`;
}

/** The URL of `suffix` under the target's route: host root, then url path, then the route (Go's path.Join). */
export function adminUrl(target: AdminTarget, suffix = "", query?: URLSearchParams): URL {
  const joined = posix.join("/", target.urlPath.replace(/^\/+|\/+$/g, ""), target.route + suffix);
  const url = new URL(joined, target.base.origin);
  if (query && [...query.keys()].length > 0) url.search = query.toString();
  return url;
}

/** A request's answer: the decoded JSON (undefined for an empty body) and its `x-request-id`. */
export interface AdminAnswer {
  data: unknown;
  requestId: string;
}

/** Go's `Post "url": …` shape for a request that got no answer. */
function transportError(method: string, url: URL, error: unknown): Error {
  const verb = method.charAt(0) + method.slice(1).toLowerCase();
  const reason =
    error instanceof Error && error.name === "TimeoutError"
      ? "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
      : describeCause(error);
  return new Error(`${verb} "${url.href}": ${reason}`);
}

function describeCause(error: unknown): string {
  const cause = (error as { cause?: unknown })?.cause;
  const inner = cause instanceof Error ? cause.message : "";
  const outer = error instanceof Error ? error.message : String(error);
  return inner && inner !== outer ? `${outer}: ${inner}` : outer;
}

/** Send one management request; a non-2xx answer throws {@link AdminRequestError}. */
export async function adminRequest(
  target: AdminTarget,
  method: "GET" | "POST" | "DELETE",
  options: { suffix?: string; query?: URLSearchParams; body?: unknown } = {},
): Promise<AdminAnswer> {
  const url = adminUrl(target, options.suffix, options.query);
  const headers: Record<string, string> = {
    Authorization: `Bearer ${target.key}`,
    Accept: "application/json",
    "User-Agent": `airlock/${VERSION}`,
    "X-Tunnel-Client-Name": "airlock",
    "X-Tunnel-Client-Version": VERSION,
    "X-Tunnel-Client-Instance-Id": INSTANCE_ID,
  };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await target.fetch(url, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      signal: AbortSignal.timeout(ADMIN_REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw transportError(method, url, error);
  }
  const requestId = response.headers.get("x-request-id") ?? "";
  const text = await response.text();
  if (response.status < 200 || response.status >= 300) {
    const info = parseErrorBody(new TextDecoder().decode(new TextEncoder().encode(text).slice(0, ERROR_BODY_LIMIT)));
    throw new AdminRequestError(method, decodeURIComponent(url.pathname), response.status, requestId, info);
  }
  if (text.length === 0) return { data: undefined, requestId };
  try {
    return { data: JSON.parse(text), requestId };
  } catch (error) {
    throw new Error(`decode response: ${(error as Error).message}`);
  }
}
