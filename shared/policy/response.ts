/**
 * Response checks on the way back to the client: a size limit, then deny patterns
 * (credentials, keys) over the text. Patterns run on the raw text and on every string
 * the JSON decodes to, because `"\u0041KIA…"` is `AKIA…` to the client yet not in the
 * raw bytes. Text longer than `responses.scan_max_bytes` is refused rather than
 * scanned in part: a secret placed past the scanned part would otherwise pass. With
 * `responses.decode`, strings that decode from base64 or hold data: URLs are scanned
 * decoded too (shared/policy/decode.ts).
 */
import { utf8Length } from "../audit/digest.ts";
import { decodedViews } from "./decode.ts";
import type { PolicyDecision } from "./evaluate.ts";
import type { Policy } from "./parse.ts";

/**
 * A response as it leaves: the text of one JSON-RPC message and, when known, its size in
 * bytes. Every enforcement point checks messages one by one, before any SSE framing.
 */
export interface ResponseContext {
  text: string;
  bytes?: number;
}

function collectStrings(value: unknown, out: string[]): void {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const item of value) collectStrings(item, out);
  else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      out.push(key);
      collectStrings(item, out);
    }
  }
}

/** The JSON document the text holds; none when it is not JSON (the raw-text scan still covers it). */
function jsonDocuments(text: string): unknown[] {
  try {
    return [JSON.parse(text)];
  } catch {
    return [];
  }
}

/** Decide whether a response may go back to the client. Reasons never quote the matched text. */
export function evaluateResponse(policy: Policy, ctx: ResponseContext): PolicyDecision {
  const { maxBytes, scanMaxBytes, denyPatterns } = policy.responses;
  const bytes = ctx.bytes ?? utf8Length(ctx.text);
  if (maxBytes !== undefined && bytes > maxBytes) {
    return {
      decision: "deny",
      rule: "responses.max_bytes",
      reason: `the response is ${bytes} bytes, over responses.max_bytes ${maxBytes}`,
    };
  }
  if (denyPatterns.length) {
    if (bytes > scanMaxBytes) {
      return {
        decision: "deny",
        rule: "responses.scan_max_bytes",
        reason: `the response is ${bytes} bytes, more than the ${scanMaxBytes} scanned for deny patterns`,
      };
    }
    const strings = [ctx.text];
    for (const document of jsonDocuments(ctx.text)) collectStrings(document, strings);
    if (policy.responses.decode.length)
      strings.push(...strings.flatMap((text) => decodedViews(text, policy.responses.decode)));
    for (const [index, pattern] of denyPatterns.entries()) {
      if (strings.some((text) => pattern.regex.test(text))) {
        const rule = `responses.deny_patterns[${index}]`;
        return { decision: "deny", rule, reason: `the response matches ${rule} (${JSON.stringify(pattern.source)})` };
      }
    }
  }
  return { decision: "allow", rule: "responses", reason: "the response passed the response checks" };
}
