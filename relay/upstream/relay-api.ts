/**
 * Relay mode: a tunnel configured with an `upstream_url` is not served by the hub but
 * passed to an upstream control plane (OpenAI's), with the organisation's policy and
 * audit log on the path. Agents poll the relay exactly as they would poll the upstream:
 *
 *   GET  /v1/tunnels/{id}            metadata, from the upstream
 *   GET  /v1/tunnels/{id}/poll       the upstream's long poll, commands judged on the way in
 *   POST /v1/tunnels/{id}/response   checked on the way out, then posted upstream
 *
 * The agent's key is checked here (SHA-256 digests, constant time) and the upstream key
 * swapped in. A poll passes through with the agent's own `limit`, `timeout_ms` and
 * channels, so the relay never takes more work than the agent asked for nor holds it
 * longer. Every command is recorded before the agent sees it; a refused one never
 * reaches the agent — the relay answers it upstream itself with a JSON-RPC error naming
 * the rule. When the audit log cannot record a poll's commands, none is handed out and
 * each is answered upstream at once with a `-32603` error, so no caller waits for a
 * timeout. Each final response is checked (size, deny patterns, list filtering, tool
 * pins), its outcome recorded, then posted upstream.
 */
import { Hono, type Context, type ErrorHandler } from "hono";
import { z } from "zod";
import { isObject, isRequest } from "../../shared/jsonrpc.ts";
import {
  CLIENT_HEADERS,
  TunnelResponsePayload,
  decodeCommand,
  failureMessage,
  normalizeChannel,
  parseResponseTimeout,
  type HeaderMap,
} from "../../shared/protocol/index.ts";
import { GUARD, parseJsonStrict, strictJsonRule, type Policy, type PolicyDecision } from "../../shared/policy/index.ts";
import type { AdmitEntry } from "../audit/audit-service.ts";
import { loadConfig, type TunnelConfig } from "../config.ts";
import {
  AGENT_KEY_MESSAGE,
  background,
  credentialCheck,
  fail,
  sizeLimit,
  tunnelContext,
  type WorkerContext,
  type WorkerDeps,
} from "../context.ts";
import { invalidChannel } from "../errors.ts";
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
  refuseResult,
  type AuditBindings,
} from "../policy/enforce.ts";
import { loadEnforcement } from "../policy/load.ts";
import { pollBodyOf, readPollBody, type PolledEntry } from "./poll-body.ts";
import { callUpstream, passUpstreamFailure, scrub, upstreamHeaders, upstreamOf, type Upstream } from "./client.ts";

/** Query parameters of a poll that go upstream; anything else stays at the relay. */
const POLL_PARAMS = new Set(["limit", "timeout_ms", "channel"]);
/** How long a handed-out command is remembered when it carries no `response_timeout`. */
const DEFAULT_PENDING_MS = 60 * 60 * 1000;
/** Grace after a command's deadline before its pending row may go: late posts still find it. */
const PENDING_GRACE_MS = 60 * 1000;
/** Retries of the relay's own answer to a refused command (the statuses docs/protocol.md says to retry). */
const RETRY_DELAYS_MS = [250, 1000, 3000];
const RETRYABLE = new Set([408, 429, 502, 503, 504]);

/** True for a tunnel the relay passes upstream. */
export function isRelayTunnel(tunnel: TunnelConfig | undefined): tunnel is TunnelConfig & { upstream_url: string } {
  return tunnel?.upstream_url !== undefined;
}

/** One polled command and what the relay decided about it. */
interface Judged {
  entry: PolledEntry;
  kind: "jsonrpc" | "session_termination" | "dropped";
  requestId?: string;
  shardToken?: string;
  /** The channel to judge and echo: normalised, or as sent when it is invalid. */
  channel: string;
  message?: unknown;
  decision: PolicyDecision;
  expiresAt: number;
}

const refuse = (rule: string, reason: string): PolicyDecision => ({ decision: "deny", rule, reason });

