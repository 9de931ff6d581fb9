/**
 * List filtering: a tool, prompt or resource the policy would refuse is removed from
 * `tools/list` (and the other list results), so a client never offers a model
 * something it cannot call. Entries without a usable name are removed too: a client
 * might still show them, and no rule could judge them.
 */
import { isObject } from "../jsonrpc.ts";
import { evaluateTarget } from "./evaluate.ts";
import type { CallerIdentity } from "./identity.ts";
import type { Policy } from "./parse.ts";
import { LIST_METHODS, type ListMethod } from "../mcp/methods.ts";

/** One entry taken out of a list, and why. */
export interface RemovedEntry {
  name: string;
  rule: string;
  reason: string;
}

export interface FilteredList {
  /** The list result with refused entries removed (other fields kept). */
  result: unknown;
  removed: RemovedEntry[];
}

export interface FilterOptions {
  /** Names to remove whatever the rules say, with the rule and reason (tool pinning's blocked tools). */
  blocked?: ReadonlyMap<string, { rule: string; reason: string }>;
}

/** Remove refused entries from the `result` of a list method. A result of another shape comes back unchanged. */
export function filterListResult(
  policy: Policy,
  ctx: { tunnel: string; channel: string; identity?: CallerIdentity },
  method: ListMethod,
  result: unknown,
  options: FilterOptions = {},
): FilteredList {
  const { field, key, kind } = LIST_METHODS[method];
  if (!isObject(result) || !Array.isArray(result[field])) return { result, removed: [] };
  const removed: RemovedEntry[] = [];
  const kept = (result[field] as unknown[]).filter((entry, index) => {
    const name = isObject(entry) ? entry[key] : undefined;
    if (typeof name !== "string") {
      removed.push({ name: `${field}[${index}]`, rule: "guard:malformed", reason: `entry has no string ${key}` });
      return false;
    }
    const blocked = options.blocked?.get(name);
    if (blocked) {
      removed.push({ name, ...blocked });
      return false;
    }
    const decision = evaluateTarget(policy, { ...ctx, kind, name });
    if (decision.decision === "deny") removed.push({ name, rule: decision.rule, reason: decision.reason });
    return decision.decision === "allow";
  });
  return { result: { ...result, [field]: kept }, removed };
}

/** {@link filterListResult} for `tools/list`. */
export function filterToolList(
  policy: Policy,
  ctx: { tunnel: string; channel: string; identity?: CallerIdentity },
  listResult: unknown,
  options: FilterOptions = {},
): FilteredList {
  return filterListResult(policy, ctx, "tools/list", listResult, options);
}
