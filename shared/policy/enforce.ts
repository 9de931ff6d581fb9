/**
 * Policy enforcement as every enforcement point applies it — the hub's MCP ingress, the
 * relay in front of an upstream control plane, and the agent's local copy: judge a
 * JSON-RPC message, answer a refusal, and check a response on its way out (size, deny
 * patterns, list filtering, tool pins). Web-standard; no audit, no storage.
 */
import { isObject, isRequest, isResponse, type JsonRpcMessage } from "../jsonrpc.ts";
import { PINNING_RULE, type PinReport } from "./pinning.ts";
import { denialResponse, evaluateRequest, evaluateRequestBody, type PolicyDecision } from "./evaluate.ts";
import { parseJsonStrict, strictJsonRule } from "./json.ts";
import { evaluateResponse } from "./response.ts";
import { filterListResult } from "./filter.ts";
import { isListMethod } from "../mcp/methods.ts";
import type { Policy } from "./parse.ts";
import type { CallerIdentity } from "./identity.ts";

/** The decision when no policy is configured. */
export const NO_POLICY: PolicyDecision = {
  decision: "allow",
  rule: "default",
  reason: "no policy is configured; everything passes",
};

/** Judge one message (or batch) of a command; without a policy everything passes. */
export function judgeMessage(
  policy: Policy | undefined,
  ctx: { tunnel: string; channel: string; message: unknown; rawBytes?: number; identity?: CallerIdentity },
): PolicyDecision {
  return policy ? evaluateRequest(policy, ctx) : NO_POLICY;
}

/**
 * Judge a raw body: with a policy, {@link evaluateRequestBody}; without one the body
 * still has to pass strict JSON (shared/policy/json.ts), so what the audit log records
 * is what the backend reads.
 */
export function judgeBody(
  policy: Policy | undefined,
  ctx: { tunnel: string; channel: string; body: string; identity?: CallerIdentity },
): PolicyDecision {
  if (policy) return evaluateRequestBody(policy, ctx);
  const parsed = parseJsonStrict(ctx.body);
  return parsed.ok ? NO_POLICY : { decision: "deny", rule: strictJsonRule(parsed.problem), reason: parsed.reason };
}

/**
 * The JSON-RPC error answering a refused message: for a request its id, for a batch
 * (which the tunnel protocol cannot answer element by element) `null`. Notifications
 * and replies get no JSON-RPC answer: `undefined`.
 */
export function refusalMessage(message: unknown, decision: PolicyDecision): JsonRpcMessage | undefined {
  if (Array.isArray(message)) return denialResponse(null, decision);
  return isRequest(message) ? denialResponse(message.id, decision) : undefined;
}

/** `ok` for a result, `error` for a JSON-RPC error, `failed` for one the agent synthesised (tunnel_failure). */
export function responseStatus(message: unknown): string {
  if (!isObject(message) || !("error" in message)) return "ok";
  const error = message.error;
  return isObject(error) && isObject(error.data) && "tunnel_failure" in error.data ? "failed" : "error";
}

/** Compares a `tools/list` result with the tunnel's pins (the `AuditLog` object's `checkTools`). */
export type PinChecker = (channel: string, tools: unknown[]) => Promise<PinReport>;

/** A final response after the checks. */
export interface ResultCheck {
  /** The message to send on: the original, a filtered list, or the refusal error. */
  message: unknown;
  /** False when `message` is the original, so its bytes can go on untouched. */
  changed: boolean;
  decision: PolicyDecision;
  /** For the audit record: `ok`, `error`, `failed` or `denied`. */
  status: string;
}

function idOf(message: unknown): string | number | null {
  return isObject(message) && (typeof message.id === "string" || typeof message.id === "number") ? message.id : null;
}

/** A final response replaced by the error naming the rule that refused it (the request's id kept). */
export function refuseResult(message: unknown, decision: PolicyDecision): ResultCheck {
  return { message: denialResponse(idOf(message), decision), changed: true, decision, status: "denied" };
}

/**
 * Check a final response (`text` is how it travels): size and deny patterns first — a
 * refusal replaces it with an error naming the rule, keeping the request's id — then
 * list results are filtered, and `tools/list` is compared with the pins (blocked tools
 * removed, flagged ones named in the decision).
 */
export async function checkResult(
  policy: Policy | undefined,
  pins: PinChecker | undefined,
  ctx: {
    tunnel: string;
    channel: string;
    method: string | null;
    message: unknown;
    text: string;
    identity?: CallerIdentity;
  },
): Promise<ResultCheck> {
  if (!policy)
    return { message: ctx.message, changed: false, decision: NO_POLICY, status: responseStatus(ctx.message) };
  const checked = evaluateResponse(policy, { text: ctx.text });
  if (checked.decision === "deny") return refuseResult(ctx.message, checked);
  const method = ctx.method;
  if (method === null || !isListMethod(method) || !isResponse(ctx.message) || !isObject(ctx.message.result)) {
    return { message: ctx.message, changed: false, decision: checked, status: responseStatus(ctx.message) };
  }
  const result = ctx.message.result;
  let report: PinReport | undefined;
  if (method === "tools/list" && policy.pinning !== "off" && pins && Array.isArray(result.tools)) {
    report = await pins(ctx.channel, result.tools);
  }
  const filtered = filterListResult(
    policy,
    { tunnel: ctx.tunnel, channel: ctx.channel, identity: ctx.identity },
    method,
    result,
    report ? { blocked: report.blocked } : {},
  );
  const notes: string[] = [];
  if (filtered.removed.length)
    notes.push(
      `removed from ${method}: ${filtered.removed.map((entry) => `${JSON.stringify(entry.name)} (${entry.rule})`).join(", ")}`,
    );
  if (report?.flagged.length)
    notes.push(
      `flagged: ${report.flagged.map((check) => `${JSON.stringify(check.name)} ${check.status}${check.pinned ? ` (pinned ${check.pinned}, now ${check.digest})` : ""}`).join(", ")}`,
    );
  const pinned = (report?.blocked.size ?? 0) > 0 || (report?.flagged.length ?? 0) > 0;
  const decision: PolicyDecision = notes.length
    ? {
        decision: "allow",
        rule: pinned ? PINNING_RULE : checked.rule,
        reason: `${checked.reason}; ${notes.join("; ")}`,
      }
    : checked;
  if (!filtered.removed.length) return { message: ctx.message, changed: false, decision, status: "ok" };
  return { message: { ...ctx.message, result: filtered.result }, changed: true, decision, status: "ok" };
}

/** Check an intermediate message (progress, logging, a server request): size and deny patterns only. */
export function checkIntermediate(policy: Policy | undefined, text: string): PolicyDecision {
  return policy ? evaluateResponse(policy, { text }) : NO_POLICY;
}
