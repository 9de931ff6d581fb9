/**
 * Commands the control plane hands to an agent in a poll response
 * (`PolledCommandList` in docs/openapi.json). Unknown fields are ignored, never rejected:
 * the service may add fields at any time.
 */
import { z } from "zod";
import { RESPONSE_TIMEOUT_PATTERN } from "./duration.ts";
import { AIRLOCK_CANCEL, AIRLOCK_STREAM_OPEN } from "./extensions.ts";

/** Name → list of values, the header shape used on both directions of the wire. */
export const HeaderMap = z.record(z.string(), z.array(z.string()));
export type HeaderMap = z.infer<typeof HeaderMap>;

/**
 * The fields every polled command carries, as the contract states them: what a control
 * plane must send (the hub's output is tested against these through docs/openapi.json).
 */
const commandFields = {
  request_id: z.string().min(1).describe("Opaque id the control plane assigned; echoed in the response post."),
  shard_token: z.string().describe("Opaque token; sent back as X-Tunnel-Shard-Token, never in a body."),
  channel: z.string().optional().describe("Logical MCP binding; absent means main."),
  created_at: z.string().describe("RFC 3339 time the command was queued."),
  response_timeout: z
    .string()
    .regex(RESPONSE_TIMEOUT_PATTERN)
    .nullable()
    .optional()
    .describe(
      "Deadline for the whole command, relative to the poll's receipt: one integer and one unit (ns us ms s m h). Absent or null: no deadline.",
    ),
  headers: HeaderMap.optional().describe("Headers of the MCP client's request, to apply to the MCP request."),
};

/**
 * What a reader accepts beyond the contract, on purpose: a null `channel` or `headers` means
 * absent, and a `response_timeout` that does not parse means "no deadline" (see
 * duration.ts), never a rejected command.
 */
const readerLeniency = {
  channel: z.string().nullish(),
  response_timeout: z.unknown().optional(),
  headers: HeaderMap.nullish(),
};

/** Contract: a JSON-RPC message for the MCP server (`JsonRpcPolledCommand`). Unknown fields are allowed. */
export const JsonRpcPolledCommand = z.looseObject({
  ...commandFields,
  command_type: z.literal("jsonrpc").default("jsonrpc"),
  jsonrpc: z
    .record(z.string(), z.unknown())
    .describe("The JSON-RPC request, notification or response, forwarded untouched."),
});
/** Contract: close the MCP session named by the `Mcp-Session-Id` header (`SessionTerminationPolledCommand`). */
export const SessionTerminationPolledCommand = z.looseObject({
  ...commandFields,
  command_type: z.literal("session_termination"),
});
/**
 * Contract: fetch the main MCP server's OAuth protected-resource metadata (RFC 9728) and answer
 * it as `oauth_discovery_response` (`OAuthDiscoveryPolledCommand`; tunnel-client's local/dev flows).
 */
export const OAuthDiscoveryPolledCommand = z.looseObject({
  ...commandFields,
  command_type: z.literal("oauth_discovery"),
});
/** Contract: the 200 body of `GET /v1/tunnels/{id}/poll`. */
export const PolledCommandListContract = z.looseObject({
  commands: z.array(z.union([JsonRpcPolledCommand, SessionTerminationPolledCommand, OAuthDiscoveryPolledCommand])),
});

/** A JSON-RPC request, notification or response for the MCP server, to be forwarded untouched. */
export const JsonRpcCommand = JsonRpcPolledCommand.extend(readerLeniency);
export type JsonRpcCommand = z.infer<typeof JsonRpcCommand>;

/** Close the MCP session named by the `Mcp-Session-Id` header. */
export const SessionTerminationCommand = SessionTerminationPolledCommand.extend(readerLeniency);
export type SessionTerminationCommand = z.infer<typeof SessionTerminationCommand>;

/** Fetch the main MCP server's protected-resource metadata. */
export const OAuthDiscoveryCommand = OAuthDiscoveryPolledCommand.extend(readerLeniency);
export type OAuthDiscoveryCommand = z.infer<typeof OAuthDiscoveryCommand>;

export const KnownCommand = z.union([SessionTerminationCommand, OAuthDiscoveryCommand, JsonRpcCommand]);
export type KnownCommand = z.infer<typeof KnownCommand>;

