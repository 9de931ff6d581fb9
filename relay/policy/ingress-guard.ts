/**
 * Policy and audit in hub mode, around the MCP ingress: a client's body is judged before
 * any command exists (strictly parsed, so duplicate keys cannot hide a call; a batch is
 * refused whole when any element is refused); each command is recorded before it goes
 * to the tunnel's hub; its answer is checked event by event on the way back (size, deny
 * patterns, list filtering, tool pins) and its outcome recorded. The checks see the
 * hub's structured events, before the Worker renders them (relay/hub/render.ts).
 */
import type { Context } from "hono";
import { isResponse } from "../../shared/jsonrpc.ts";
import {
  denialFor,
  judgeBody,
  rateBuckets,
  rateDecision,
  type Policy,
  type PolicyDecision,
  type RateVerdict,
} from "../../shared/policy/index.ts";
import type { AdmitEntry, AuditLogApi } from "../audit/audit-service.ts";
import { background, fail, type WorkerContext } from "../context.ts";
import { errorBody, type HubError } from "../errors.ts";
import type { ExchangeEvent } from "../hub/exchange.ts";
import {
  CLIENT_CLOSED,
  clientStatus,
  jsonBody,
  opensStream,
  replyEvents,
  type ExchangeEvents,
  type FinalEvent,
  type RenderOptions,
} from "../hub/render.ts";
import type { SubmitRequest } from "../hub/tunnel-state.ts";
import {
  COMMAND_RULES,
  admitEntry,
  auditLogFor,
  checkIntermediate,
  checkResult,
  judgeMessage,
  outcomeAppendFailed,
  outcomeOf,
  refusalMessage,
  type AuditBindings,
} from "./enforce.ts";
import { loadEnforcement, type Enforcement } from "./load.ts";
import { ATTR, SPAN } from "../../shared/telemetry/index.ts";
import { callTraceId, handoff, traced } from "../telemetry/ingress.ts";

/** A command from the MCP ingress, with how the Worker will render its answer. */
export interface IngressRequest extends SubmitRequest, Omit<RenderOptions, "keepaliveMs"> {}

/** `entry` with the call's trace id, so the audit record leads to the trace. */
function withTraceId(c: Context<WorkerContext>, message: unknown, entry: AdmitEntry): AdmitEntry {
  const traceId = callTraceId(c, message);
  return traceId ? { ...entry, traceId } : entry;
}

/** Status of an answer the hub gave itself (not the agent): timeout, cancellation, failure. */
function hubStatus(status: number): string {
  if (status === 504) return "timeout";
  if (status === 499) return "cancelled";
  return status >= 400 ? "failed" : "ok";
}

/**
 * Judge a POST body (already parsed leniently by the ingress into `body`); with audit but
 * no policy only strict JSON is judged. Either the
 * decision for each message of the body, for {@link guardedSubmit} (empty without a
 * policy), or the answer to send: the JSON-RPC error(s) naming the rule, or 403 when only
 * notifications were refused (they have no JSON-RPC answer).
 */
export async function judgeIngressBody(
  c: Context<WorkerContext>,
  channel: string,
  text: string,
  body: unknown,
): Promise<Response | PolicyDecision[]> {
  const enforcement = loadEnforcement(c.env);
  const policy = enforcement.policy;
  // With audit but no policy, strict JSON is still judged: the log must be able to record the body.
  if (!policy && !enforcement.audit) return [];
  const tunnel = c.get("tunnelId");
  const judged = await traced(
    c,
    SPAN.policy,
    () => judgeBody(policy, { tunnel, channel, body: text, identity: c.get("identity") }),
    (d) => ({ [ATTR.policyDecision]: d.decision, [ATTR.policyRule]: d.rule }),
  );
  const messages = Array.isArray(body) ? body : [body];
  const limited = judged.decision === "allow" ? await overRate(c, policy, messages) : undefined;
  if (judged.decision === "allow" && !limited) return messages.map((_, index) => judged.elements?.[index] ?? judged);
  const decision = limited ? rateDecision(limited) : judged;
  if (enforcement.audit) {
    const error = refusalMessage(body, decision);
    const outcome = await outcomeOf(decision, "denied", error ? JSON.stringify(error) : undefined, 0);
    const identity = c.get("identity");
    const entries = await Promise.all(
      messages.map(async (message) =>
        withTraceId(
          c,
          message,
          await admitEntry(policy, {
            requestId: null,
            channel,
            agentInstance: null,
            message,
            decision,
            outcome,
            identity,
          }),
        ),
      ),
    );
    await traced(c, SPAN.auditAppend, () =>
      auditLogFor(c.env as AuditBindings, tunnel).admit(entries, { tunnel, audit: true, pinning: "off" }),
    );
  }
  const answer = Array.isArray(body) ? denialFor(body, decision) : refusalMessage(body, decision);
  // Over a rate limit: HTTP 429 with Retry-After, which HTTP clients and proxies understand,
  // around the same JSON-RPC error (naming the limit) an MCP client reads.
  const response =
    answer === undefined
      ? fail({
          status: limited ? 429 : 403,
          code: null,
          message: `Refused by policy (${decision.rule}): ${decision.reason}`,
        })
      : Response.json(answer, { status: limited ? 429 : 200 });
  if (limited) response.headers.set("Retry-After", String(Math.max(1, Math.ceil(limited.retryAfterMs / 1000))));
  return response;
}