function judge(policy: Policy | undefined, tunnel: string, entry: PolledEntry, now: number): Judged {
  const decoded = decodeCommand(entry.value);
  const requestId =
    isObject(entry.value) && typeof entry.value.request_id === "string" ? entry.value.request_id : undefined;
  const shardToken =
    isObject(entry.value) && typeof entry.value.shard_token === "string" ? entry.value.shard_token : undefined;
  const rawChannel = isObject(entry.value) && typeof entry.value.channel === "string" ? entry.value.channel : undefined;
  const channel = normalizeChannel(rawChannel) ?? rawChannel ?? "main";
  const timeout = isObject(entry.value) ? parseResponseTimeout(entry.value.response_timeout) : undefined;
  const expiresAt = now + (timeout ?? DEFAULT_PENDING_MS) + PENDING_GRACE_MS;
  const base = { entry, requestId, shardToken, channel, expiresAt };
  if (isObject(entry.value) && Array.isArray(entry.value.jsonrpc)) {
    // The protocol answers one message per command, so a batch could only be half answered.
    return {
      ...base,
      kind: "jsonrpc",
      message: entry.value.jsonrpc,
      decision: refuse(GUARD.malformed, "a command carries one JSON-RPC message; a batch in a command is refused"),
    };
  }
  if (decoded.kind !== "command") {
    const what =
      decoded.kind === "invalid"
        ? `a malformed command (${decoded.reason.split("\n")[0]})`
        : `command_type ${JSON.stringify(decoded.kind === "unknown" ? decoded.commandType : "airlock_cancel")}`;
    return {
      ...base,
      kind: "dropped",
      decision: refuse(GUARD.malformed, `${what} is not passed to agents by the relay`),
    };
  }
  const command = decoded.command;
  if (command.command_type === "session_termination") {
    const decision: PolicyDecision = entry.doubt
      ? refuse(entry.doubt.rule, entry.doubt.reason)
      : {
          decision: "allow",
          rule: COMMAND_RULES.sessionTermination,
          reason: "session terminations are not judged by rules",
        };
    return { ...base, kind: "session_termination", decision };
  }
  const message: unknown = command.jsonrpc;
  if (entry.doubt) return { ...base, kind: "jsonrpc", message, decision: refuse(entry.doubt.rule, entry.doubt.reason) };
  if (normalizeChannel(rawChannel) === undefined && rawChannel !== undefined && rawChannel !== null) {
    return {
      ...base,
      kind: "jsonrpc",
      message,
      decision: refuse(GUARD.malformed, invalidChannel(rawChannel, "command channel").message),
    };
  }
  return { ...base, kind: "jsonrpc", message, decision: judgeMessage(policy, { tunnel, channel, message }) };
}

/** The audit entry of one judged command. */
function describeJudged(policy: Policy | undefined, item: Judged, agentInstance: string | null): Promise<AdmitEntry> {
  return admitEntry(policy, {
    requestId: item.requestId ?? null,
    channel: item.channel,
    agentInstance,
    message: item.message,
    decision: item.decision,
    remember: { expiresAt: item.expiresAt },
    ...(item.kind === "dropped" ? { outcome: { ...refusalOutcome(item.decision), response_status: "dropped" } } : {}),
  });
}

/**
 * Judge one command and describe it for the audit log, on its own: when either throws
 * (values the chain cannot encode are refused before this, so only a bug can), that
 * command alone is refused — answered upstream and recorded without its arguments — and
 * its neighbours in the poll go on.
 */
async function judgeAndDescribe(
  policy: Policy | undefined,
  tunnel: string,
  entry: PolledEntry,
  now: number,
  agentInstance: string | null,
): Promise<{ item: Judged; admitted: AdmitEntry }> {
  try {
    const item = judge(policy, tunnel, entry, now);
    return { item, admitted: await describeJudged(policy, item, agentInstance) };
  } catch (error) {
    const reason = `the relay could not judge this command (${error instanceof Error ? error.message : String(error)}); it is refused alone`;
    console.error(`airlock relay: ${reason}`);
    const value = isObject(entry.value) ? entry.value : {};
    const rawChannel = typeof value.channel === "string" ? value.channel : undefined;
    const item: Judged = {
      entry,
      kind: "jsonrpc",
      requestId: typeof value.request_id === "string" ? value.request_id : undefined,
      shardToken: typeof value.shard_token === "string" ? value.shard_token : undefined,
      channel: normalizeChannel(rawChannel) ?? "main",
      // Only the id is kept, to answer the caller; nothing else of it is trusted.
      message: isRequest(value.jsonrpc)
        ? { jsonrpc: "2.0", id: value.jsonrpc.id, method: value.jsonrpc.method }
        : undefined,
      decision: refuse(GUARD.unjudgeable, reason),
      expiresAt: now + DEFAULT_PENDING_MS,
    };
    return { item, admitted: await describeJudged(undefined, { ...item, message: undefined }, agentInstance) };
  }
}

