/** The tunnel wire protocol: schemas and rules both agent and hub follow. See docs/protocol.md. */
export * from "./commands.ts";
export * from "./responses.ts";
export * from "./duration.ts";
export * from "./failure.ts";
export * from "./headers.ts";
export * from "./channels.ts";
export * from "./extensions.ts";

/** Headers every agent → control plane call carries. */
export const CLIENT_HEADERS = {
  name: "X-Tunnel-Client-Name",
  version: "X-Tunnel-Client-Version",
  instanceId: "X-Tunnel-Client-Instance-Id",
  serverInfo: "X-Tunnel-MCP-Server-Info",
  shardToken: "X-Tunnel-Shard-Token",
  /** Airlock extension negotiation; see docs/protocol.md "Airlock extensions". */
  capabilities: "X-Airlock-Capabilities",
  /** Airlock extension `lease`: `renew` on a poll makes it lease-only (it is handed no command). */
  lease: "X-Airlock-Lease",
  /** Sent by an Airlock hub on agent API answers: the largest response post it accepts, in bytes. */
  maxResponseBytes: "X-Airlock-Max-Response-Bytes",
} as const;

/** Poll bounds from the contract. */
export const POLL_LIMIT_MAX = 25;
export const DEFAULT_POLL_TIMEOUT_MS = 30_000;
export const DEFAULT_POLL_GUARDRAIL_MS = 5_000;
export const MAX_POLL_DEADLINE_MS = 600_000;
