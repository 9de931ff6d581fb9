/**
 * Turns what a runtime throws into the bounded {@link FailureSpec} the wire allows.
 * Node (undici), Deno and Bun report the same network fault in different shapes: an
 * `errno`-style `code` somewhere on the `cause` chain (Node, Bun) or only a message
 * (Deno). The spec never carries that text; a scrubbed `detail` goes to the log.
 */
import type { FailureSpec, TransportErrorKind } from "../../shared/protocol/failure.ts";

/** A classified failure: the wire-safe spec plus a log line without URLs. */
export interface ClassifiedFailure {
  failure: FailureSpec;
  detail: string;
}

type Rule = { codes: string[]; pattern?: RegExp; failure: FailureSpec };

// Order matters: TLS and DNS messages often also say "connect" or "closed".
const RULES: Rule[] = [
  {
    codes: [
      "DEPTH_ZERO_SELF_SIGNED_CERT",
      "SELF_SIGNED_CERT_IN_CHAIN",
      "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      "UNABLE_TO_GET_ISSUER_CERT",
      "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
      "CERT_HAS_EXPIRED",
      "CERT_NOT_YET_VALID",
      "ERR_TLS_CERT_ALTNAME_INVALID",
      "CERT_UNTRUSTED",
      "CERT_REJECTED",
      "EPROTO",
      "ERR_SSL_WRONG_VERSION_NUMBER",
      "TLSCertificateError",
      "UND_ERR_TLS",
    ],
    pattern: /certificate|\btls\b|\bssl\b|handshake|UnknownIssuer|CaUsedAsEndEntity/i,
    failure: { source: "tls", kind: "tls" },
  },
  {
    codes: ["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "DNSException"],
    pattern: /dns error|failed to lookup address|name or service not known|getaddrinfo/i,
    failure: { source: "dns", kind: "dns" },
  },
  {
    codes: ["ECONNREFUSED", "ConnectionRefused"],
    pattern: /connection refused/i,
    failure: { source: "connect", kind: "connection_refused" },
  },
  {
    codes: ["EHOSTUNREACH"],
    pattern: /host is unreachable|no route to host/i,
    failure: { source: "connect", kind: "host_unreachable" },
  },
  {
    codes: ["ENETUNREACH"],
    pattern: /network is unreachable/i,
    failure: { source: "connect", kind: "network_unreachable" },
  },
  {
    // No socket at all: no local address, a Unix socket path that does not exist, Bun's and Deno's generic words.
    codes: ["EADDRNOTAVAIL", "FailedToOpenSocket", "ENOENT"],
    pattern: /tcp connect error|unable to connect/i,
    failure: { source: "connect", kind: "dial" },
  },
  {
    codes: ["ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT"],
    failure: { source: "timeout", kind: "timeout" },
  },
  {
    codes: ["ECONNRESET"],
    pattern: /connection reset/i,
    failure: { source: "transport_closed", kind: "connection_reset" },
  },
  {
    codes: ["ECONNABORTED"],
    pattern: /connection aborted/i,
    failure: { source: "transport_closed", kind: "connection_aborted" },
  },
  { codes: ["EPIPE"], pattern: /broken pipe/i, failure: { source: "transport_closed", kind: "closed_pipe" } },
  {
    codes: ["UND_ERR_SOCKET", "UND_ERR_CLOSED"],
    pattern: /other side closed|connection closed|socket hang up|closed unexpectedly/i,
    failure: { source: "transport_closed", kind: "connection_closed" },
  },
];

interface ErrorFacts {
  names: string[];
  codes: string[];
  messages: string[];
}

function facts(error: unknown): ErrorFacts {
  const out: ErrorFacts = { names: [], codes: [], messages: [] };
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current !== null && typeof current === "object"; depth++) {
    const record = current as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };
    if (typeof record.name === "string") out.names.push(record.name);
    if (typeof record.code === "string") out.codes.push(record.code);
    if (typeof record.message === "string") out.messages.push(record.message);
    current = record.cause;
  }
  if (typeof error === "string") out.messages.push(error);
  return out;
}

/** Remove anything URL-shaped (it may carry tokens) and bound the length. */
export function scrubDetail(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s)'"]+/gi, "<url>").slice(0, 300);
}

function describe(error: unknown): string {
  const { names, codes, messages } = facts(error);
  const parts = [names[0] ?? "Error", ...codes.map((code) => `[${code}]`), ...messages];
  return scrubDetail([...new Set(parts)].join(" "));
}

/**
 * Classify an error thrown by `fetch` (before any response arrived). `timedOut` says the
 * backend's own deadline fired; an abort for any other reason is reported as a timeout too,
 * because the caller's deadline is the only other reason a request is aborted.
 */
export function classifyFetchError(error: unknown, timedOut = false): ClassifiedFailure {
  const detail = describe(error);
  const { names, codes, messages } = facts(error);
  if (timedOut || names.includes("TimeoutError") || names.includes("AbortError")) {
    return { failure: { source: "timeout", kind: "timeout" }, detail };
  }
  const text = messages.join(" | ");
  for (const rule of RULES) {
    if (codes.some((code) => rule.codes.includes(code)) || rule.pattern?.test(text)) {
      return { failure: rule.failure, detail };
    }
  }
  return { failure: { source: "connect", kind: "unknown" }, detail };
}

/**
 * True when the error proves no connection was made, so the request bytes never left this
 * machine (a post may then be replayed without risk of running it twice): a DNS failure, a
 * refused or unreachable connect, no socket, or a connect that timed out.
 */
export function connectionNeverMade(error: unknown): boolean {
  if (facts(error).codes.includes("UND_ERR_CONNECT_TIMEOUT")) return true;
  const { failure } = classifyFetchError(error);
  return (failure.source === "dns" || failure.source === "connect") && failure.kind !== "unknown";
}

/**
 * The same error, but it happened while reading a response whose status line had already
 * arrived: the upstream did answer, so the failure belongs to `protocol` (a broken body),
 * except for timeouts.
 */
export function classifyBodyError(error: unknown, timedOut = false): ClassifiedFailure {
  const { failure, detail } = classifyFetchError(error, timedOut);
  if (failure.source === "timeout") return { failure: { ...failure, upstreamResponseReceived: true }, detail };
  const kind: TransportErrorKind =
    failure.source === "transport_closed" && failure.kind ? failure.kind : "response_body_unreadable";
  return { failure: { source: "protocol", kind, upstreamResponseReceived: true }, detail };
}

/** An OS error from spawning or writing to a child, named for an operator (`ENOENT` → "command not found"). */
export function describeErrno(error: unknown): string {
  const code = facts(error).codes[0];
  switch (code) {
    case "ENOENT":
      return "ENOENT: command not found (check the path, or that it is on PATH)";
    case "EACCES":
      return "EACCES: permission denied (is the file executable?)";
    case "ENOEXEC":
      return "ENOEXEC: not an executable format (a script needs a #! line)";
    case "ENOTDIR":
      return "ENOTDIR: a path component is not a directory";
    case undefined:
      return describe(error);
    default:
      return `${code}: ${describe(error)}`;
  }
}