/** Post with the protocol's retry rules; resolves with the last status (0 = never answered). */
async function postUpstream(upstream: Upstream, headers: Headers, body: string): Promise<number> {
  let status = 0;
  for (let attempt = 0; attempt <= RETRY_DELAYS_MS.length; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[attempt - 1]));
    const result = await callUpstream(upstream, "/response", { method: "POST", headers, body });
    if (result.ok) {
      status = result.response.status;
      await result.response.body?.cancel();
      if (!RETRYABLE.has(status)) return status;
    }
  }
  return status;
}

type RelayCall = ReturnType<typeof relayContext>;

/**
 * Answer upstream, as its agent would have, a command the agent will never see: a
 * request gets a `jsonrpc_response` carrying `error`; a notification or reply (nothing
 * to answer in JSON-RPC) a `notify_ack` with `ackStatus`. Resolves with the upstream's
 * status (0: no answer).
 */
async function answerInsteadOfAgent(
  ctx: RelayCall,
  judged: Judged,
  error: unknown,
  ackStatus: number,
): Promise<number> {
  if (judged.requestId === undefined || judged.shardToken === undefined) return 0;
  const payload = error
    ? {
        request_id: judged.requestId,
        channel: judged.channel,
        resp_json: error,
        resp_headers: { "Content-Type": ["application/json"] },
        resp_code: 200,
        resp_type: "jsonrpc_response",
      }
    : { request_id: judged.requestId, channel: judged.channel, resp_code: ackStatus, resp_type: "notify_ack" };
  const headers = upstreamHeaders(ctx.agentHeaders, ctx.upstream, {
    "Content-Type": "application/json",
    [CLIENT_HEADERS.shardToken]: judged.shardToken,
  });
  const status = await postUpstream(ctx.upstream, headers, JSON.stringify(payload));
  if (status !== 200)
    console.error(`airlock relay: answering request ${judged.requestId} upstream ended with ${status || "no answer"}`);
  return status;
}

/** Refuse a command the audit log could not record: `-32603` naming why, or `notify_ack` 503. */
function answerUnrecorded(ctx: RelayCall, judged: Judged): Promise<number> {
  const id = Array.isArray(judged.message) ? null : isRequest(judged.message) ? judged.message.id : undefined;
  if (id === undefined) return answerInsteadOfAgent(ctx, judged, undefined, 503);
  const failure = failureMessage(id, { source: "client_internal" });
  const message = `The Airlock relay of tunnel ${ctx.tunnel} could not record this request in its audit log, so it did not pass it to the agent. Retry shortly; if it persists, the relay's AuditLog Durable Object needs attention.`;
  return answerInsteadOfAgent(ctx, judged, { ...failure, error: { ...failure.error, message } }, 503);
}

/** Answer a refused command upstream with the JSON-RPC error naming the rule (notify_ack 403 for a notification), then record the outcome. */
async function answerRefusal(
  ctx: RelayCall,
  judged: Judged,
  admitted: AdmitEntry,
  decision: PolicyDecision,
): Promise<void> {
  if (judged.requestId === undefined || judged.shardToken === undefined) return;
  const error = refusalMessage(judged.message, decision);
  const status = await answerInsteadOfAgent(ctx, judged, error, 403);
  const outcome = await outcomeOf(decision, "denied", error ? JSON.stringify(error) : undefined, 0);
  await ctx.log?.settle(
    {
      ...outcome,
      reason: `${outcome.reason}; answered upstream by the relay (${status ? `HTTP ${status}` : "no answer"})`,
      requestId: judged.requestId,
      channel: admitted.channel,
      method: admitted.method,
      target_kind: admitted.target_kind,
      target: admitted.target,
      arguments_digest: admitted.arguments_digest,
      agentInstance: admitted.agentInstance,
    },
    { tunnel: ctx.tunnel, audit: ctx.enforcement.audit },
  );
}

