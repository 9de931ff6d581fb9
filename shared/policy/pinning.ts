/**
 * Tool-definition pinning against the "rug pull": a server whose tool was reviewed
 * later changes its description (where poisoned instructions hide), schema or hints.
 * The first definition seen per tunnel, channel and tool name is pinned by digest; a
 * later, different one is *drift*, recorded beside the pin until someone approves it.
 * In `block` mode a drifted tool is removed from lists and calls to it are refused; in
 * `flag` mode both pass and the drift is reported; `off` does nothing.
 */
import { digestJson, type Digest } from "../audit/digest.ts";
import { isObject } from "../jsonrpc.ts";
import type { PolicyDecision } from "./evaluate.ts";
import type { PinningMode } from "./parse.ts";

/**
 * The tool fields a digest covers: what a client shows the model or acts on
 * (`annotations` such as `readOnlyHint` decide whether a client asks before running).
 * Left out: `_meta` and `icons`, which may change without changing what the tool does.
 */
export const PINNED_TOOL_FIELDS = [
  "name",
  "title",
  "description",
  "inputSchema",
  "outputSchema",
  "annotations",
] as const;

/** The `rule` of decisions pinning makes. */
export const PINNING_RULE = "tool_pinning";

/** The approved definition of one tool, and drift awaiting approval. */
export interface ToolPin {
  tunnel: string;
  channel: string;
  name: string;
  digest: Digest;
  /** When this digest was pinned or approved (RFC 3339). */
  pinned_at: string;
  /** The latest different definition seen, until approved or reverted. */
  drift?: { digest: Digest; seen_at: string };
}

/** Where pins live: a Durable Object's SQLite in the relay, memory in tests and the agent. */
export interface PinStore {
  get(tunnel: string, channel: string, name: string): ToolPin | undefined | Promise<ToolPin | undefined>;
  put(pin: ToolPin): void | Promise<void>;
}

/** An in-memory {@link PinStore}; `list()` shows every pin. */
export function createMemoryPinStore(): PinStore & { list(): ToolPin[] } {
  const pins = new Map<string, ToolPin>();
  const key = (tunnel: string, channel: string, name: string) => JSON.stringify([tunnel, channel, name]);
  return {
    get: (tunnel, channel, name) => {
      const pin = pins.get(key(tunnel, channel, name));
      return pin && structuredClone(pin);
    },
    put: (pin) => {
      pins.set(key(pin.tunnel, pin.channel, pin.name), structuredClone(pin));
    },
    list: () => [...pins.values()].map((pin) => structuredClone(pin)),
  };
}

/** `sha256:` digest of a tool's canonical JSON, restricted to {@link PINNED_TOOL_FIELDS}. */
export async function toolDigest(tool: unknown): Promise<Digest> {
  const picked: Record<string, unknown> = {};
  if (isObject(tool))
    for (const field of PINNED_TOOL_FIELDS) if (Object.hasOwn(tool, field)) picked[field] = tool[field];
  return digestJson(picked);
}

export type PinStatus = "new" | "same" | "changed" | "duplicate";

/** One tool of a list, compared with its pin. */
export interface PinCheck {
  name: string;
  status: PinStatus;
  digest: Digest;
  /** The pinned digest when the status is `changed`. */
  pinned?: Digest;
}

export interface PinReport {
  checks: PinCheck[];
  /** Tools to remove from the list (block mode): feed to `filterToolList(…, { blocked })`. */
  blocked: Map<string, { rule: string; reason: string }>;
  /** Drifted or duplicated tools let through (flag mode), for the audit log and alerts. */
  flagged: PinCheck[];
}

function driftReason(name: string, pinned: Digest, now: Digest): string {
  return `tool ${JSON.stringify(name)} changed since it was pinned (pinned ${pinned}, now ${now}); approve the new definition to use it`;
}

/**
 * Compare the tools of a `tools/list` result with their pins: a first-seen tool is
 * pinned, a changed one gets its drift recorded, one that changed back clears it. A
 * name listed twice is `duplicate` (a client might use either definition) and treated
 * like drift, without touching the store.
 */
