/**
 * Policy and audit in hub mode, around the MCP ingress: a client's body is judged before
 * any command exists (strictly parsed, so duplicate keys cannot hide a call; a batch is
 * refused whole when any element is refused); each command is recorded before it goes
 * to the tunnel's hub; its answer — JSON or each event of an SSE stream — is checked on
 * the way back (size, deny patterns, list filtering, tool pins) and its outcome recorded.
 */
import type { Context } from "hono";
import { isObject, isResponse } from "../../shared/jsonrpc.ts";
import { denialFor, judgeBody, type Policy, type PolicyDecision } from "../../shared/policy/index.ts";
import type { AdmitEntry, AuditLogApi } from "../audit/audit-service.ts";
import { background, fail, type WorkerContext } from "../context.ts";
import type { IngressRequest } from "../hub/hub-service.ts";
import {
  COMMAND_RULES, admitEntry, auditLogFor, checkIntermediate, checkResult, judgeMessage, outcomeOf, refusalMessage, type AuditBindings,
} from "./enforce.ts";
import { loadEnforcement, type Enforcement } from "./load.ts";

/** Decisions made on a whole body, per message object, for {@link guardedSubmit} to reuse. */
const judged = new WeakMap<object, PolicyDecision>();

const encoder = new TextEncoder();

/** Status of an answer the hub gave itself (not the agent): timeout, cancellation, failure. */
function hubStatus(status: number): string {
  if (status === 504) return "timeout";
  if (status === 499) return "cancelled";
  return status >= 400 ? "failed" : "ok";
}

/**
 * Judge a POST body (already parsed leniently by the ingress into `body`); with audit but
 * no policy only strict JSON is judged. `undefined`
 * lets it through; otherwise the answer to send: the JSON-RPC error(s) naming the rule,
 * or 403 when only notifications were refused (they have no JSON-RPC answer).
 */
export async function judgeIngressBody(c: Context<WorkerContext>, channel: string, text: string, body: unknown): Promise<Response | undefined> {
  const enforcement = loadEnforcement(c.env);
  const policy = enforcement.policy;
  if (!policy && !enforcement.audit) return undefined;
  const tunnel = c.get("tunnelId");
  const decision = judgeBody(policy, { tunnel, channel, body: text, identity: c.get("identity") });
  const messages = Array.isArray(body) ? body : [body];
  messages.forEach((message, index) => {
    if (isObject(message)) judged.set(message, decision.elements?.[index] ?? decision);
  });
  if (decision.decision === "allow") return undefined;
  if (enforcement.audit) {
    const error = refusalMessage(body, decision);
    const outcome = await outcomeOf(decision, "denied", error ? JSON.stringify(error) : undefined, 0);
    const identity = c.get("identity");
    const entries = await Promise.all(messages.map((message) => admitEntry(policy, { requestId: null, channel, agentInstance: null, message, decision, outcome, identity })));
    await auditLogFor(c.env as AuditBindings, tunnel).admit(entries, { tunnel, audit: true, pinning: "off" });
  }
  const answer = Array.isArray(body) ? denialFor(body, decision) : refusalMessage(body, decision);
  if (answer === undefined) return fail({ status: 403, code: null, message: `Refused by policy (${decision.rule}): ${decision.reason}` });
  return Response.json(answer);
}

interface Guard {
  c: Context<WorkerContext>;
  policy: Policy | undefined;
  enforcement: Enforcement;
  log: AuditLogApi;
  tunnel: string;
  request: IngressRequest;
  entry: AdmitEntry;
  started: number;
}

async function settle(guard: Guard, decision: PolicyDecision, status: string, text: string | undefined, note = ""): Promise<void> {
  const outcome = await outcomeOf(decision, status, text, Date.now() - guard.started);
  const { entry } = guard;
  await guard.log.settle({
    ...outcome,
    reason: outcome.reason + note,
    requestId: entry.requestId,
    channel: entry.channel,
    method: entry.method,
    target_kind: entry.target_kind,
    target: entry.target,
    arguments_digest: entry.arguments_digest,
    agentInstance: null,
    identity: guard.c.get("identity"),
  }, { tunnel: guard.tunnel, audit: guard.enforcement.audit });
}

function pinsOf(guard: Guard) {
  return (channel: string, tools: unknown[]) => guard.log.checkTools(guard.tunnel, channel, tools, guard.policy?.pinning ?? "off");
}

const allowed = (reason: string): PolicyDecision => ({ decision: "allow", rule: "responses", reason });

/** Check a JSON answer; error envelopes and empty answers are only recorded. */
async function guardJson(guard: Guard, response: Response): Promise<Response> {
  const text = await response.text();
  let message: unknown;
  try {
    message = text === "" ? undefined : JSON.parse(text);
  } catch {
    message = undefined;
  }
  if (!isResponse(message)) {
    await settle(guard, allowed(`the hub answered HTTP ${response.status}`), hubStatus(response.status), text || undefined);
    return new Response(text || null, response);
  }
  const check = await checkResult(guard.policy, pinsOf(guard), { tunnel: guard.tunnel, channel: guard.request.channel, method: guard.entry.method, message, text, identity: guard.c.get("identity") });
  const out = check.changed ? JSON.stringify(check.message) : text;
  await settle(guard, check.decision, check.status, out);
  const headers = new Headers(response.headers);
  headers.delete("Content-Length");
  return new Response(out, { status: check.status === "denied" ? 200 : response.status, headers });
}

