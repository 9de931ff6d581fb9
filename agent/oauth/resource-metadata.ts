/**
 * Finding the main MCP server's OAuth protected-resource metadata (RFC 9728), as tunnel-client
 * does: an unauthenticated `POST` (then `GET`) to the server whose `401` names
 * `resource_metadata` in its `WWW-Authenticate: Bearer` challenge, then the well-known URLs
 * `/.well-known/oauth-protected-resource/<path>` and `/.well-known/oauth-protected-resource`.
 * Candidates are tried in that order; a 404, a 5xx or a failed request falls through to the
 * next one. The first document with a `resource` wins.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import { type DiscoveryHttp, DiscoveryFetchError, discoveryFetch } from "./fetch-guard.ts";

const WELL_KNOWN = "/.well-known/oauth-protected-resource";
/** The probe is only a hint; tunnel-client gives it one second. */
const PROBE_TIMEOUT_MS = 2_000;
const RESOURCE_METADATA_PARAM = /resource_metadata\s*=\s*(?:"([^"]*)"|([^,\s]+))/i;

export type CandidateSource = "www_authenticate" | "well_known_path" | "well_known_root";

export interface DiscoveryAttempt {
  url: string;
  source: CandidateSource;
  status?: number;
  error?: string;
  selected?: boolean;
}

export interface ProtectedResourceMetadata {
  /** The document as served (its bytes are what the `oauth_discovery` answer carries). */
  document: Record<string, unknown>;
  status: number;
  headers: Headers;
  /** Where it was found. */
  source: URL;
}

export interface ResourceDiscovery {
  metadata?: ProtectedResourceMetadata;
  attempts: DiscoveryAttempt[];
  /** The URL the `WWW-Authenticate` probe named, when it named one. */
  probeUrl?: string;
  error?: string;
}

/** The well-known URLs for a server URL, most specific first (tunnel-client's startup line lists them). */
export function wellKnownResourceUrls(serverUrl: URL): Array<{ url: URL; source: CandidateSource }> {
  const root = new URL(WELL_KNOWN, serverUrl.origin);
  const path = serverUrl.pathname.replace(/^\/+|\/+$/g, "");
  if (path === "") return [{ url: root, source: "well_known_root" }];
  const withPath = new URL(
    path.startsWith(WELL_KNOWN.slice(1)) ? `/${path}` : `${WELL_KNOWN}/${path}`,
    serverUrl.origin,
  );
  return [
    { url: withPath, source: "well_known_path" },
    { url: root, source: "well_known_root" },
  ];
}

/** The `resource_metadata` URL of a `Bearer` challenge, when absolute and http(s). */
export function resourceMetadataFromChallenge(header: string): URL | undefined {
  const bearer = header.search(/\bbearer\b/i);
  if (bearer < 0) return undefined;
  const match = RESOURCE_METADATA_PARAM.exec(header.slice(bearer));
  const raw = match?.[1] ?? match?.[2];
  if (!raw) return undefined;
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url : undefined;
  } catch {
    return undefined;
  }
}

async function probeChallenge(http: DiscoveryHttp, serverUrl: URL): Promise<URL | undefined> {
  for (const method of ["POST", "GET"] as const) {
    try {
      const response = await discoveryFetch({ ...http, timeoutMs: PROBE_TIMEOUT_MS }, serverUrl, {
        method,
        accept: "application/json, text/event-stream",
        readBody: false,
      });
      const challenge = response.headers.get("www-authenticate");
      if (response.status === 401 && challenge) {
        const url = resourceMetadataFromChallenge(challenge);
        if (url) return url;
      }
    } catch {
      // The probe is a hint: the well-known URLs are tried whatever happened here.
    }
  }
  return undefined;
}

/** A protected-resource metadata document: a JSON object with a non-empty `resource`. */
function parseDocument(body: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error("not JSON");
  }
  if (!isObject(parsed) || typeof parsed.resource !== "string" || parsed.resource === "")
    throw new Error("no resource in protected resource metadata");
  const servers = parsed.authorization_servers;
  if (servers !== undefined && (!Array.isArray(servers) || servers.some((server) => typeof server !== "string")))
    throw new Error("authorization_servers is not a list of URLs");
  return parsed;
}

/** Look for the metadata; never throws (the result says what each candidate did). */
export async function discoverResourceMetadata(http: DiscoveryHttp, serverUrl: URL): Promise<ResourceDiscovery> {
  const probed = await probeChallenge(http, serverUrl);
  const candidates = [
    ...(probed ? [{ url: probed, source: "www_authenticate" as const }] : []),
    ...wellKnownResourceUrls(serverUrl),
  ].filter((candidate, index, all) => all.findIndex((other) => other.url.href === candidate.url.href) === index);
  const attempts: DiscoveryAttempt[] = [];
  let error = "no candidates";
  for (const [index, candidate] of candidates.entries()) {
    const attempt: DiscoveryAttempt = { url: candidate.url.href, source: candidate.source };
    attempts.push(attempt);
    const last = index === candidates.length - 1;
    try {
      const response = await discoveryFetch(http, candidate.url, { method: "GET", accept: "application/json" });
      attempt.status = response.status;
      if ((response.status === 404 || response.status >= 500) && !last) {
        error = attempt.error = `status ${response.status} (${candidate.url.href})`;
        continue;
      }
      if (response.status < 200 || response.status > 299) throw new Error(`status ${response.status}`);
      const document = parseDocument(response.body);
      attempt.selected = true;
      return {
        metadata: { document, status: response.status, headers: response.headers, source: response.url },
        attempts,
        ...(probed ? { probeUrl: probed.href } : {}),
      };
    } catch (failure) {
      const message = failure instanceof Error ? failure.message : String(failure);
      error = attempt.error = failure instanceof DiscoveryFetchError ? message : `${message} (${candidate.url.href})`;
      // A network failure falls through like a 404; a bad document at a found URL ends the search.
      if (!(failure instanceof DiscoveryFetchError) && attempt.status !== undefined && attempt.status < 500) break;
    }
  }
  return { attempts, error: `oauth discovery: ${error}`, ...(probed ? { probeUrl: probed.href } : {}) };
}

/**
 * The server simply does not publish metadata (no challenge named one, every candidate
 * answered 404): discovery is over and must not hold readiness, as in tunnel-client.
 */
export function isOptionalMiss(result: ResourceDiscovery): boolean {
  return (
    result.metadata === undefined &&
    result.probeUrl === undefined &&
    result.attempts.length > 0 &&
    result.attempts.every((attempt) => attempt.status === 404)
  );
}
