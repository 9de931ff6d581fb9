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

/** Secrets hashed lately, and their digests: a client or agent presents the same one on every call. */
const recentDigests = new Map<string, string>();
/** Bounded, so a stream of made-up tokens costs a fixed amount of memory (they only push each other out). */
const RECENT_DIGESTS_MAX = 256;

/**
 * `sha256Hex(secret)`, remembered for the secrets presented lately. Every request is
 * authenticated by hashing its credential (and an MCP call hashes it once more for session
 * ownership): WebCrypto's digest is a round trip to a thread pool on Node and one of the
 * larger per-call costs in the local front proxy (docs/performance.md). A hit answers as a
 * miss would, only sooner; what it could tell by timing (that someone sent this very secret
 * lately) is known only to whoever holds the secret already.
 */
export async function secretDigest(secret: string): Promise<string> {
  const known = recentDigests.get(secret);
  if (known !== undefined) return known;
  const digest = await sha256Hex(secret);
  if (recentDigests.size >= RECENT_DIGESTS_MAX) recentDigests.delete(recentDigests.keys().next().value!);
  recentDigests.set(secret, digest);
  return digest;
}

/** True when `secret` hashes to one of `digests`. */
export async function matchesDigest(secret: string, digests: readonly string[]): Promise<boolean> {
  const presented = await secretDigest(secret);
  let match = false;
  for (const digest of digests) match = constantTimeEqual(presented, digest) || match;
  return match;
}
