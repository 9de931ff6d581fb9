/**
 * Request evaluation: deny rules first (any match refuses), then allow rules in order
 * (the first match admits), then the policy's `default`. Structural guards run before
 * any rule: a message a rule cannot judge reliably is refused whatever the default.
 *
 * Allow rules compare exact text and never match a look-alike name; deny rules compare
 * folded text (case, NFKC, invisible characters, common look-alikes) and treat doubt as
 * a match. So a spelling that some backend might read as `tools/call` either meets the
 * deny rule written for it or is admitted by no allow rule.
 */
import { jsonValueProblem, utf8Length } from "../audit/digest.ts";
import { isObject, isResponse } from "../jsonrpc.ts";
import { checkValue, verdictMatches, type CheckMode } from "./arguments.ts";
import { GUARD, parseJsonStrict, strictJsonRule } from "./json.ts";
import { foldName, nameSuspicion, pathViews } from "./normalize.ts";
import type { CompiledRule, NameMatcher, Policy } from "./parse.ts";
import { ARGUMENT_METHODS, type TargetKind } from "./schema.ts";
import { targetOf, type Target } from "../mcp/methods.ts";
import { identityMatches, type CallerIdentity } from "./identity.ts";

/** The outcome of a policy check. `rule` names what decided: `rules[2] (allow-echo)`, `default`, `guard:…`, … */
export interface PolicyDecision {
  decision: "allow" | "deny";
  rule: string;
  reason: string;
  /** Per-element decisions when the message was a batch. */
  elements?: PolicyDecision[];
}

/** Where a request is going and what it is. */
export interface RequestContext {
  tunnel: string;
  channel: string;
  /** The parsed JSON-RPC body: one message or a batch (array). Parse raw bodies with `parseJsonStrict`. */
  message: unknown;
  /** Size of the raw body; computed from `message` when absent. */
  rawBytes?: number;
  /** Who is calling; rules with identity matchers never match without one. */
  identity?: CallerIdentity;
}

/** What rules are matched against, in the exact and the folded reading. */
interface Subject {
  tunnel: string;
  channel: string;
  method: string;
  target?: Target;
  foldedTarget?: Target;
  /** `params.arguments` when the exact method carries arguments. */
  args?: { value: unknown };
  foldedArgs?: { value: unknown };
  /** Undefined when sizes are not judged (list filtering). */
  bytes?: number;
  /** List filtering asks whether *some* call could pass: argument constraints are ignored. */
  ignoreArguments?: boolean;
  identity?: CallerIdentity;
}

// The MCP methods, for the hint when a method differs from one only by case or form.
const MCP_METHODS = [
  "initialize",
  "ping",
  "tools/list",
  "tools/call",
  "prompts/list",
  "prompts/get",
  "resources/list",
  "resources/read",
  "resources/templates/list",
  "resources/subscribe",
  "resources/unsubscribe",
  "completion/complete",
  "logging/setLevel",
];

const ENVELOPE_KEYS = ["jsonrpc", "id", "method", "params", "result", "error"];
const PARAM_KEYS = ["name", "arguments", "uri", "ref", "_meta"];

const deny = (rule: string, reason: string): PolicyDecision => ({ decision: "deny", rule, reason });

