/**
 * A backend's `tools: {allow, deny}` filter: which of its tools an aggregated channel
 * exposes. A tool is exposed when it matches some `allow` glob (or no `allow` list is
 * given) and no `deny` glob; deny wins. Patterns are matched against the backend's own
 * tool name (`search*`, not `wiki__search*`), with the policy language's globs
 * (`*` any run, `?` one character, `\` escapes).
 */
import { compileGlob } from "../../shared/policy/glob.ts";
import type { ToolFilter } from "../config/types.ts";

export interface NameFilter {
  /** False when the filter hides nothing. */
  readonly active: boolean;
  allows(name: string): boolean;
}

/** Lets every name through. */
export const ALLOW_ALL: NameFilter = { active: false, allows: () => true };

/** Compile a backend's tool filter (the config schema has already refused unusable globs). */
export function compileToolFilter(filter: ToolFilter | undefined): NameFilter {
  if (!filter || (filter.allow === undefined && filter.deny === undefined)) return ALLOW_ALL;
  const allow = filter.allow?.map(compileGlob);
  const deny = (filter.deny ?? []).map(compileGlob);
  return {
    active: true,
    allows: (name) =>
      (allow === undefined || allow.some((glob) => glob.test(name))) && !deny.some((glob) => glob.test(name)),
  };
}