/**
 * Airlock extension `cancel` (extensions.ts): the hub's client went away. Sent only to an
 * agent that declared `cancel`.
 */
export const AirlockCancelCommand = z.looseObject({
  ...commandFields,
  command_type: z.literal(AIRLOCK_CANCEL),
  cancel_request_id: z.string().min(1).describe("request_id of the command to abort; post nothing for either."),
  reason: z.string().optional().describe("Why, e.g. client_disconnected; for logs only."),
});

/**
 * Airlock extension `get-stream`: open the backend's standalone server→client stream (an
 * MCP client's `GET`). It has no deadline; it lives until the backend closes the stream or
 * the hub cancels it (`airlock_cancel`).
 */
export const AirlockStreamOpenCommand = z.looseObject({
  ...commandFields,
  command_type: z.literal(AIRLOCK_STREAM_OPEN),
});
export const StreamOpenCommand = AirlockStreamOpenCommand.extend(readerLeniency);
export type StreamOpenCommand = z.infer<typeof StreamOpenCommand>;

/**
 * What one entry of `commands` decodes to. A command whose `command_type` is
 * unknown, or that is malformed, is kept as `{ kind: "unknown" | "invalid" }`
 * so the agent can log it with its request id and carry on with the others.
 */
export type DecodedCommand =
  | { kind: "command"; command: KnownCommand }
  /** Airlock extension `airlock_cancel`: the hub's client went away; abort `cancelRequestId`, post nothing. */
  | { kind: "cancel"; requestId?: string; cancelRequestId: string; reason?: string }
  /** Airlock extension `airlock_stream_open` (get-stream). */
  | { kind: "stream"; requestId: string; command: StreamOpenCommand }
  | { kind: "unknown"; requestId?: string; commandType: string }
  | { kind: "invalid"; requestId?: string; reason: string };

const SCHEMAS: Record<string, z.ZodType<KnownCommand | StreamOpenCommand> | undefined> = {
  jsonrpc: JsonRpcCommand,
  session_termination: SessionTerminationCommand,
  oauth_discovery: OAuthDiscoveryCommand,
  [AIRLOCK_STREAM_OPEN]: StreamOpenCommand,
};

/** Decode one polled command without ever throwing. */
export function decodeCommand(raw: unknown): DecodedCommand {
  const record = raw && typeof raw === "object" && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
  const requestId = typeof record?.request_id === "string" ? record.request_id : undefined;
  if (!record) return { kind: "invalid", reason: "command is not a JSON object" };
  const type = record.command_type ?? "jsonrpc";
  if (type === AIRLOCK_CANCEL && typeof record.cancel_request_id === "string") {
    return {
      kind: "cancel",
      requestId,
      cancelRequestId: record.cancel_request_id,
      reason: typeof record.reason === "string" ? record.reason : undefined,
    };
  }
  // Own keys only: a `command_type` of "toString" is unknown, not Object.prototype's.
  const schema = Object.hasOwn(SCHEMAS, String(type)) ? SCHEMAS[String(type)] : undefined;
  if (!schema) return { kind: "unknown", requestId, commandType: String(type) };
  const parsed = schema.safeParse(record);
  if (!parsed.success) {
    return { kind: "invalid", requestId, reason: z.prettifyError(parsed.error) };
  }
  const command = parsed.data;
  return command.command_type === AIRLOCK_STREAM_OPEN
    ? { kind: "stream", requestId: command.request_id, command }
    : { kind: "command", command };
}

/** The 200 body of `GET /v1/tunnels/{id}/poll` as the agent reads it: entries are decoded one by one with {@link decodeCommand}. */
export const PolledCommandList = PolledCommandListContract.extend({ commands: z.array(z.unknown()) });
export type PolledCommandList = z.infer<typeof PolledCommandList>;

/** `GET /v1/tunnels/{id}`: clients depend on these three fields only; the service may add more. */
export const TunnelClientMetadata = z.looseObject({
  id: z.string().describe("Opaque tunnel id."),
  name: z.string().describe("Human-readable tunnel name."),
  description: z.string().describe("Human-readable tunnel description."),
});
export type TunnelClientMetadata = z.infer<typeof TunnelClientMetadata>;