/** JSON-quoted, with invisible characters spelled out so a reason shows what was really sent. */
function quote(text: string): string {
  const json = JSON.stringify(text).replace(
    /[\p{Cf}\p{Zl}\p{Zp}]/gu,
    (char) => `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
  return json.length > 80 ? `${json.slice(0, 77)}..."` : json;
}

/** A key that only case or Unicode form tells apart from a key we read (`Method`, `ﬁle`, Kelvin-sign `K`). */
function caseTwin(object: Record<string, unknown>, known: readonly string[]): string | undefined {
  return Object.keys(object).find((key) => {
    const folded = key.normalize("NFKC").toLowerCase();
    return folded !== key && known.includes(folded);
  });
}

function matchesNames(matcher: NameMatcher, subject: string, mode: CheckMode): boolean {
  if (mode === "allow") return matcher.exact.some((glob) => glob.test(subject));
  const folded = foldName(subject);
  return matcher.folded.some((glob) => glob.test(folded));
}

/** Look-alike checks for a target; URIs may mix scripts (`file:///docs/привет.md`), names may not. */
function suspicious(target: Target): string | undefined {
  return nameSuspicion(target.name, { mixedScripts: target.kind !== "resource" });
}

/**
 * Resource URIs: an allow glob must hold for the URI as sent and for every normalised
 * view of it (a `..` or `%2e%2e` that leaves the glob's scope fails); a deny glob
 * matches if any view does.
 */
function matchesTarget(matcher: NameMatcher, target: Target, mode: CheckMode): boolean {
  if (target.kind !== "resource") return matchesNames(matcher, target.name, mode);
  const views = pathViews(target.name);
  if (mode === "allow")
    return views !== undefined && [target.name, ...views].every((view) => matchesNames(matcher, view, mode));
  return views === undefined || [target.name, ...views].some((view) => matchesNames(matcher, view, mode));
}

/**
 * Does the rule match? `undefined` = no; otherwise either `true` or, for an allow rule
 * that matched on everything but its arguments or size, the reason it missed.
 */
function ruleMatches(rule: CompiledRule, subject: Subject): true | string | undefined {
  const mode: CheckMode = rule.effect;
  if (rule.tunnels && !matchesNames(rule.tunnels, subject.tunnel, mode)) return undefined;
  if (rule.channels && !matchesNames(rule.channels, subject.channel, mode)) return undefined;
  if (rule.identity && !identityMatches(rule.identity, subject.identity)) return undefined;
  if (rule.methods && !matchesNames(rule.methods, subject.method, mode)) return undefined;
  const target = mode === "allow" ? subject.target : subject.foldedTarget;
  if (rule.target) {
    if (!target || target.kind !== rule.target.kind) return undefined;
    if (!matchesTarget(rule.target.names, target, mode)) return undefined;
    const suspicion = mode === "allow" ? suspicious(target) : undefined;
    if (suspicion) return `the ${target.kind} name ${quote(target.name)} ${suspicion}`;
  }
  if (rule.arguments) {
    const args = mode === "allow" ? subject.args : subject.foldedArgs;
    if (!args) return undefined;
    if (subject.ignoreArguments) return mode === "allow" ? true : undefined;
    const verdict = checkValue(rule.arguments, args.value, "arguments", mode);
    if (!verdictMatches(verdict, mode))
      return mode === "allow" && verdict.verdict !== "holds" ? verdict.reason : undefined;
  }
  if (rule.maxRequestBytes !== undefined && subject.bytes !== undefined && subject.bytes > rule.maxRequestBytes) {
    return `the request is ${subject.bytes} bytes, over its max_request_bytes ${rule.maxRequestBytes}`;
  }
  return true;
}

function describe(subject: Subject): string {
  const target = subject.target ?? subject.foldedTarget;
  return target ? `${subject.method} ${quote(target.name)}` : quote(subject.method);
}

/** Rules and default for a well-formed subject. */
function decide(policy: Policy, subject: Subject): PolicyDecision {
  for (const rule of policy.rules) {
    if (rule.effect === "deny" && ruleMatches(rule, subject) === true)
      return deny(rule.label, `${rule.label} denies ${describe(subject)}`);
  }
  let nearest: string | undefined;
  for (const rule of policy.rules) {
    if (rule.effect !== "allow") continue;
    const match = ruleMatches(rule, subject);
    if (match === true)
      return { decision: "allow", rule: rule.label, reason: `${rule.label} allows ${describe(subject)}` };
    if (match !== undefined) nearest ??= `${rule.label} did not apply: ${match}`;
  }
  if (policy.default === "allow")
    return { decision: "allow", rule: "default", reason: `no rule denies ${describe(subject)}; the default is allow` };
  const suspicion = subject.target && suspicious(subject.target);
  nearest ??= suspicion ? `the ${subject.target?.kind} name ${suspicion}` : undefined;
  const known = MCP_METHODS.find(
    (method) => method !== subject.method && foldName(method) === foldName(subject.method),
  );
  nearest ??= known ? `methods are case-sensitive; the MCP method is ${quote(known)}` : undefined;
  return deny("default", `no rule allows ${describe(subject)}; the default is deny${nearest ? ` (${nearest})` : ""}`);
}

function evaluateMessage(
  policy: Policy,
  tunnel: string,
  channel: string,
  message: unknown,
  bytes: number,
  identity?: CallerIdentity,
): PolicyDecision {
  if (!isObject(message)) return deny(GUARD.malformed, "a JSON-RPC message must be an object");
  const envelopeTwin = caseTwin(message, ENVELOPE_KEYS);
  if (envelopeTwin)
    return deny(
      GUARD.keyCase,
      `the key ${quote(envelopeTwin)} differs from a JSON-RPC key only by case or form; some decoders would read it`,
    );
  if (typeof message.method !== "string") {
    if (isResponse(message)) {
      return policy.replies === "allow"
        ? { decision: "allow", rule: "replies", reason: "a reply to a server request; replies are allowed" }
        : deny("replies", "a reply to a server request; the policy denies replies");
    }
    return deny(GUARD.malformed, "the message has no string method and is not a reply");
  }
  if (message.jsonrpc !== "2.0") return deny(GUARD.malformed, `jsonrpc must be "2.0"`);
  const method = message.method;
  const params = message.params ?? {};
  if (!isObject(params))
    return deny(GUARD.malformed, `${quote(method)}: params must be an object (MCP uses named parameters)`);
  const paramTwin = caseTwin(params, PARAM_KEYS);
  if (paramTwin)
    return deny(
      GUARD.keyCase,
      `params key ${quote(paramTwin)} differs from an MCP key only by case or form; some decoders would read it`,
    );
  if (params._meta !== undefined && !isObject(params._meta))
    return deny(GUARD.malformed, "params._meta must be an object");

  const foldedMethod = foldName(method);
  const target = targetOf(method, params);
  const foldedTarget = targetOf(foldedMethod, params);
  // A method that folds to a known one is checked as that method, so malformed
  // params cannot hide a call from deny rules.
  const malformed = [target, foldedTarget].find((value) => typeof value === "string");
  if (malformed !== undefined) return deny(GUARD.malformed, malformed as string);
  if (policy.requestMaxBytes !== undefined && bytes > policy.requestMaxBytes) {
    return deny(
      "requests.max_bytes",
      `the request is ${bytes} bytes, over requests.max_bytes ${policy.requestMaxBytes}`,
    );
  }
  const carries = (name: string) =>
    (ARGUMENT_METHODS as readonly string[]).includes(name) ? { value: params.arguments ?? {} } : undefined;
  return decide(policy, {
    tunnel,
    channel,
    method,
    bytes,
    identity,
    target: target as Target | undefined,
    foldedTarget: foldedTarget as Target | undefined,
    args: carries(method),
    foldedArgs: carries(foldedMethod),
  });
}

function sizeOf(message: unknown): number {
  return utf8Length(JSON.stringify(message) ?? "");
}

/**
 * Decide whether a JSON-RPC request, notification or batch may pass. A batch is
 * judged element by element and refused as a whole when any element is refused;
 * an empty batch is malformed. Notifications are judged like requests (a
 * `tools/call` without an id is still a tools/call).
 */
export function evaluateRequest(policy: Policy, ctx: RequestContext): PolicyDecision {
  // Judged values must be the ones the backend will read: no Infinity, no lone surrogate.
  const inexact = ctx.message === undefined ? undefined : jsonValueProblem(ctx.message);
  if (inexact)
    return deny(GUARD.inexactJson, `the message cannot be judged exactly: ${inexact.reason} at ${inexact.path}`);
  const bytes = ctx.rawBytes ?? sizeOf(ctx.message);
  if (!Array.isArray(ctx.message))
    return evaluateMessage(policy, ctx.tunnel, ctx.channel, ctx.message, bytes, ctx.identity);
  if (ctx.message.length === 0) return deny(GUARD.malformed, "an empty batch");
  if (policy.requestMaxBytes !== undefined && bytes > policy.requestMaxBytes) {
    return deny("requests.max_bytes", `the batch is ${bytes} bytes, over requests.max_bytes ${policy.requestMaxBytes}`);
  }
  const elements = ctx.message.map((message) =>
    evaluateMessage(policy, ctx.tunnel, ctx.channel, message, sizeOf(message), ctx.identity),
  );
  const refused = elements.findIndex((element) => element.decision === "deny");
  if (refused >= 0) {
    const element = elements[refused] as PolicyDecision;
    return { decision: "deny", rule: element.rule, reason: `batch element [${refused}]: ${element.reason}`, elements };
  }
  return {
    decision: "allow",
    rule: [...new Set(elements.map((element) => element.rule))].join(", "),
    reason: `all ${elements.length} batch elements are allowed`,
    elements,
  };
}

/**
 * Evaluate a raw body: size first (before parsing), then strict parsing (duplicate
 * keys and deep nesting refused), then {@link evaluateRequest}. `message` is the
 * parsed body when it parsed.
 */
export function evaluateRequestBody(
  policy: Policy,
  ctx: { tunnel: string; channel: string; body: string; identity?: CallerIdentity },
): PolicyDecision & { message?: unknown } {
  const bytes = utf8Length(ctx.body);
  if (policy.requestMaxBytes !== undefined && bytes > policy.requestMaxBytes) {
    return deny(
      "requests.max_bytes",
      `the request is ${bytes} bytes, over requests.max_bytes ${policy.requestMaxBytes}`,
    );
  }
  const parsed = parseJsonStrict(ctx.body);
  if (!parsed.ok) return deny(strictJsonRule(parsed.problem), parsed.reason);
  return {
    ...evaluateRequest(policy, {
      tunnel: ctx.tunnel,
      channel: ctx.channel,
      message: parsed.value,
      rawBytes: bytes,
      identity: ctx.identity,
    }),
    message: parsed.value,
  };
}

/**
 * Could some call to this tool, prompt or resource pass? Deny rules that constrain
 * arguments do not hide a name (other arguments may pass); allow rules count whatever
 * their argument constraints. Used to filter lists so a denied name is never shown.
 */
export function evaluateTarget(
  policy: Policy,
  ctx: { tunnel: string; channel: string; kind: TargetKind; name: string; identity?: CallerIdentity },
): PolicyDecision {
  const method = ctx.kind === "tool" ? "tools/call" : ctx.kind === "prompt" ? "prompts/get" : "resources/read";
  const target = { kind: ctx.kind, name: ctx.name };
  const args = (ARGUMENT_METHODS as readonly string[]).includes(method) ? { value: {} } : undefined;
  return decide(policy, {
    tunnel: ctx.tunnel,
    channel: ctx.channel,
    method,
    target,
    foldedTarget: target,
    args,
    foldedArgs: args,
    ignoreArguments: true,
    identity: ctx.identity,
  });
}

/** What audit records and pinning need from one message: method, target and arguments, without judging them. */
export interface MessageSummary {
  method: string | null;
  target_kind: TargetKind | null;
  target: string | null;
  /** `params.arguments` as sent; `undefined` when absent. */
  arguments: unknown;
}

/** Summarise one JSON-RPC message (not a batch) for the audit log. Malformed parts come out as null. */
export function describeMessage(message: unknown): MessageSummary {
  const method = isObject(message) && typeof message.method === "string" ? message.method : null;
  const params = isObject(message) && isObject(message.params) ? message.params : {};
  const target = method === null ? undefined : targetOf(method, params);
  const known = typeof target === "object" ? target : undefined;
  return { method, target_kind: known?.kind ?? null, target: known?.name ?? null, arguments: params.arguments };
}

/** JSON-RPC error code of a policy refusal (implementation-defined server error range). */
export const POLICY_DENIED_CODE = -32003;

/** The JSON-RPC error answering a refused request: the message names the rule, `data` carries rule and reason. */
export function denialResponse(id: string | number | null, decision: PolicyDecision): Record<string, unknown> {
  return {
    jsonrpc: "2.0",
    id,
    error: {
      code: POLICY_DENIED_CODE,
      message: `Refused by policy (${decision.rule}): ${decision.reason}`,
      data: { rule: decision.rule, reason: decision.reason },
    },
  };
}

/**
 * The answer to a refused message: one error response, or for a batch an array with
 * one error per element that has an id; `undefined` when nothing carries an id (a
 * notification gets no response in JSON-RPC).
 */
export function denialFor(message: unknown, decision: PolicyDecision): unknown {
  const idOf = (item: unknown) =>
    isObject(item) && (typeof item.id === "string" || typeof item.id === "number") ? item.id : undefined;
  if (Array.isArray(message)) {
    const answers = message
      .map(idOf)
      .filter((id) => id !== undefined)
      .map((id) => denialResponse(id, decision));
    return answers.length ? answers : undefined;
  }
  const id = idOf(message);
  return id === undefined ? undefined : denialResponse(id, decision);
}
