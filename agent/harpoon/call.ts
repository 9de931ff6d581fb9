/**
 * One `call_target`: a bounded HTTP request to an allowlisted target, made from inside the
 * private network. The rules, as tunnel-client keeps them:
 *
 * - the request goes to the target's exact URL, with GET, POST or PUT; the caller picks
 *   the label, never the URL;
 * - redirects are followed (unless `follow_redirects: false`) one hop at a time, each
 *   destination checked *before* it is contacted: it must be, exactly, some registered
 *   target's URL (so plaintext only when allowed), and at most `max_redirects` hops;
 * - only allowlisted caller headers are sent ({@link CALLER_HEADER_ALLOWLIST}), and not
 *   even those when the caller's own `Connection` header nominates them;
 * - the response (after content decoding) may be at most `max_response_bytes`; a larger
 *   one is an error, not a truncated result; the request body has the same ceiling;
 * - every call ends within `timeout_ms` (default 30 s, 100 ms – 120 s);
 * - bodies never reach the log; with `capture_payloads` they are kept in the call history.
 */
import type { Logger } from "../../shared/log.ts";
import { CLIENT_REQUEST_HEADER_ALLOWLIST } from "../../shared/protocol/headers.ts";
import type { FetchLike } from "../runtime/http-client.ts";
import { linkSignals } from "../runtime/signals.ts";
import { classifyFetchError } from "../backends/failure-kind.ts";
import type { HarpoonRegistry, HarpoonTarget } from "./registry.ts";
import { createRewriter } from "./rewrite.ts";

export const DEFAULT_TIMEOUT_MS = 30_000;
export const MIN_TIMEOUT_MS = 100;
export const MAX_TIMEOUT_MS = 120_000;
export const ALLOWED_METHODS = ["GET", "POST", "PUT"] as const;
/** RFC 9110 token: what a header name may be. */
export const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const HEADER_NAME = new RegExp(HEADER_NAME_PATTERN);

/**
 * The only headers a caller may set: the MCP client-header allowlist (a target may be an MCP
 * server: `Accept`, `Authorization`, the session and protocol headers, trace context), plus
 * what an HTTP API call needs to describe its body, negotiate, make conditional or idempotent
 * requests, and prove possession of an OAuth token (`DPoP`). Everything else is dropped:
 * forwarding and client-IP headers, URL rewrites (`X-Original-URL`, `X-Rewrite-URL`), method
 * overrides, `Host`, hop-by-hop and framing, `Cookie`, `User-Agent` (the agent sends its own),
 * `Accept-Encoding` (fetch negotiates it). An allowlist, because no list of the headers some
 * upstream trusts is ever complete.
 */
export const CALLER_HEADER_ALLOWLIST: readonly string[] = [
  ...CLIENT_REQUEST_HEADER_ALLOWLIST,
  "Accept-Language", "Cache-Control", "Content-Language", "Content-Type", "DPoP", "Idempotency-Key",
  "If-Match", "If-Modified-Since", "If-None-Match", "If-Unmodified-Since", "Prefer", "X-Request-Id",
];
const CALLER_ALLOWED = new Set(CALLER_HEADER_ALLOWLIST.map((name) => name.toLowerCase()));

/** Credentials that must not follow a redirect to another host (Go's http.Client rule). */
const CREDENTIAL_HEADERS = ["authorization", "cookie", "www-authenticate"];
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Encodings `fetch` decodes itself: the headers describing the wire form no longer fit the body. */
const DECODED_ENCODINGS = new Set(["gzip", "x-gzip", "deflate", "br"]);

/** `call_target` arguments after schema validation. */
export interface CallTargetArgs {
  label: string;
  method: string;
  headers?: Record<string, string>;
  body?: string;
  timeout_ms?: number;
  max_response_bytes?: number;
  follow_redirects?: boolean;
  max_redirects?: number;
}

