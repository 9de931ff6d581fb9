/**
 * The audit record: one line of a tunnel's hash chain. A command is recorded twice —
 * `phase: "request"` before it is handed to an agent (so a crash cannot erase it) and
 * `phase: "outcome"` when its answer (or failure) is known — sharing `request_id`.
 * Every field is always present (null when it does not apply) so the canonical JSON
 * that is hashed has one shape.
 */
import { z } from "zod";
import { isJsonValue } from "./digest.ts";

/** `prev_hash` of a chain's first record. */
export const GENESIS_HASH = "0".repeat(64);

const Hash = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex characters");
/** Any JSON value, kept by reference (see `isJsonValue`). */
const JsonValue = z.custom<unknown>((value) => isJsonValue(value), "expected a JSON value");
const DigestString = z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex>");

/** The fields a writer supplies; the chain adds `seq`, `prev_hash` and `hash`. */
export const AuditFields = z.strictObject({
  /** RFC 3339 with offset (`2025-01-31T12:00:00.000Z`). */
  time: z.iso.datetime({ offset: true, error: "expected an RFC 3339 time" }),
  tunnel: z.string().min(1),
  channel: z.string().min(1),
  /** The tunnel command's request id (not the JSON-RPC id); joins the two phases. */
  request_id: z.string().nullable(),
  phase: z.enum(["request", "outcome"]),
  /** JSON-RPC method, or null for a reply or a malformed message. */
  method: z.string().nullable(),
  target_kind: z.enum(["tool", "prompt", "resource"]).nullable(),
  /** Tool or prompt name, or resource URI. */
  target: z.string().nullable(),
  /** Redacted copy of `params.arguments` (see `redactArguments`). */
  arguments: JsonValue,
  /** Digest of the unredacted arguments. */
  arguments_digest: DigestString.nullable(),
  /** The policy decision for this phase (request: the request check; outcome: the response check). */
  decision: z.enum(["allow", "deny"]),
  /** What decided: `rules[2] (allow-echo)`, `default`, `responses.max_bytes`, `tool_pinning`, … */
  rule: z.string(),
  reason: z.string(),
  /** Outcome: `ok`, `error` (JSON-RPC error), `denied`, `timeout`, `failed`, …; null in the request phase. */
  response_status: z.string().max(64).nullable(),
  response_bytes: z.number().int().nonnegative().nullable(),
  response_digest: DigestString.nullable(),
  latency_ms: z.number().nonnegative().nullable(),
  /** `X-Tunnel-Client-Instance-Id` of the agent that took the command. */
  agent_instance: z.string().nullable(),
  /**
   * W3C trace id of the call (docs/observability.md): the hub's trace, or the client's when
   * the hub does not trace. Absent (not null) when there is none, so records written before
   * the field existed keep their hashes.
   */
  trace_id: z
    .string()
    .regex(/^[0-9a-f]{32}$/, "expected 32 lowercase hex characters")
    .optional(),
  /**
   * Who called (relay/identity/): the OpenID subject, or `token:<digest prefix>` for a static
   * client token; the MCP client's id at the hub; how the caller authenticated. Optional so
   * records written before identity existed still parse; every new record carries them.
   */
  subject: z.string().nullable().optional(),
  /** The person's display name and groups at sign-in (OAuth); null otherwise. */
  display_name: z.string().nullable().optional(),
  groups: z.array(z.string()).nullable().optional(),
  client_id: z.string().nullable().optional(),
  auth_method: z.enum(["oauth", "static_token", "none"]).nullable().optional(),
});
export type AuditFields = z.infer<typeof AuditFields>;

/** What `appendRecord` accepts: the required fields, the rest defaulting to null. */
export type AuditInput = Pick<AuditFields, "time" | "tunnel" | "channel" | "phase" | "decision" | "rule"> &
  Partial<Omit<AuditFields, "time" | "tunnel" | "channel" | "phase" | "decision" | "rule">>;

/** A sealed record, as stored and exported. */
export const AuditRecord = z.strictObject({
  seq: z.number().int().positive(),
  ...AuditFields.shape,
  prev_hash: Hash,
  hash: Hash,
});
export type AuditRecord = z.infer<typeof AuditRecord>;

/** Fill absent optional fields with null, in the record's field order. */
export function completeFields(input: AuditInput): AuditFields {
  return {
    time: input.time,
    tunnel: input.tunnel,
    channel: input.channel,
    request_id: input.request_id ?? null,
    phase: input.phase,
    method: input.method ?? null,
    target_kind: input.target_kind ?? null,
    target: input.target ?? null,
    arguments: input.arguments ?? null,
    arguments_digest: input.arguments_digest ?? null,
    decision: input.decision,
    rule: input.rule,
    reason: input.reason ?? "",
    response_status: input.response_status ?? null,
    response_bytes: input.response_bytes ?? null,
    response_digest: input.response_digest ?? null,
    latency_ms: input.latency_ms ?? null,
    agent_instance: input.agent_instance ?? null,
    ...(input.trace_id ? { trace_id: input.trace_id } : {}),
    subject: input.subject ?? null,
    display_name: input.display_name ?? null,
    groups: input.groups ?? null,
    client_id: input.client_id ?? null,
    auth_method: input.auth_method ?? null,
  };
}

/** The audit fields naming a caller (see `CallerIdentity` in shared/policy/identity.ts). */
export function identityFields(
  identity:
    | {
        subject: string;
        name?: string;
        groups: readonly string[];
        client?: string;
        method: "oauth" | "static_token" | "none";
      }
    | undefined,
): Pick<AuditFields, "subject" | "display_name" | "groups" | "client_id" | "auth_method"> {
  return {
    subject: identity?.subject ?? null,
    display_name: identity?.name ?? null,
    // A static token has no groups to state: null, not an empty list that reads as "no groups".
    groups: identity?.method === "oauth" ? [...identity.groups] : null,
    client_id: identity?.client ?? null,
    auth_method: identity?.method ?? null,
  };
}
