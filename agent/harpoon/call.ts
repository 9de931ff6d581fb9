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
  "Accept-Language",
  "Cache-Control",
  "Content-Language",
  "Content-Type",
  "DPoP",
  "Idempotency-Key",
  "If-Match",
  "If-Modified-Since",
  "If-None-Match",
  "If-Unmodified-Since",
  "Prefer",
  "X-Request-Id",
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

function bounded(
  value: number | undefined,
  fallback: number,
  name: string,
  min: number,
  max: number,
  unit = "",
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min)
    throw new RangeError(`${name} must be ${min === 0 ? "non-negative" : `at least ${min}${unit}`}`);
  if (value > max) throw new RangeError(`${name} must be less than or equal to ${max}${unit}`);
  return value;
}

/** Build the `call_target` implementation over a registry. */
export function createCaller(options: CallerOptions): Caller {
  return async (args, signal) => {
    const call = new CallRecorder(options, args);
    const plan = planCall(call, options, args);
    const linked = linkSignals([signal], plan.timeoutMs);
    try {
      const { response, url } = await followRedirects(call, options, plan, signal, linked);
      return await answer(call, options, plan, response, url, signal, linked.timedOut);
    } finally {
      linked.dispose();
    }
  };
}

/** One call's bookkeeping: the history record it leaves and the refusal that ends it. */
class CallRecorder {
  readonly label: string;
  readonly method: string;
  readonly requestBody: string;
  readonly bodyBytes: Uint8Array<ArrayBuffer>;
  /** The URL last tried, for the record. */
  lastUrl: URL | undefined;
  readonly #options: CallerOptions;
  readonly #started: number;

  constructor(options: CallerOptions, args: CallTargetArgs) {
    this.#options = options;
    this.#started = this.now();
    this.label = args.label.trim();
    this.method = args.method.trim().toUpperCase();
    this.requestBody = args.body ?? "";
    this.bodyBytes = new TextEncoder().encode(this.requestBody);
  }