/** `call_target`'s structured result, field for field as tunnel-client returns it. */
export interface CallTargetResult {
  status_code: number;
  /** Canonical header names (`Content-Type`), every value kept. */
  headers: Record<string, string[]>;
  /** The body (after URL rewriting), base64; `""` when empty. */
  body_base64: string;
  /** Bytes the target sent (before rewriting). */
  body_size_bytes: number;
  /** Always false: an oversized body is an error. Kept for tunnel-client's schema. */
  truncated: boolean;
}

/** A refused or failed call; the message is what the tool result says (`label x: …`). */
export class HarpoonCallError extends Error {
  override name = "HarpoonCallError";
  readonly label: string;
  readonly reason: string;
  constructor(label: string, reason: string) {
    super(`label ${label || "unknown"}: ${reason}`);
    this.label = label;
    this.reason = reason;
  }
}

/** One entry of the call history (the admin UI's view of Harpoon). */
export interface HarpoonCallRecord {
  at: string;
  label: string;
  method: string;
  /** Origin and path of the last URL contacted; never the query. */
  url: string;
  /** 0 when no response arrived. */
  status: number;
  latencyMs: number;
  requestBytes: number;
  responseBytes: number;
  contentType?: string;
  error?: string;
  /** Only with `capture_payloads`. */
  requestBody?: string;
  responseBody?: string;
  responseBodyBase64?: boolean;
  responseBodyRewritten?: string;
}

export interface CallerOptions {
  registry: HarpoonRegistry;
  /** The fetch that reaches `target` (its Unix socket, the Harpoon proxy, the CA bundle). */
  fetchFor(target: HarpoonTarget): FetchLike;
  /** Configured ceiling (≤ 102 400); also the default per call. */
  maxResponseBytes: number;
  /** Configured ceiling (≤ 5); also the default per call. */
  maxRedirects: number;
  userAgent: string;
  capturePayloads: boolean;
  log: Logger;
  onCall?(record: HarpoonCallRecord): void;
  now?(): number;
}

export type Caller = (args: CallTargetArgs, signal: AbortSignal) => Promise<CallTargetResult>;

/** Go's canonical header form (`content-type` → `Content-Type`); names with odd characters stay as they are. */
export function canonicalHeaderName(name: string): string {
  if (!HEADER_NAME.test(name) || /[^A-Za-z0-9-]/.test(name)) return name;
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase());
}

/** Keep only allowlisted caller headers; `Connection`-nominated names go too. */
export function filterOutboundHeaders(input: Record<string, string>): { headers: Headers; dropped: number } {
  const nominated = new Set<string>();
  for (const [name, value] of Object.entries(input)) {
    if (name.trim().toLowerCase() !== "connection") continue;
    for (const option of value.split(",")) if (option.trim() !== "") nominated.add(option.trim().toLowerCase());
  }
  const headers = new Headers();
  let dropped = 0;
  for (const [rawName, value] of Object.entries(input)) {
    const name = rawName.trim();
    if (name === "") continue;
    const lower = name.toLowerCase();
    if (!CALLER_ALLOWED.has(lower) || nominated.has(lower)) {
      dropped++;
      continue;
    }
    if (/[\r\n\0]/.test(value)) throw new TypeError(`header ${name} has a line break or NUL in its value`);
    headers.set(name, value);
  }
  return { headers, dropped };
}

function responseHeaders(response: Response): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const encoding = response.headers.get("content-encoding")?.trim().toLowerCase();
  const decoded = encoding !== undefined && DECODED_ENCODINGS.has(encoding);
  response.headers.forEach((value, name) => {
    if (name === "transfer-encoding" || name === "set-cookie") return;
    if (decoded && (name === "content-encoding" || name === "content-length")) return;
    out[canonicalHeaderName(name)] = [value];
  });
  const cookies = typeof response.headers.getSetCookie === "function" ? response.headers.getSetCookie() : [];
  if (cookies.length > 0) out["Set-Cookie"] = cookies;
  return out;
}

/** Read at most `limit` bytes; `undefined` when the body is longer. */
async function readLimited(response: Response, limit: number): Promise<Uint8Array | undefined> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  const decoded = DECODED_ENCODINGS.has(response.headers.get("content-encoding")?.trim().toLowerCase() ?? "");
  if (!decoded && Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel().catch(() => {});
    return undefined;
  }
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer());
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** For logs and history: no query, no credentials. */
function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function bodyText(bytes: Uint8Array): { text: string; base64: boolean } {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes), base64: false };
  } catch {
    return { text: toBase64(bytes), base64: true };
  }
}

