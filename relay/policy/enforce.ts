/**
 * Policy enforcement as both paths of the Worker apply it — the hub's MCP ingress and
 * the relay in front of an upstream control plane: judge a command's JSON-RPC message,
 * describe it for the audit log (arguments redacted per policy), answer a refusal, and
 * check a response on its way out (size, deny patterns, list filtering, tool pins).
 */
import { digestBytes, redactArguments, utf8Length, type Digest } from "../../shared/audit/index.ts";
import { isObject, isRequest, isResponse, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import {
  PINNING_RULE, denialResponse, describeMessage, evaluateRequest, evaluateResponse, filterListResult, isListMethod,
  type PinReport, type Policy, type PolicyDecision,
} from "../../shared/policy/index.ts";
import { HubConfigError } from "../config.ts";
import type { DurableObjectNamespace } from "../platform.ts";
import type { AdmitEntry, AuditLogApi, OutcomeFields } from "../audit/audit-service.ts";

/** The binding of the `AuditLog` Durable Object (wrangler.toml). */
export interface AuditBindings {
  AUDIT_LOG?: DurableObjectNamespace<AuditLogApi>;
}

/** The tunnel's `AuditLog` object; a configuration error when the binding is missing. */
export function auditLogFor(env: AuditBindings, tunnelId: string): AuditLogApi {
  const namespace = env.AUDIT_LOG;
  if (!namespace) {
    throw new HubConfigError("the AUDIT_LOG Durable Object binding is missing: add it to wrangler.toml (see docs/relay.md), or set AIRLOCK_AUDIT=off and leave AIRLOCK_POLICY unset");
  }
  return namespace.get(namespace.idFromName(tunnelId));
}

/** The decision when no policy is configured. */
export const NO_POLICY: PolicyDecision = {
  decision: "allow",
  rule: "default",
  reason: "no policy is configured (AIRLOCK_POLICY is unset); everything passes",
};

/** The `rule` of decisions on commands that carry no JSON-RPC message. */
export const COMMAND_RULES = {
  sessionTermination: "session_termination",
  streamOpen: "stream_open",
} as const;

/** Judge one message (or batch) of a command; without a policy everything passes. */
export function judgeMessage(policy: Policy | undefined, ctx: { tunnel: string; channel: string; message: unknown; rawBytes?: number }): PolicyDecision {
  return policy ? evaluateRequest(policy, ctx) : NO_POLICY;
}

/** What {@link admitEntry} needs to know about one command. */
export interface AdmitInput {
  requestId: string | null;
  channel: string;
  agentInstance: string | null;
  /** The JSON-RPC message; undefined for commands without one (session termination). */
  message: unknown;
  decision: PolicyDecision;
  remember?: AdmitEntry["remember"];
  outcome?: OutcomeFields;
}

/** The request-phase audit entry of a command: method, target, arguments redacted per the policy. */
export async function admitEntry(policy: Policy | undefined, input: AdmitInput): Promise<AdmitEntry> {
  const summary = Array.isArray(input.message) || input.message === undefined
    ? { method: null, target_kind: null, target: null, arguments: undefined }
    : describeMessage(input.message);
  const audited = await redactArguments(summary.arguments, policy?.redact ?? []);
  return {
    requestId: input.requestId,
    channel: input.channel,
    agentInstance: input.agentInstance,
    decision: input.decision,
    method: summary.method,
    target_kind: summary.target_kind,
    target: summary.target,
    arguments: audited.arguments,
    arguments_digest: audited.arguments_digest,
    ...(input.remember ? { remember: input.remember } : {}),
    ...(input.outcome ? { outcome: input.outcome } : {}),
  };
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

/** The outcome fields of what went out. */
export async function outcomeOf(decision: PolicyDecision, status: string, text: string | undefined, latencyMs?: number): Promise<OutcomeFields> {
  return {
    decision: decision.decision,
    rule: decision.rule,
    reason: decision.reason,
    response_status: status,
    response_bytes: text === undefined ? null : utf8Length(text),
    response_digest: text === undefined ? null : await digestBytes(text) as Digest,
    ...(latencyMs !== undefined ? { latency_ms: latencyMs } : {}),
  };
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
  ctx: { tunnel: string; channel: string; method: string | null; message: unknown; text: string },
): Promise<ResultCheck> {
  if (!policy) return { message: ctx.message, changed: false, decision: NO_POLICY, status: responseStatus(ctx.message) };
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
  const filtered = filterListResult(policy, { tunnel: ctx.tunnel, channel: ctx.channel }, method, result, report ? { blocked: report.blocked } : {});
  const notes: string[] = [];
  if (filtered.removed.length) notes.push(`removed from ${method}: ${filtered.removed.map((entry) => `${JSON.stringify(entry.name)} (${entry.rule})`).join(", ")}`);
  if (report?.flagged.length) notes.push(`flagged: ${report.flagged.map((check) => `${JSON.stringify(check.name)} ${check.status}${check.pinned ? ` (pinned ${check.pinned}, now ${check.digest})` : ""}`).join(", ")}`);
  const pinned = (report?.blocked.size ?? 0) > 0 || (report?.flagged.length ?? 0) > 0;
  const decision: PolicyDecision = notes.length
    ? { decision: "allow", rule: pinned ? PINNING_RULE : checked.rule, reason: `${checked.reason}; ${notes.join("; ")}` }
    : checked;
  if (!filtered.removed.length) return { message: ctx.message, changed: false, decision, status: "ok" };
  return { message: { ...ctx.message, result: filtered.result }, changed: true, decision, status: "ok" };
}

/** Check an intermediate message (progress, logging, a server request): size and deny patterns only. */
export function checkIntermediate(policy: Policy | undefined, text: string): PolicyDecision {
  return policy ? evaluateResponse(policy, { text }) : NO_POLICY;
}
