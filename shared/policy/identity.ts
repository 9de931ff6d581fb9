/**
 * Who is calling: the identity the hub established for a request, and the rule matchers
 * that test it (`subjects`, `emails`, `groups`, `clients` in docs/policy.md).
 *
 * Identity values come from the hub's own token store (what the OpenID provider said at
 * sign-in), never from a request header, so they are compared exactly: no folding. An
 * identity matcher never matches a request without an identity, so an allow rule for a
 * group admits no static-token caller and a deny rule for a person misses no one it names.
 */
import { compileGlob, type Glob } from "./glob.ts";

/** How the caller authenticated. */
export type AuthMethod = "oauth" | "static_token" | "none";

export interface CallerIdentity {
  /** OAuth: the provider's `sub`; static token: `token:` + the first 12 hex digits of the token's digest. */
  subject: string;
  email?: string;
  name?: string;
  groups: readonly string[];
  /** OAuth: the MCP client's client id at the hub. */
  client?: string;
  method: AuthMethod;
}

/** The identity matchers of one rule, compiled. */
export interface IdentityMatcher {
  readonly subjects?: readonly Glob[];
  readonly emails?: readonly Glob[];
  readonly groups?: readonly Glob[];
  readonly clients?: readonly Glob[];
}

const compileAll = (globs: readonly string[] | undefined, fold = false) =>
  globs?.map((glob) => compileGlob(fold ? glob.toLowerCase() : glob));

/** Compile a matcher's identity keys; undefined when it has none. */
export function compileIdentityMatcher(matcher: {
  subjects?: string[];
  emails?: string[];
  groups?: string[];
  clients?: string[];
}): IdentityMatcher | undefined {
  if (!matcher.subjects && !matcher.emails && !matcher.groups && !matcher.clients) return undefined;
  // Email addresses compare case-insensitively (providers differ in the case they return).
  return {
    subjects: compileAll(matcher.subjects),
    emails: compileAll(matcher.emails, true),
    groups: compileAll(matcher.groups),
    clients: compileAll(matcher.clients),
  };
}

const any = (globs: readonly Glob[], value: string | undefined) =>
  value !== undefined && globs.some((glob) => glob.test(value));

/** Does every identity key of the matcher hold for `identity`? `groups` holds when any group matches. */
export function identityMatches(matcher: IdentityMatcher, identity: CallerIdentity | undefined): boolean {
  if (!identity) return false;
  if (matcher.subjects && !any(matcher.subjects, identity.subject)) return false;
  if (matcher.emails && !any(matcher.emails, identity.email?.toLowerCase())) return false;
  if (matcher.groups && !identity.groups.some((group) => any(matcher.groups ?? [], group))) return false;
  if (matcher.clients && !any(matcher.clients, identity.client)) return false;
  return true;
}