/**
 * Check an SSE answer event by event: the final response (the one answering the
 * client's id) gets the full checks, other messages the size and deny patterns (a
 * refused one is withheld). The outcome is recorded when the final passes, or when the
 * stream ends or the client leaves without one.
 */
function guardStream(guard: Guard, response: Response): Response {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let settled = false;
  let withheld = 0;
  let withheldRule = "";
  const finish = (decision: PolicyDecision, status: string, text: string | undefined) => {
    if (settled) return Promise.resolve();
    settled = true;
    const note = withheld ? `; ${withheld} intermediate message${withheld === 1 ? "" : "s"} withheld (${withheldRule})` : "";
    return settle(guard, decision, status, text, note);
  };
  const guardEvent = async (block: string): Promise<string> => {
    const data = block.split(/\r?\n/).filter((line) => line.startsWith("data:")).map((line) => line.slice(5).replace(/^ /, "")).join("\n");
    if (data === "") return block;
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      message = undefined;
    }
    if (isResponse(message) && guard.request.rpcId !== undefined && message.id === guard.request.rpcId) {
      const check = await checkResult(guard.policy, pinsOf(guard), { tunnel: guard.tunnel, channel: guard.request.channel, method: guard.entry.method, message, text: data, identity: guard.c.get("identity") });
      const out = check.changed ? JSON.stringify(check.message) : data;
      await finish(check.decision, check.status, out);
      return check.changed ? `event: message\ndata: ${out}\n\n` : block;
    }
    const decision = checkIntermediate(guard.policy, data);
    if (decision.decision === "allow") return block;
    withheld++;
    withheldRule = decision.rule;
    return "";
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Read until at least one whole event can go out (or the stream ends).
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          const rest = buffer + decoder.decode();
          buffer = "";
          if (rest.trim()) controller.enqueue(encoder.encode(await guardEvent(rest)));
          await finish(allowed("the stream ended"), "ok", undefined);
          controller.close();
          return;
        }
        buffer += decoder.decode(value, { stream: true });
        let out = "";
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 2);
          out += await guardEvent(block);
        }
        if (out) {
          controller.enqueue(encoder.encode(out));
          return;
        }
      }
    },
    cancel(reason) {
      background(guard.c, finish(allowed("the client closed the stream"), "cancelled", undefined));
      return reader.cancel(reason);
    },
  });
  const headers = new Headers(response.headers);
  headers.delete("Content-Length");
  return new Response(body, { status: response.status, headers });
}

/**
 * Hand one command to the tunnel's hub with policy and audit around it: the request
 * record first (pinning may still refuse a tool call here), then the hub, then the
 * answer's checks and outcome record. With neither policy nor audit configured this is
 * the hub's `submit` alone.
 */
export async function guardedSubmit(c: Context<WorkerContext>, request: IngressRequest): Promise<Response> {
  const hub = c.get("hub");
  const enforcement = loadEnforcement(c.env);
  if (!enforcement.policy && !enforcement.audit) return hub.submit(request);
  const policy = enforcement.policy;
  const tunnel = c.get("tunnelId");
  const log = auditLogFor(c.env as AuditBindings, tunnel);
  const message = request.message;
  const decision: PolicyDecision = request.kind !== "jsonrpc"
    ? { decision: "allow", rule: request.kind === "session_termination" ? COMMAND_RULES.sessionTermination : COMMAND_RULES.streamOpen, reason: `${request.kind} commands are not judged by rules` }
    : (message && judged.get(message)) ?? judgeMessage(policy, { tunnel, channel: request.channel, message, identity: c.get("identity") });
  const entry = await admitEntry(policy, { requestId: request.requestId, channel: request.channel, agentInstance: null, message, decision, identity: c.get("identity") });
  const guard: Guard = { c, policy, enforcement, log, tunnel, request, entry, started: Date.now() };
  const [final] = await log.admit([entry], { tunnel, audit: enforcement.audit, pinning: policy?.pinning ?? "off" });
  if (final && final.decision === "deny") {
    // Only pinning refuses here (the rules already passed): a drifted tool in block mode.
    const error = refusalMessage(message, final);
    await settle(guard, final, "denied", error ? JSON.stringify(error) : undefined);
    return error ? Response.json(error) : fail({ status: 403, code: null, message: `Refused by policy (${final.rule}): ${final.reason}` });
  }
  const response = await hub.submit(request);
  if ((response.headers.get("Content-Type") ?? "").startsWith("text/event-stream") && response.body) return guardStream(guard, response);
  return guardJson(guard, response);
}