/** The rate limit the body's calls would exceed (counted at the tunnel's hub), if any. */
async function overRate(
  c: Context<WorkerContext>,
  policy: Policy | undefined,
  messages: unknown[],
): Promise<Extract<RateVerdict, { ok: false }> | undefined> {
  if (!policy || policy.rateLimits.length === 0) return undefined;
  const identity = c.get("identity");
  const buckets = messages.flatMap((message) => rateBuckets(policy.rateLimits, message, identity));
  if (buckets.length === 0) return undefined;
  const verdict = await c.get("hub").takeRate(buckets);
  return verdict.ok ? undefined : verdict;
}

/** One guarded command: what its checks need, and its outcome, recorded once. */
interface Guard {
  c: Context<WorkerContext>;
  policy: Policy | undefined;
  enforcement: Enforcement;
  log: AuditLogApi;
  tunnel: string;
  request: IngressRequest;
  entry: AdmitEntry;
  started: number;
  /** The rules that withheld server messages, for the outcome's reason. */
  withheld: string[];
  settled: boolean;
}

/**
 * Record the command's outcome; only the first call records. The append runs after the
 * answer is on its way (`background`): the checks that shape the answer have already
 * run, and the client need not wait for a second Durable Object round trip. The chain
 * stays whole because the `AuditLog` object serialises appends and the request record
 * was written before the command was queued; a failed append is logged and counted, and
 * shows in the log as a request record without its outcome.
 */
function finish(guard: Guard, decision: PolicyDecision, status: string, text: string | undefined): void {
  if (guard.settled) return;
  guard.settled = true;
  const latency = Date.now() - guard.started;
  background(
    guard.c,
    appendOutcome(guard, decision, status, text, latency).catch((error: unknown) =>
      outcomeAppendFailed(guard.tunnel, guard.entry.requestId, error),
    ),
  );
}

async function appendOutcome(
  guard: Guard,
  decision: PolicyDecision,
  status: string,
  text: string | undefined,
  latency: number,
): Promise<void> {
  const count = guard.withheld.length;
  const note = count
    ? `; ${count} intermediate message${count === 1 ? "" : "s"} withheld (${guard.withheld.at(-1)})`
    : "";
  const outcome = await outcomeOf(decision, status, text, latency);
  const { entry } = guard;
  await traced(guard.c, SPAN.auditAppend, () =>
    guard.log.settle(
      {
        ...outcome,
        reason: outcome.reason + note,
        requestId: entry.requestId,
        channel: entry.channel,
        method: entry.method,
        target_kind: entry.target_kind,
        target: entry.target,
        arguments_digest: entry.arguments_digest,
        agentInstance: null,
        ...(entry.traceId ? { traceId: entry.traceId } : {}),
        identity: guard.c.get("identity"),
      },
      { tunnel: guard.tunnel, audit: guard.enforcement.audit },
    ),
  );
}

function pinsOf(guard: Guard) {
  return (channel: string, tools: unknown[]) =>
    guard.log.checkTools(guard.tunnel, channel, tools, guard.policy?.pinning ?? "off");
}

const allowed = (reason: string): PolicyDecision => ({ decision: "allow", rule: "responses", reason });

/** The hub's own answer (no JSON-RPC response to check) is only recorded. */
function recordHubAnswer(guard: Guard, status: number, text: string | undefined): void {
  finish(guard, allowed(`the hub answered HTTP ${status}`), hubStatus(status), text);
}

/** The final response gets the full checks; a refusal replaces it (HTTP 200, the error naming the rule). */
async function guardFinal(guard: Guard, event: FinalEvent): Promise<FinalEvent> {
  const message = event.message;
  if (!isResponse(message)) {
    const body = jsonBody(event);
    recordHubAnswer(guard, clientStatus(event.status), body && JSON.stringify(body));
    return event;
  }
  const text = JSON.stringify(message);
  const check = await checkResult(guard.policy, pinsOf(guard), {
    tunnel: guard.tunnel,
    channel: guard.request.channel,
    method: guard.entry.method,
    message,
    text,
    identity: guard.c.get("identity"),
  });
  const out = check.changed && isResponse(check.message) ? check.message : message;
  finish(guard, check.decision, check.status, out === message ? text : JSON.stringify(out));
  if (out === message) return event;
  return { ...event, message: out, status: check.status === "denied" ? 200 : event.status };
}

/**
 * Check the events of one command before they are rendered: the final response gets
 * the full checks, server messages a client will see the size and deny patterns (a
 * refused one is withheld). The outcome is recorded with the final, a hub failure, the
 * end of the stream, or the client leaving.
 */