function sameOrSubdomain(candidate: string, original: string): boolean {
  return candidate === original || candidate.endsWith(`.${original}`);
}

function bounded(value: number | undefined, fallback: number, name: string, min: number, max: number, unit = ""): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be ${min === 0 ? "non-negative" : `at least ${min}${unit}`}`);
  if (value > max) throw new RangeError(`${name} must be less than or equal to ${max}${unit}`);
  return value;
}

/** Build the `call_target` implementation over a registry. */
export function createCaller(options: CallerOptions): Caller {
  const { registry, log } = options;
  const now = options.now ?? Date.now;

  return async (args, signal) => {
    const started = now();
    const label = args.label.trim();
    const method = args.method.trim().toUpperCase();
    const requestBody = args.body ?? "";
    const bodyBytes = new TextEncoder().encode(requestBody);
    let lastUrl: URL | undefined;
    const record = (fields: Partial<HarpoonCallRecord>): void => {
      if (!options.onCall) return;
      const entry: HarpoonCallRecord = {
        at: new Date(started).toISOString(), label, method, url: lastUrl ? safeUrl(lastUrl) : "", status: 0,
        latencyMs: now() - started, requestBytes: bodyBytes.byteLength, responseBytes: 0, ...fields,
      };
      if (options.capturePayloads && requestBody !== "") entry.requestBody = requestBody;
      options.onCall(entry);
    };
    function refuse(reason: string, detail?: string): never {
      log.info("harpoon call refused", { label, method, reason, ...(detail ? { detail } : {}) });
      record({ error: reason });
      throw new HarpoonCallError(label, reason);
    }

    if (label === "") refuse("label is required");
    const target = registry.lookup(label);
    if (!target) {
      const known = registry.targets().map((t) => t.label);
      refuse(`unknown target; known labels: ${known.join(", ") || "(none)"} (list_targets shows them)`);
    }
    if (!(ALLOWED_METHODS as readonly string[]).includes(method)) refuse(`invalid method ${JSON.stringify(args.method)}; use GET, POST or PUT`);
    let timeoutMs = 0;
    let maxBytes = 0;
    let maxRedirects = 0;
    try {
      timeoutMs = bounded(args.timeout_ms, DEFAULT_TIMEOUT_MS, "timeout_ms", MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, "ms");
      maxBytes = bounded(args.max_response_bytes, options.maxResponseBytes, "max_response_bytes", 1, options.maxResponseBytes);
      maxRedirects = bounded(args.max_redirects, options.maxRedirects, "max_redirects", 0, options.maxRedirects);
    } catch (error) {
      refuse((error as Error).message);
    }
    const follow = args.follow_redirects ?? true;
    if (bodyBytes.byteLength > maxBytes) refuse(`request body exceeds size limit (${bodyBytes.byteLength} > ${maxBytes} bytes)`);
    if (method === "GET" && bodyBytes.byteLength > 0) refuse("a GET request cannot carry a body; use POST or PUT");
    let headers: Headers;
    try {
      const filtered = filterOutboundHeaders(args.headers ?? {});
      headers = filtered.headers;
      if (filtered.dropped > 0) log.info("harpoon call dropped headers it may not forward", { label, dropped: filtered.dropped });
    } catch (error) {
      return refuse((error as Error).message);
    }
    headers.set("User-Agent", options.userAgent);

    const linked = linkSignals([signal], timeoutMs);
    const firstHost = target.url.hostname;
    let url = target.url;
    let hopTarget = target;
    let hopMethod = method;
    let hopBody: Uint8Array<ArrayBuffer> | undefined = bodyBytes.byteLength > 0 ? bodyBytes : undefined;
    let response: Response | undefined;
    try {
      for (let hop = 0; ; hop++) {
        lastUrl = url;
        try {
          response = await options.fetchFor(hopTarget)(url.href, { method: hopMethod, headers, body: hopBody, redirect: "manual", signal: linked.signal });
        } catch (error) {
          if (signal.aborted) throw error;
          const { failure, detail } = classifyFetchError(error, linked.timedOut);
          const reason = failure.source === "timeout" ? `request failed (timed out after ${timeoutMs} ms)` : `request failed (${(failure.kind ?? failure.source).replaceAll("_", " ")})`;
          return refuse(reason, detail);
        }
        const location = response.headers.get("location");
        if (!follow || !REDIRECT_STATUSES.has(response.status) || location === null || location === "") break;
        await response.body?.cancel().catch(() => {});
        if (hop + 1 > maxRedirects) return refuse(`redirect limit exceeded (max_redirects ${maxRedirects})`);
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          return refuse("redirect blocked: the Location header is not a valid URL");
        }
        const allowed = registry.match(next);
        if (!allowed) {
          const sameElsewhere = registry.targets().find((t) => t.url.host === next.host && t.url.pathname === next.pathname && t.url.search === next.search && t.url.protocol !== next.protocol);
          const why = sameElsewhere
            ? `redirect blocked: scheme mismatch (allowlisted ${sameElsewhere.url.protocol.replace(":", "")}, redirected to ${next.protocol.replace(":", "")})`
            : "redirect blocked: the destination is not an allowlisted Harpoon target URL";
          // The destination itself is never echoed: it may be an internal address worth hiding.
          return refuse(why, `redirect from ${safeUrl(url)}`);
        }
        if (response.status === 301 || response.status === 302 || response.status === 303) {
          if (hopMethod !== "GET") {
            hopMethod = "GET";
            hopBody = undefined;
            headers.delete("content-type");
          }
        }
        if (!sameOrSubdomain(next.hostname, firstHost)) for (const name of CREDENTIAL_HEADERS) headers.delete(name);
        url = next;
        hopTarget = allowed;
      }

      const final = response;
      let body: Uint8Array | undefined;
      try {
        body = await readLimited(final, maxBytes);
      } catch (error) {
        if (signal.aborted) throw error;
        const timedOut = linked.timedOut;
        record({ status: final.status, error: "response read failed" });
        log.info("harpoon response read failed", { label, status: final.status, detail: classifyFetchError(error, timedOut).detail });
        throw new HarpoonCallError(label, timedOut ? `response read failed (timed out after ${timeoutMs} ms)` : "response read failed");
      }
      const contentType = final.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase().slice(0, 256) || undefined;
      if (body === undefined) {
        record({ status: final.status, error: "response exceeds size limit", ...(contentType ? { contentType } : {}) });
        log.info("harpoon response too large", { label, status: final.status, limit: maxBytes });
        throw new HarpoonCallError(label, `response exceeds size limit (max_response_bytes ${maxBytes})`);
      }
      const rewriter = createRewriter(registry.targets());
      const rewritten = rewriter.jsonBody(body);
      const sent = rewritten ?? body;
      const outHeaders = rewriter.headers(responseHeaders(final));
      // The rewritten body no longer has the length the target announced.
      if (rewritten) delete outHeaders["Content-Length"];
      const result: CallTargetResult = {
        status_code: final.status, headers: outHeaders, body_base64: toBase64(sent), body_size_bytes: body.byteLength, truncated: false,
      };

      const entry: Partial<HarpoonCallRecord> = { status: final.status, responseBytes: body.byteLength, ...(contentType ? { contentType } : {}) };
      if (options.capturePayloads && body.byteLength > 0) {
        const text = bodyText(body);
        entry.responseBody = text.text;
        if (text.base64) entry.responseBodyBase64 = true;
        if (rewritten) entry.responseBodyRewritten = new TextDecoder().decode(rewritten);
      }
      record(entry);
      log.info("harpoon call completed", {
        label, method, url: safeUrl(url), status: final.status, latencyMs: now() - started,
        requestBytes: bodyBytes.byteLength, responseBytes: body.byteLength, ...(contentType ? { contentType } : {}),
      });
      return result;
    } finally {
      linked.dispose();
    }
  };
}
