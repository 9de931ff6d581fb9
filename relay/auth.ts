/**
 * Credentials: agents present per-tunnel keys, MCP clients present bearer tokens.
 * The hub only ever holds SHA-256 digests; a presented secret is hashed and compared
 * against every configured digest in constant time, without early exit, so neither
 * timing nor the number of configured keys reveals which digest came close.
 */
import { sha256Hex } from "../shared/audit/digest.ts";

/** Compare two secrets (or digests) without an early exit. */
export function constantTimeEqual(a: string, b: string): boolean {
  // Digests are fixed-length hex; a length mismatch can only come from a bad config entry.
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i % Math.max(1, b.length));
  return diff === 0;
}

/** True when `secret` hashes to one of `digests`. */
export async function matchesDigest(secret: string, digests: readonly string[]): Promise<boolean> {
  const presented = await sha256Hex(secret);
  let match = false;
  for (const digest of digests) match = constantTimeEqual(presented, digest) || match;
  return match;
}
