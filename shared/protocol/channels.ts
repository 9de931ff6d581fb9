/**
 * Channels name logical MCP bindings on one tunnel. The service accepts lowercase
 * letters, digits, hyphens and underscores (`invalid_channel_format` otherwise); an
 * absent channel means `main`.
 */
import { z } from "zod";

export const DEFAULT_CHANNEL = "main";
/** The service's rule (tunnel-client `pkg/types/channel.go`): a leading '_' or '-' is allowed. */
const CHANNEL_PATTERN = /^[a-z0-9_-]{1,64}$/;

/** Normalise a channel as received (trim, lower-case, default `main`); `undefined` when invalid. */
export function normalizeChannel(raw: string | null | undefined): string | undefined {
  if (raw === null || raw === undefined) return DEFAULT_CHANNEL;
  const value = raw.trim().toLowerCase();
  if (value === "") return DEFAULT_CHANNEL;
  return CHANNEL_PATTERN.test(value) ? value : undefined;
}

/** A channel name as written in configuration: already canonical. */
export const ChannelName = z
  .string()
  .regex(CHANNEL_PATTERN, "channel names use lowercase letters, digits, '-' and '_' (at most 64)");

/** `X-Tunnel-MCP-Server-Info`: which channels this agent serves and which are process-affine. */
export interface ServerInfoChannel {
  name: string;
  proc_affinity?: true;
}
export const MAX_SERVER_INFO_CHANNELS = 32;
export const MAX_SERVER_INFO_BYTES = 4096;

export const ServerInfo = z.strictObject({
  version: z.literal(1),
  channels: z
    .array(z.strictObject({ name: ChannelName, proc_affinity: z.boolean().optional() }))
    .max(MAX_SERVER_INFO_CHANNELS),
});
export type ServerInfo = z.infer<typeof ServerInfo>;

/**
 * Encode the header value: compact JSON with only `version`, `channels[].name` and
 * `proc_affinity: true` where a binding is process-local. Throws when the declaration
 * would break the contract's bounds (more than 32 channels, over 4096 bytes, duplicates).
 */
export function encodeServerInfo(channels: ReadonlyArray<{ name: string; procAffinity: boolean }>): string {
  const seen = new Set<string>();
  const list: ServerInfoChannel[] = [];
  for (const channel of channels) {
    if (seen.has(channel.name)) throw new Error(`channel "${channel.name}" is declared twice`);
    seen.add(channel.name);
    list.push(channel.procAffinity ? { name: channel.name, proc_affinity: true } : { name: channel.name });
  }
  if (list.length > MAX_SERVER_INFO_CHANNELS)
    throw new Error(`at most ${MAX_SERVER_INFO_CHANNELS} channels can be declared, got ${list.length}`);
  const value = JSON.stringify({ version: 1, channels: list });
  if (new TextEncoder().encode(value).length > MAX_SERVER_INFO_BYTES)
    throw new Error(`the channel declaration exceeds ${MAX_SERVER_INFO_BYTES} bytes`);
  return value;
}

/** Headers decoded lately: an agent sends the same one on every poll and response post. */
const recentServerInfo = new Map<string, ServerInfo | undefined>();
/** Bounded, so agents (or anyone) sending ever new values cost a fixed amount of memory. */
const RECENT_SERVER_INFO_MAX = 64;

/**
 * Parse the header as a hub receives it; `undefined` when absent or invalid (it is additive
 * metadata). The result is shared between calls with the same header: treat it as read-only.
 */
export function decodeServerInfo(value: string | null | undefined): ServerInfo | undefined {
  if (!value || value.length > MAX_SERVER_INFO_BYTES) return undefined;
  if (recentServerInfo.has(value)) return recentServerInfo.get(value);
  let decoded: ServerInfo | undefined;
  try {
    const parsed = ServerInfo.safeParse(JSON.parse(value));
    decoded = parsed.success ? parsed.data : undefined;
  } catch {
    decoded = undefined;
  }
  if (recentServerInfo.size >= RECENT_SERVER_INFO_MAX) recentServerInfo.delete(recentServerInfo.keys().next().value!);
  recentServerInfo.set(value, decoded);
  return decoded;
}

/** Tunnel ids: `tunnel_` + 32 lowercase alphanumerics. Only config validation and the hub check the format. */
export const TUNNEL_ID_PATTERN = /^tunnel_[a-z0-9]{32}$/;