export async function checkPins(
  store: PinStore,
  tunnel: string,
  channel: string,
  tools: readonly unknown[],
  options: { mode: PinningMode; now?: () => Date },
): Promise<PinReport> {
  const report: PinReport = { checks: [], blocked: new Map(), flagged: [] };
  if (options.mode === "off") return report;
  const now = (options.now ?? (() => new Date()))().toISOString();
  const named = tools.filter(
    (tool): tool is Record<string, unknown> & { name: string } => isObject(tool) && typeof tool.name === "string",
  );
  const counts = new Map<string, number>();
  for (const tool of named) counts.set(tool.name, (counts.get(tool.name) ?? 0) + 1);

  for (const tool of named) {
    const digest = await toolDigest(tool);
    let check: PinCheck;
    if ((counts.get(tool.name) ?? 0) > 1) {
      check = { name: tool.name, status: "duplicate", digest };
    } else {
      const pin = await store.get(tunnel, channel, tool.name);
      if (!pin) {
        await store.put({ tunnel, channel, name: tool.name, digest, pinned_at: now });
        check = { name: tool.name, status: "new", digest };
      } else if (pin.digest === digest) {
        if (pin.drift) await store.put({ tunnel, channel, name: tool.name, digest, pinned_at: pin.pinned_at });
        check = { name: tool.name, status: "same", digest };
      } else {
        if (pin.drift?.digest !== digest) await store.put({ ...pin, drift: { digest, seen_at: now } });
        check = { name: tool.name, status: "changed", digest, pinned: pin.digest };
      }
    }
    report.checks.push(check);
    if (check.status !== "changed" && check.status !== "duplicate") continue;
    if (options.mode === "flag") report.flagged.push(check);
    else {
      const reason = check.pinned
        ? driftReason(check.name, check.pinned, check.digest)
        : `tool ${JSON.stringify(check.name)} is listed more than once with different definitions`;
      report.blocked.set(check.name, { rule: PINNING_RULE, reason });
    }
  }
  return report;
}

/**
 * Pinning's say on a `tools/call` (after the policy allowed it): in block mode a call
 * to a drifted tool is refused naming both digests; in flag mode it is allowed with a
 * reason for the audit; `undefined` when pinning has nothing to say.
 */
export async function checkPinnedCall(
  store: PinStore,
  mode: PinningMode,
  ctx: { tunnel: string; channel: string; tool: string },
): Promise<PolicyDecision | undefined> {
  if (mode === "off") return undefined;
  const pin = await store.get(ctx.tunnel, ctx.channel, ctx.tool);
  if (!pin?.drift) return undefined;
  const reason = driftReason(ctx.tool, pin.digest, pin.drift.digest);
  return mode === "block"
    ? { decision: "deny", rule: PINNING_RULE, reason }
    : { decision: "allow", rule: PINNING_RULE, reason: `flagged: ${reason}` };
}

/**
 * Approve a tool definition: the drifted digest becomes the pin. `digest` must be the
 * one under review (the drift's), so a definition that changed again after review is
 * not approved by accident. Approving a tool never seen pins it in advance.
 */
export async function approvePin(
  store: PinStore,
  ctx: { tunnel: string; channel: string; tool: string; digest: Digest },
  options: { now?: () => Date } = {},
): Promise<{ ok: true; pin: ToolPin } | { ok: false; reason: string }> {
  const now = (options.now ?? (() => new Date()))().toISOString();
  const pin = await store.get(ctx.tunnel, ctx.channel, ctx.tool);
  if (pin && pin.digest === ctx.digest && !pin.drift) return { ok: true, pin };
  if (pin && pin.drift?.digest !== ctx.digest && pin.digest !== ctx.digest) {
    const seen = pin.drift ? `the pending definition is ${pin.drift.digest}` : "no change is pending";
    return {
      ok: false,
      reason: `cannot approve ${ctx.digest} for tool ${JSON.stringify(ctx.tool)}: ${seen}; list the tools again and approve the digest shown`,
    };
  }
  const approved: ToolPin = {
    tunnel: ctx.tunnel,
    channel: ctx.channel,
    name: ctx.tool,
    digest: ctx.digest,
    pinned_at: now,
  };
  await store.put(approved);
  return { ok: true, pin: approved };
}
