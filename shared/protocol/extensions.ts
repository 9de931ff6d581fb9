/**
 * Airlock's extensions to the tunnel protocol (docs/protocol.md "Airlock extensions"). They
 * run only between an Airlock hub and an Airlock agent: the agent declares what it
 * implements in `X-Airlock-Capabilities`, the hub answers with what it offers, and the hub
 * never sends an extension command to an agent that did not declare it (any other client
 * would drop it). One list, read by both halves.
 */

/** Every extension, in the order both sides write them in `X-Airlock-Capabilities`. */
export const AIRLOCK_CAPABILITIES = ["cancel", "server-requests", "get-stream", "lease", "identity"] as const;
export type Capability = (typeof AIRLOCK_CAPABILITIES)[number];

/** The header value: a comma list. */
export const AIRLOCK_CAPABILITIES_HEADER_VALUE = AIRLOCK_CAPABILITIES.join(",");

/** Extension `identity`: the hub drops clients' `X-Airlock-Identity` and may set its own signed one (headers.ts). */
export const AIRLOCK_IDENTITY = "identity";
/** Extension `cancel`: the hub's client went away; the agent aborts `cancel_request_id` and posts nothing. */
export const AIRLOCK_CANCEL = "airlock_cancel";
/** Extension `get-stream`: open the backend's standalone server→client stream (an MCP client's `GET`). */
export const AIRLOCK_STREAM_OPEN = "airlock_stream_open";

/** Read a declared `X-Airlock-Capabilities` value: the known extensions it names, unknown ones dropped. */
export function parseCapabilities(value: string | null | undefined): Capability[] {
  const declared = (value ?? "").split(",").map((s) => s.trim().toLowerCase());
  return AIRLOCK_CAPABILITIES.filter((cap) => declared.includes(cap));
}