/** The relay's view of the current call: its tunnel, upstream, enforcement and audit log. */
function relayContext(c: Context<WorkerContext>) {
  const tunnel = c.get("tunnelId");
  const config = c.get("tunnel");
  if (!isRelayTunnel(config)) throw new Error(`tunnel ${tunnel} is not a relay tunnel`);
  const enforcement = loadEnforcement(c.env);
  const upstream = upstreamOf(c.env, tunnel, config);
  // Without policy or audit there is nothing to remember: a plain pass-through.
  const log = enforcement.audit || enforcement.policy ? auditLogFor(c.env as AuditBindings, tunnel) : undefined;
  return { tunnel, upstream, enforcement, log, agentHeaders: c.req.raw.headers };
}

async function poll(c: Context<WorkerContext>): Promise<Response> {
  const ctx = relayContext(c);
  const { tunnel, upstream, enforcement, log } = ctx;
  const query = new URLSearchParams();
  for (const [name, value] of new URL(c.req.url).searchParams) if (POLL_PARAMS.has(name)) query.append(name, value);
  const result = await callUpstream(upstream, `/poll${query.size ? `?${query}` : ""}`, {
    method: "GET",
    headers: upstreamHeaders(c.req.raw.headers, upstream),
    signal: c.req.raw.signal,
  });
  if (!result.ok) return fail(result.error);
  const response = result.response;
  if (response.status === 204) {
    await response.body?.cancel();
    return c.body(null, 204);
  }
  if (response.status !== 200) return passUpstreamFailure(response, upstream, tunnel);
  const text = scrub(await response.text(), upstream.key);
  const body = readPollBody(text);
  if (!body.ok) {
    return fail({
      status: 502,
      code: null,
      retryAfter: 1,
      message: `The upstream control plane answered the poll with a body the relay cannot read (${body.reason}); nothing was handed out.`,
    });
  }
  if (body.entries.length === 0) return c.body(null, 204);

  const now = Date.now();
  const agentInstance = c.req.header(CLIENT_HEADERS.instanceId)?.slice(0, 128) ?? null;
  const policy = enforcement.policy;
  const each = await Promise.all(
    body.entries.map((entry) => judgeAndDescribe(policy, tunnel, entry, now, agentInstance)),
  );
  const judged = each.map((one) => one.item);
  const admitted = each.map((one) => one.admitted);
  let decisions: PolicyDecision[];
  try {
    decisions = log
      ? await log.admit(admitted, { tunnel, audit: enforcement.audit, pinning: policy?.pinning ?? "off" })
      : judged.map((item) => item.decision);
  } catch (error) {
    // No record, no hand-out: an audit that cannot be written must not be skipped. The
    // upstream already handed these commands out, so refuse them there at once rather
    // than leave their callers waiting for a timeout.
    console.error(
      `airlock relay: the audit log of tunnel ${tunnel} could not record ${judged.length} command(s); none was handed out, each is refused upstream`,
      error,
    );
    for (const item of judged) if (item.kind !== "dropped") background(c, answerUnrecorded(ctx, item));
    return fail({
      status: 503,
      code: null,
      retryAfter: 1,
      message:
        "The relay could not record the polled commands in its audit log, so it handed none out and answered them upstream with an error; retry shortly.",
    });
  }
  const kept: PolledEntry[] = [];
  judged.forEach((item, index) => {
    const decision = decisions[index]!;
    if (item.kind === "dropped") {
      console.warn(`airlock relay: ${decision.reason} (request ${item.requestId ?? "without id"})`);
    } else if (decision.decision === "allow") {
      kept.push(item.entry);
    } else {
      background(c, answerRefusal(ctx, item, admitted[index]!, decision));
    }
  });
  if (kept.length === 0) return c.body(null, 204);
  return new Response(pollBodyOf(text, body.entries, kept), {
    status: 200,
    headers: { "Content-Type": "application/json" },
  });
}

