/**
 * Policy enforcement as both paths of the Worker apply it — the hub's MCP ingress and
 * the relay in front of an upstream control plane: judge a command's JSON-RPC message,
 * describe it for the audit log (arguments redacted per policy), answer a refusal, and
 * check a response on its way out (size, deny patterns, list filtering, tool pins).
 */
import { objectNamed } from "../object-ids.ts";
import { digestBytes, jsonValueProblem, redactArguments, utf8Length, type Digest } from "../../shared/audit/index.ts";
import { describeMessage, type CallerIdentity, type Policy, type PolicyDecision } from "../../shared/policy/index.ts";
export {
  NO_POLICY,
  checkIntermediate,
  checkResult,
  judgeMessage,
  refusalMessage,
  refuseResult,
  responseStatus,
  type PinChecker,
  type ResultCheck,
} from "../../shared/policy/enforce.ts";
import { HubConfigError } from "../config.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { AdmitEntry, AuditLogApi, OutcomeFields } from "../audit/audit-service.ts";

/** The binding of the `AuditLog` Durable Object (wrangler.toml). */
export interface AuditBindings {
  AUDIT_LOG?: DurableObjectNamespace<AuditLog>;
}

/** The tunnel's `AuditLog` object; a configuration error when the binding is missing. */
export function auditLogFor(env: AuditBindings, tunnelId: string): AuditLogApi {
  const namespace = env.AUDIT_LOG;
  if (!namespace) {
    throw new HubConfigError(
      "the AUDIT_LOG Durable Object binding is missing: add it to wrangler.toml (see docs/relay.md), or set AIRLOCK_AUDIT=off and leave AIRLOCK_POLICY unset",
    );
  }
  return objectNamed(namespace, tunnelId);
}

/** Outcome appends that failed in this isolate: each leaves a request record without its outcome. */
let outcomeFailures = 0;

/** How many outcome records this isolate could not append (each one was logged). */
export function outcomeAppendFailures(): number {
  return outcomeFailures;
}

/**
 * An outcome record written off the answer's path could not be appended: count it and
 * say so. The chain stays valid (nothing was half-written); the call shows in the log
 * as a request record without its outcome.
 */
export function outcomeAppendFailed(tunnel: string, requestId: string | null, error: unknown): void {
  outcomeFailures++;
  console.error(
    `airlock audit: the outcome record of request ${requestId} on tunnel ${tunnel} could not be appended ` +
      `(${outcomeFailures} in this isolate); its request record stands without an outcome`,
    error,
  );
}

/** The `rule` of decisions on commands that carry no JSON-RPC message. */
export const COMMAND_RULES = {
  sessionTermination: "session_termination",
  streamOpen: "stream_open",
} as const;

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
  identity?: CallerIdentity;
}

/** The request-phase audit entry of a command: method, target, arguments redacted per the policy. */
export async function admitEntry(policy: Policy | undefined, input: AdmitInput): Promise<AdmitEntry> {
  const summary =
    Array.isArray(input.message) || input.message === undefined
      ? { method: null, target_kind: null, target: null, arguments: undefined }
      : describeMessage(input.message);
  // A refusal of arguments JSON cannot carry (guard:inexact-json) is recorded without them:
  // the chain could not hash them. Admitting such arguments would be a bug: fail loudly.
  const inexact = summary.arguments === undefined ? undefined : jsonValueProblem(summary.arguments);
  if (inexact && input.decision.decision === "allow")
    throw new Error(`allowed arguments cannot be recorded: ${inexact.reason} at ${inexact.path}`);
  const audited = inexact
    ? { arguments: null, arguments_digest: null }
    : await redactArguments(summary.arguments, policy?.redact ?? []);
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
    ...(input.identity ? { identity: input.identity } : {}),
  };
}

/** The outcome fields of what went out. */
export async function outcomeOf(
  decision: PolicyDecision,
  status: string,
  text: string | undefined,
  latencyMs?: number,
): Promise<OutcomeFields> {
  return {
    decision: decision.decision,
    rule: decision.rule,
    reason: decision.reason,
    response_status: status,
    response_bytes: text === undefined ? null : utf8Length(text),
    response_digest: text === undefined ? null : ((await digestBytes(text)) as Digest),
    ...(latencyMs !== undefined ? { latency_ms: latencyMs } : {}),
  };
}