function guardEvents(guard: Guard, events: ExchangeEvents): ExchangeEvents {
  // Whether the renderer opened an SSE stream: an end then closes it rather than answering 499.
  let streaming = false;
  const { acceptsSse, holdUntilFinal } = guard.request;
  const next = async (): Promise<ExchangeEvent | undefined> => {
    for (;;) {
      let event: ExchangeEvent | undefined;
      try {
        event = await events.next();
      } catch (error) {
        // The request record is written; whatever failed after it, the outcome says so.
        finish(
          guard,
          allowed(`the stream failed: ${error instanceof Error ? error.message : String(error)}`),
          "failed",
          undefined,
        );
        throw error;
      }
      if (!event) {
        if (streaming) finish(guard, allowed("the stream ended"), "ok", undefined);
        else recordHubAnswer(guard, CLIENT_CLOSED.status, envelope(CLIENT_CLOSED));
        return undefined;
      }
      if (event.type === "failed") {
        recordHubAnswer(guard, event.error.status, envelope(event.error));
        return event;
      }
      if (event.type === "final") return guardFinal(guard, event);
      // A JSON-only client never sees server messages; the renderer drops them.
      if (!acceptsSse || !event.message) return pass(event);
      const decision = checkIntermediate(guard.policy, JSON.stringify(event.message));
      if (decision.decision === "allow") return pass(event);
      guard.withheld.push(decision.rule);
    }
  };
  const pass = (event: ExchangeEvent) => {
    streaming ||= opensStream(event, { acceptsSse, holdUntilFinal });
    return event;
  };
  return {
    next,
    cancel(reason) {
      finish(guard, allowed("the client closed the stream"), "cancelled", undefined);
      events.cancel(reason);
    },
  };
}

const envelope = (error: HubError) => JSON.stringify(errorBody(error));

/** Events that are already decided: one final (or failure), then the end. */
function decided(event: ExchangeEvent): ExchangeEvents {
  return replyEvents({ first: event }, () => {});
}

/** The part of an ingress request the hub needs; rendering options stay in the Worker. */
function submitRequest(request: IngressRequest): SubmitRequest {
  const { acceptsSse: _sse, rpcId: _id, holdUntilFinal: _hold, ...submit } = request;
  return submit;
}

/**
 * Hand one command to the tunnel's hub with policy and audit around it: the request
 * record first (pinning may still refuse a tool call here), then the hub, then the
 * answer's checks, and the outcome record once the answer is on its way. `decision` is the body's judgement from
 * {@link judgeIngressBody}; without one the message is judged here. With neither policy
 * nor audit configured this is the hub's `submit` alone.
 */
export async function guardedSubmit(
  c: Context<WorkerContext>,
  request: IngressRequest,
  decision?: PolicyDecision,
): Promise<ExchangeEvents> {
  const hub = c.get("hub");
  const reply = () =>
    handoff(
      c,
      request,
      (traced) => hub.submit(submitRequest(traced)),
      (answer, span) => {
        if (answer.first?.type === "failed") span.fail(String(answer.first.error.status));
      },
    );
  const submit = async () => replyEvents(await reply(), (work) => background(c, work));
  const enforcement = loadEnforcement(c.env);
  if (!enforcement.policy && !enforcement.audit) return submit();
  const policy = enforcement.policy;
  const tunnel = c.get("tunnelId");
  const log = auditLogFor(c.env as AuditBindings, tunnel);
  const message = request.message;
  const judged: PolicyDecision =
    request.kind !== "jsonrpc"
      ? {
          decision: "allow",
          rule: request.kind === "session_termination" ? COMMAND_RULES.sessionTermination : COMMAND_RULES.streamOpen,
          reason: `${request.kind} commands are not judged by rules`,
        }
      : (decision ?? judgeMessage(policy, { tunnel, channel: request.channel, message, identity: c.get("identity") }));
  const entry = withTraceId(
    c,
    message,
    await admitEntry(policy, {
      requestId: request.requestId,
      channel: request.channel,
      agentInstance: null,
      message,
      decision: judged,
      identity: c.get("identity"),
    }),
  );
  const guard: Guard = {
    c,
    policy,
    enforcement,
    log,
    tunnel,
    request,
    entry,
    started: Date.now(),
    withheld: [],
    settled: false,
  };
  const [final] = await traced(c, SPAN.auditAppend, () =>
    log.admit([entry], { tunnel, audit: enforcement.audit, pinning: policy?.pinning ?? "off" }),
  );
  if (final && final.decision === "deny") {
    // Only pinning refuses here (the rules already passed): a drifted tool in block mode.
    const error = refusalMessage(message, final);
    finish(guard, final, "denied", error ? JSON.stringify(error) : undefined);
    return decided(
      error
        ? { type: "final", respType: "jsonrpc_response", status: 200, headers: {}, message: error }
        : {
            type: "failed",
            error: { status: 403, code: null, message: `Refused by policy (${final.rule}): ${final.reason}` },
          },
    );
  }
  try {
    return guardEvents(guard, await submit());
  } catch (error) {
    // The request record is written; whatever failed after it, the outcome says so.
    finish(
      guard,
      allowed(`the hub failed: ${error instanceof Error ? error.message : String(error)}`),
      "failed",
      undefined,
    );
    throw error;
  }
}