function refusalOutcome(decision: PolicyDecision) {
  return {
    decision: decision.decision,
    rule: decision.rule,
    reason: decision.reason,
    response_status: "denied",
    response_bytes: null,
    response_digest: null,
  };
}

/** A duplicate key (or inexact value) inside `resp_json` refuses the message; one in the envelope refuses the post. */
function readPost(text: string): { payload: unknown; doubt?: PolicyDecision } | { error: string } {
  const strict = parseJsonStrict(text);
  if (strict.ok) return { payload: strict.value };
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return { error: "The response body is not valid JSON." };
  }
  if (!/^\$\.resp_json(?:$|[.[])/.test(strict.path ?? "$"))
    return { error: `The response body cannot be read reliably: ${strict.reason}.` };
  return {
    payload,
    doubt: refuse(strictJsonRule(strict.problem), `the response cannot be judged reliably: ${strict.reason}`),
  };
}

function jsonHeaders(headers: HeaderMap | undefined): HeaderMap {
  const kept = Object.entries(headers ?? {}).filter(([name]) => name.toLowerCase() !== "content-type");
  return { ...Object.fromEntries(kept), "Content-Type": ["application/json"] };
}

async function respond(c: Context<WorkerContext>): Promise<Response> {
  const shardToken = c.req.header(CLIENT_HEADERS.shardToken);
  if (!shardToken) {
    return fail({
      status: 400,
      code: null,
      message: `Missing ${CLIENT_HEADERS.shardToken}: send the shard_token of the command being answered.`,
    });
  }
  const ctx = relayContext(c);
  const { tunnel, upstream, enforcement, log } = ctx;
  const text = await c.req.text();
  const read = readPost(text);
  if ("error" in read) return fail({ status: 400, code: "invalid_json_payload", message: read.error });
  const parsed = TunnelResponsePayload.safeParse(read.payload);
  if (!parsed.success) {
    return fail({
      status: 400,
      code: null,
      message: `The response body is not a TunnelResponsePayload: ${z.prettifyError(parsed.error)}`,
    });
  }
  const payload = parsed.data;
  const requestId = payload.request_id;
  const pending = log ? await log.pending(requestId) : undefined;
  if (log && !pending) {
    return fail({
      status: 404,
      code: "pending_request_not_found",
      message: `Request ${requestId.slice(0, 80)} was not handed out by this relay on tunnel ${tunnel}, or was already answered or expired.`,
    });
  }
  const policy = enforcement.policy;
  const channel = pending?.channel ?? normalizeChannel(payload.channel) ?? "main";
  const respType = payload.resp_type ?? "jsonrpc_response";
  const message = payload.resp_json ?? undefined;
  let forward = text;
  let outcome: Promise<void> = Promise.resolve();

  if (respType === "jsonrpc_notify") {
    const decision =
      message === undefined ? undefined : (read.doubt ?? checkIntermediate(policy, JSON.stringify(message)));
    if (decision?.decision === "deny") {
      // Withheld: the client never sees it; the outcome record counts it.
      console.warn(`airlock relay: withheld an intermediate message of ${requestId}: ${decision.reason}`);
      await log?.withhold(requestId, decision.rule);
      return c.json({ status: "ok" });
    }
  } else {
    let outcomeText: string | undefined;
    let check: Awaited<ReturnType<typeof checkResult>> | undefined;
    if (message !== undefined) {
      check = read.doubt
        ? refuseResult(message, read.doubt)
        : await checkResult(
            policy,
            log ? (ch, tools) => log.checkTools(tunnel, ch, tools, policy?.pinning ?? "off") : undefined,
            {
              tunnel,
              channel,
              method: pending?.method ?? null,
              message,
              text: JSON.stringify(message),
            },
          );
      if (check.changed) {
        const denied = check.status === "denied";
        forward = JSON.stringify({
          ...payload,
          resp_json: check.message,
          ...(denied ? { resp_code: 200, resp_headers: jsonHeaders(payload.resp_headers) } : {}),
        });
      }
      outcomeText = JSON.stringify(check.message);
    }
    const decision = check?.decision ?? {
      decision: "allow" as const,
      rule: "responses",
      reason: `${respType} carries no body to check`,
    };
    const status = check?.status ?? (payload.resp_code >= 400 ? "error" : "ok");
    // The outcome record overlaps the forward upstream (the checks that shape `forward` ran
    // above); the object serialises appends, so the chain stays ordered.
    if (log) {
      outcome = outcomeOf(decision, status, outcomeText)
        .then((fields) => log.settle({ requestId, ...fields }, { tunnel, audit: enforcement.audit }))
        .catch((error: unknown) => outcomeAppendFailed(tunnel, requestId, error));
      background(c, outcome);
    }
  }

  const result = await callUpstream(upstream, "/response", {
    method: "POST",
    headers: upstreamHeaders(c.req.raw.headers, upstream, { "Content-Type": "application/json" }),
    body: forward,
    signal: c.req.raw.signal,
  });
  if (!result.ok) return fail(result.error);
  const answer = result.response;
  if (log && respType !== "jsonrpc_notify" && (answer.status === 200 || answer.status === 404))
    background(
      c,
      outcome.then(() => log.forget(requestId)),
    );
  if (answer.status !== 200) return passUpstreamFailure(answer, upstream, tunnel);
  return new Response(scrub(await answer.text(), upstream.key), {
    status: 200,
    headers: { "Content-Type": "application/json" },
  });
}

