/**
 * Commands the control plane hands to an agent in a poll response
 * (`PolledCommandList` in openapi.json). Unknown fields are ignored, never rejected:
 * the service may add fields at any time.
 */
import { z } from "zod";

/** Name → list of values, the header shape used on both directions of the wire. */
export const HeaderMap = z.record(z.string(), z.array(z.string()));
export type HeaderMap = z.infer<typeof HeaderMap>;

const CommandBase = z.looseObject({
  request_id: z.string().min(1),
  shard_token: z.string(),
  channel: z.string().nullish(),
  created_at: z.string(),
  response_timeout: z.unknown().optional(),
  headers: HeaderMap.nullish(),
});

/** A JSON-RPC request, notification or response for the MCP server, to be forwarded untouched. */
export const JsonRpcCommand = CommandBase.extend({
  command_type: z.literal("jsonrpc").default("jsonrpc"),
  jsonrpc: z.record(z.string(), z.unknown()),
});
export type JsonRpcCommand = z.infer<typeof JsonRpcCommand>;

/** Close the MCP session named by the `Mcp-Session-Id` header. */
export const SessionTerminationCommand = CommandBase.extend({
  command_type: z.literal("session_termination"),
});
export type SessionTerminationCommand = z.infer<typeof SessionTerminationCommand>;

export const KnownCommand = z.union([SessionTerminationCommand, JsonRpcCommand]);
export type KnownCommand = z.infer<typeof KnownCommand>;

/**
 * Extension command types. An Airlock hub sends them only to agents that declared the
 * matching capability in `X-Airlock-Capabilities` (see relay/README.md).
 */
export const AIRLOCK_CANCEL = "airlock_cancel";
export const AIRLOCK_STREAM_OPEN = "airlock_stream_open";

/**
 * Airlock extension `get-stream`: open the backend's standalone server→client stream (an
 * MCP client's `GET`). It has no deadline; it lives until the backend closes the stream or
 * the hub cancels it (`airlock_cancel`).
 */
export const StreamOpenCommand = CommandBase.extend({
  command_type: z.literal(AIRLOCK_STREAM_OPEN),
});
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

/** Decode one polled command without ever throwing. */
export function decodeCommand(raw: unknown): DecodedCommand {
  const record = (raw && typeof raw === "object" && !Array.isArray(raw)) ? raw as Record<string, unknown> : undefined;
  const requestId = typeof record?.request_id === "string" ? record.request_id : undefined;
  if (!record) return { kind: "invalid", reason: "command is not a JSON object" };
  const type = record.command_type ?? "jsonrpc";
  if (type === AIRLOCK_CANCEL && typeof record.cancel_request_id === "string") {
    return { kind: "cancel", requestId, cancelRequestId: record.cancel_request_id, reason: typeof record.reason === "string" ? record.reason : undefined };
  }
  if (type !== "jsonrpc" && type !== "session_termination" && type !== AIRLOCK_STREAM_OPEN) {
    return { kind: "unknown", requestId, commandType: String(type) };
  }
  const schema = type === AIRLOCK_STREAM_OPEN ? StreamOpenCommand : type === "session_termination" ? SessionTerminationCommand : JsonRpcCommand;
  const parsed = schema.safeParse(record);
  if (!parsed.success) {
    return { kind: "invalid", requestId, reason: z.prettifyError(parsed.error) };
  }
  const command = parsed.data;
  return command.command_type === AIRLOCK_STREAM_OPEN ? { kind: "stream", requestId: command.request_id, command } : { kind: "command", command };
}

/** The 200 body of `GET /v1/tunnels/{id}/poll`. Entries are decoded one by one with {@link decodeCommand}. */
export const PolledCommandList = z.looseObject({ commands: z.array(z.unknown()) });
export type PolledCommandList = z.infer<typeof PolledCommandList>;

/** `GET /v1/tunnels/{id}`: clients depend on these three fields only. */
export const TunnelClientMetadata = z.looseObject({
  id: z.string(),
  name: z.string(),
  description: z.string(),
});
export type TunnelClientMetadata = z.infer<typeof TunnelClientMetadata>;