  now(): number {
    return (this.#options.now ?? Date.now)();
  }

  latencyMs(): number {
    return this.now() - this.#started;
  }

  record(fields: Partial<HarpoonCallRecord>): void {
    if (!this.#options.onCall) return;
    const entry: HarpoonCallRecord = {
      at: new Date(this.#started).toISOString(),
      label: this.label,
      method: this.method,
      url: this.lastUrl ? safeUrl(this.lastUrl) : "",
      status: 0,
      latencyMs: this.latencyMs(),
      requestBytes: this.bodyBytes.byteLength,
      responseBytes: 0,
      ...fields,
    };
    if (this.#options.capturePayloads && this.requestBody !== "") entry.requestBody = this.requestBody;
    this.#options.onCall(entry);
  }

  /** End the call with an error the tool returns (and the history and log keep). */
  refuse(reason: string, detail?: string): never {
    this.#options.log.info("harpoon call refused", {
      label: this.label,
      method: this.method,
      reason,
      ...(detail ? { detail } : {}),
    });
    this.record({ error: reason });
    throw new HarpoonCallError(this.label, reason);
  }
}

/** What a call will do once its arguments passed every check. */
interface CallPlan {
  target: HarpoonTarget;
  headers: Headers;
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
  follow: boolean;
}

/** Check the arguments against the allowlist and the limits; refuse the call on the first that fails. */
function planCall(call: CallRecorder, options: CallerOptions, args: CallTargetArgs): CallPlan {
  const { registry } = options;
  if (call.label === "") call.refuse("label is required");
  const target = registry.lookup(call.label);
  if (!target) {
    const known = registry.targets().map((t) => t.label);
    call.refuse(`unknown target; known labels: ${known.join(", ") || "(none)"} (list_targets shows them)`);
  }
  if (!(ALLOWED_METHODS as readonly string[]).includes(call.method))
    call.refuse(`invalid method ${JSON.stringify(args.method)}; use GET, POST or PUT`);
  let limits: Pick<CallPlan, "timeoutMs" | "maxBytes" | "maxRedirects">;
  try {
    limits = {
      timeoutMs: bounded(args.timeout_ms, DEFAULT_TIMEOUT_MS, "timeout_ms", MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, "ms"),
      maxBytes: bounded(
        args.max_response_bytes,
        options.maxResponseBytes,
        "max_response_bytes",
        1,
        options.maxResponseBytes,
      ),
      maxRedirects: bounded(args.max_redirects, options.maxRedirects, "max_redirects", 0, options.maxRedirects),
    };
  } catch (error) {
    call.refuse((error as Error).message);
  }
  const size = call.bodyBytes.byteLength;
  if (size > limits.maxBytes) call.refuse(`request body exceeds size limit (${size} > ${limits.maxBytes} bytes)`);
  if (call.method === "GET" && size > 0) call.refuse("a GET request cannot carry a body; use POST or PUT");
  let headers: Headers;
  try {
    const filtered = filterOutboundHeaders(args.headers ?? {});
    headers = filtered.headers;
    if (filtered.dropped > 0)
      options.log.info("harpoon call dropped headers it may not forward", {
        label: call.label,
        dropped: filtered.dropped,
      });
  } catch (error) {
    call.refuse((error as Error).message);
  }
  headers.set("User-Agent", options.userAgent);
  return { target, headers, ...limits, follow: args.follow_redirects ?? true };
}

/**
 * Send the request and follow redirects, each hop only to an allowlisted target URL; a
 * 301/302/303 turns a POST or PUT into a GET without its body, and credentials never
 * follow a redirect to another host.
 */
async function followRedirects(
  call: CallRecorder,
  options: CallerOptions,
  plan: CallPlan,
  signal: AbortSignal,
  linked: { signal: AbortSignal; timedOut: boolean },
): Promise<{ response: Response; url: URL }> {
  const { registry } = options;
  const { headers } = plan;
  const firstHost = plan.target.url.hostname;
  let url = plan.target.url;
  let hopTarget = plan.target;
  let hopMethod = call.method;
  let hopBody: Uint8Array<ArrayBuffer> | undefined = call.bodyBytes.byteLength > 0 ? call.bodyBytes : undefined;
  for (let hop = 0; ; hop++) {
    call.lastUrl = url;
    let response: Response;
    try {
      response = await options.fetchFor(hopTarget)(url.href, {
        method: hopMethod,
        headers,
        body: hopBody,
        redirect: "manual",
        signal: linked.signal,
      });
    } catch (error) {
      if (signal.aborted) throw error;
      const { failure, detail } = classifyFetchError(error, linked.timedOut);
      const reason =
        failure.source === "timeout"
          ? `request failed (timed out after ${plan.timeoutMs} ms)`
          : `request failed (${(failure.kind ?? failure.source).replaceAll("_", " ")})`;
      return call.refuse(reason, detail);
    }
    const location = response.headers.get("location");
    if (!plan.follow || !REDIRECT_STATUSES.has(response.status) || location === null || location === "")
      return { response, url };
    await response.body?.cancel().catch(() => {});
    if (hop + 1 > plan.maxRedirects) return call.refuse(`redirect limit exceeded (max_redirects ${plan.maxRedirects})`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      return call.refuse("redirect blocked: the Location header is not a valid URL");
    }
    const allowed = registry.match(next);
    if (!allowed) return call.refuse(redirectRefusal(registry, next), `redirect from ${safeUrl(url)}`);
    if ((response.status === 301 || response.status === 302 || response.status === 303) && hopMethod !== "GET") {
      hopMethod = "GET";
      hopBody = undefined;
      headers.delete("content-type");
    }
    if (!sameOrSubdomain(next.hostname, firstHost)) for (const name of CREDENTIAL_HEADERS) headers.delete(name);
    url = next;
    hopTarget = allowed;
  }
}

/** Why a redirect was blocked. The destination itself is never echoed: it may be an internal address worth hiding. */
function redirectRefusal(registry: HarpoonRegistry, next: URL): string {
  const sameElsewhere = registry
    .targets()
    .find(
      (t) =>
        t.url.host === next.host &&
        t.url.pathname === next.pathname &&
        t.url.search === next.search &&
        t.url.protocol !== next.protocol,
    );
  return sameElsewhere
    ? `redirect blocked: scheme mismatch (allowlisted ${sameElsewhere.url.protocol.replace(":", "")}, redirected to ${next.protocol.replace(":", "")})`
    : "redirect blocked: the destination is not an allowlisted Harpoon target URL";
}

/** Read the final response within the size limit, rewrite target URLs in it, and record and log the call. */
async function answer(
  call: CallRecorder,
  options: CallerOptions,
  plan: CallPlan,
  final: Response,
  url: URL,
  signal: AbortSignal,
  timedOut: boolean,
): Promise<CallTargetResult> {
  const { log } = options;
  const { label } = call;
  let body: Uint8Array | undefined;
  try {
    body = await readLimited(final, plan.maxBytes);
  } catch (error) {
    if (signal.aborted) throw error;
    call.record({ status: final.status, error: "response read failed" });
    log.info("harpoon response read failed", {
      label,
      status: final.status,
      detail: classifyFetchError(error, timedOut).detail,
    });
    throw new HarpoonCallError(
      label,
      timedOut ? `response read failed (timed out after ${plan.timeoutMs} ms)` : "response read failed",
    );
  }
  const contentType = final.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase().slice(0, 256) || undefined;
  if (body === undefined) {
    call.record({
      status: final.status,
      error: "response exceeds size limit",
      ...(contentType ? { contentType } : {}),
    });
    log.info("harpoon response too large", { label, status: final.status, limit: plan.maxBytes });
    throw new HarpoonCallError(label, `response exceeds size limit (max_response_bytes ${plan.maxBytes})`);
  }
  const rewriter = createRewriter(options.registry.targets());
  const rewritten = rewriter.jsonBody(body);
  const outHeaders = rewriter.headers(responseHeaders(final));
  // The rewritten body no longer has the length the target announced.
  if (rewritten) delete outHeaders["Content-Length"];
  const entry: Partial<HarpoonCallRecord> = {
    status: final.status,
    responseBytes: body.byteLength,
    ...(contentType ? { contentType } : {}),
  };
  if (options.capturePayloads && body.byteLength > 0) {
    const text = bodyText(body);
    entry.responseBody = text.text;
    if (text.base64) entry.responseBodyBase64 = true;
    if (rewritten) entry.responseBodyRewritten = new TextDecoder().decode(rewritten);
  }
  call.record(entry);
  log.info("harpoon call completed", {
    label,
    method: call.method,
    url: safeUrl(url),
    status: final.status,
    latencyMs: call.latencyMs(),
    requestBytes: call.bodyBytes.byteLength,
    responseBytes: body.byteLength,
    ...(contentType ? { contentType } : {}),
  });
  return {
    status_code: final.status,
    headers: outHeaders,
    body_base64: toBase64(rewritten ?? body),
    body_size_bytes: body.byteLength,
    truncated: false,
  };
}