async function metadata(c: Context<WorkerContext>): Promise<Response> {
  const { tunnel, upstream } = relayContext(c);
  const result = await callUpstream(upstream, "", {
    method: "GET",
    headers: upstreamHeaders(c.req.raw.headers, upstream),
    signal: c.req.raw.signal,
  });
  if (!result.ok) return fail(result.error);
  if (result.response.status !== 200) return passUpstreamFailure(result.response, upstream, tunnel);
  return new Response(scrub(await result.response.text(), upstream.key), {
    status: 200,
    headers: { "Content-Type": "application/json" },
  });
}

/** The relay-mode agent API (full paths under `/v1/tunnels`); `onError` is the Worker's error handler. */
export function relayApi(deps: WorkerDeps, onError: ErrorHandler<WorkerContext>): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  const path = "/v1/tunnels/:tunnel_id";
  app.use(`${path}/*`, tunnelContext(deps));
  app.use(
    `${path}/*`,
    credentialCheck((c) => c.get("tunnel")?.agent_key_sha256 ?? [], {
      code: "invalid_api_key",
      message: AGENT_KEY_MESSAGE,
    }),
  );
  app.get(path, metadata);
  app.get(`${path}/poll`, poll);
  app.post(
    `${path}/response`,
    sizeLimit((c) => c.get("config").settings.maxResponseBytes, "The response body"),
    respond,
  );
  app.notFound((c) =>
    fail({
      status: 404,
      code: null,
      message: `No route for ${c.req.method} ${new URL(c.req.url).pathname} on a relay tunnel.`,
    }),
  );
  app.onError(onError);
  return app;
}

/**
 * Middleware for `/v1/tunnels/:tunnel_id/*`: requests for relay tunnels are served by
 * {@link relayApi}; everything else goes on to the hub's agent API.
 */
export function relayMode(deps: WorkerDeps, onError: ErrorHandler<WorkerContext>) {
  const relay = relayApi(deps, onError);
  return async (c: Context<WorkerContext>, next: () => Promise<void>): Promise<Response | undefined> => {
    const id = c.req.param("tunnel_id") ?? "";
    if (!isRelayTunnel(loadConfig(c.env).tunnels.get(id))) {
      await next();
      return undefined;
    }
    let executionCtx: typeof c.executionCtx | undefined;
    try {
      executionCtx = c.executionCtx;
    } catch {
      // Outside the Workers runtime (app.request in tests) there is none.
    }
    return relay.fetch(c.req.raw, c.env, executionCtx);
  };
}
