/**
 * OAuth auto-registration: which URLs found during OAuth discovery of a protected MCP
 * server (protected-resource metadata, its authorization server's metadata) become Harpoon
 * targets, so the tunnel service's OAuth shim can reach them as `harpoon://<label>`.
 *
 * This is what tunnel-client's `harpoon.hosts_include_*` settings govern — and only this:
 * they never gate configured targets, which the operator allowlisted by hand. A discovered
 * URL is admitted when its host classifies as private (loopback / RFC 1918 + ULA literal
 * addresses, a listed suffix, a matching pattern), or when it shares the protected
 * resource's host (or is a subdomain of it). A URL that discovery could not vouch for
 * (`disallowPrivateHostRegistration`: it came from outside the trusted MCP origin) is
 * admitted only on the protected resource's exact origin, never for looking private —
 * otherwise a hostile metadata document could point Harpoon at any internal address.
 */
import type { Logger } from "../../shared/log.ts";
import { compilePattern, patternProblem } from "../../shared/policy/pattern.ts";
import { normalizeTags, normalizeToken, type HarpoonRegistry, type HarpoonTarget } from "./registry.ts";

export interface HostClassifierOptions {
  /** `127.0.0.0/8`, `::1` (and their IPv4-mapped forms). */
  includeLoopback: boolean;
  /** `10/8`, `172.16/12`, `192.168/16`, `fc00::/7`. */
  includePrivate: boolean;
  /** Host suffixes (`corp.example` matches itself and `*.corp.example`). */
  suffixes: readonly string[];
  /** Patterns matched case-insensitively, unanchored, against the host name. */
  patterns: readonly string[];
}

/** `private` and, when so, why (`loopback`, `private-ip`, `suffix:.corp`, `regex:…`). */
export interface HostClass {
  private: boolean;
  reason: string;
}

export type HostClassifier = (host: string) => HostClass;

function ipv4Octets(host: string): number[] | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!match) return undefined;
  const octets = match.slice(1).map(Number);
  return octets.every((octet) => octet <= 255) ? octets : undefined;
}

/** The IPv4 address inside `::ffff:a.b.c.d` / `::ffff:xxxx:yyyy` (how URLs write mapped addresses). */
function mappedIpv4(host: string): number[] | undefined {
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (dotted) return ipv4Octets(dotted[1]!);
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (!hex) return undefined;
  const high = parseInt(hex[1]!, 16);
  const low = parseInt(hex[2]!, 16);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff];
}

function classifyIp(host: string): "loopback" | "private-ip" | "public" | undefined {
  const v4 = ipv4Octets(host) ?? (host.includes(":") ? mappedIpv4(host) : undefined);
  if (v4) {
    const [a, b] = v4 as [number, number];
    if (a === 127) return "loopback";
    if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return "private-ip";
    return "public";
  }
  if (!host.includes(":")) return undefined;
  if (host === "::1") return "loopback";
  const first = host.startsWith("::") ? 0 : parseInt(host.split(":")[0]!, 16);
  return (first & 0xfe00) === 0xfc00 ? "private-ip" : "public";
}

/** Host name as compared: lower case, no IPv6 brackets, no trailing dot. */
export function normalizeHost(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
}

/** Build the classifier `hosts_include_*` describe. Literal addresses only: names are never resolved. */
export function createHostClassifier(options: HostClassifierOptions): HostClassifier {
  const suffixes = options.suffixes
    .map((suffix) => suffix.trim().toLowerCase())
    .filter((suffix) => suffix !== "")
    .map((suffix) => (suffix.startsWith(".") ? suffix : `.${suffix}`));
  // RE2, as tunnel-client's Go regexp and Airlock's policy patterns: discovery classifies hosts a
  // server named, and a backtracking engine could stall the agent on one (the config refuses the rest).
  const patterns = options.patterns.flatMap((pattern) => {
    const source = pattern.trim();
    if (source === "" || patternProblem(source)) return [];
    return [{ source, regex: compilePattern(`(?i)${source}`).regex }];
  });
  return (raw) => {
    const host = normalizeHost(raw);
    if (host === "") return { private: false, reason: "" };
    const ip = classifyIp(host);
    if (ip === "loopback" && options.includeLoopback) return { private: true, reason: "loopback" };
    if (ip === "private-ip" && options.includePrivate) return { private: true, reason: "private-ip" };
    for (const suffix of suffixes) {
      if (host === suffix.slice(1) || host.endsWith(suffix)) return { private: true, reason: `suffix:${suffix}` };
    }
    for (const pattern of patterns) {
      if (pattern.regex.test(host)) return { private: true, reason: `regex:${pattern.source}` };
    }
    return { private: false, reason: "" };
  };
}

/** One URL found by OAuth discovery, with the role it plays. */
export interface DiscoveredUrl {
  url: string | URL;
  description?: string;
  /** `oauth` for OAuth discovery. */
  source?: string;
  /** `prmd-resource`, `prmd-auth-server`, `prmd-source`, `auth-server-metadata`, `issuer`, `token-endpoint`, … */
  role?: string;
  /** Which authorization server (discovery uses only `authorization_servers[0]`, so `0`). */
  index?: string | number;
  /** Groups the URLs of one authorization server. */
  group?: string;
  unixSocket?: string;
  /** Discovery could not vouch for this URL (it is outside the trusted MCP origin). */
  disallowPrivateHostRegistration?: boolean;
}

const ROLE_TAGS: Record<string, string[]> = {
  "prmd-resource": ["protected-resource-metadata", "resource"],
  "prmd-auth-server": ["protected-resource-metadata", "authorization-server"],
  "prmd-source": ["protected-resource-metadata", "source-url"],
  "auth-server-metadata": ["auth-server-metadata"],
  issuer: ["auth-server-metadata", "issuer"],
  "authorization-endpoint": ["auth-server-metadata", "authorization-endpoint"],
  "token-endpoint": ["auth-server-metadata", "token-endpoint"],
  "jwks-uri": ["auth-server-metadata", "jwks-uri"],
  "introspection-endpoint": ["auth-server-metadata", "introspection-endpoint"],
  "registration-endpoint": ["auth-server-metadata", "registration-endpoint"],
  "revocation-endpoint": ["auth-server-metadata", "revocation-endpoint"],
};

const REGISTRATION_SCOPE = "oauth-protected-resource-host";
/** tunnel-client gives up looking for a free `-n` label after this many. */
const MAX_COLLISIONS = 10_000;

function parse(url: string | URL): URL | undefined {
  try {
    const parsed = typeof url === "string" ? new URL(url) : url;
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function isOauth(record: DiscoveredUrl): boolean {
  return normalizeToken(record.source ?? "") === "oauth";
}

/**
 * The protected resource's hosts: URLs from the resource's own origin may be registered
 * whatever their host, and so may its subdomains — except for a single-label host or an IP
 * literal, which only match exactly. (tunnel-client asks the public-suffix list whether a
 * name has a registrable domain; a name with a dot stands in for that here.)
 */
function resourceHostPolicy(records: DiscoveredUrl[]): (record: DiscoveredUrl, url: URL) => boolean {
  const hosts: Array<{ host: string; subdomains: boolean }> = [];
  const origins = new Set<string>();
  for (const record of records) {
    if (!isOauth(record) || record.disallowPrivateHostRegistration) continue;
    const role = normalizeToken(record.role ?? "");
    if (role !== "prmd-resource" && role !== "prmd-source") continue;
    const url = parse(record.url);
    if (!url) continue;
    origins.add(url.origin);
    const host = normalizeHost(url.hostname);
    const literal = classifyIp(host) !== undefined;
    if (host !== "" && !hosts.some((entry) => entry.host === host))
      hosts.push({ host, subdomains: !literal && host.includes(".") });
  }
  return (record, url) => {
    if (!isOauth(record)) return false;
    if (record.disallowPrivateHostRegistration) return origins.has(url.origin);
    const host = normalizeHost(url.hostname);
    return hosts.some((entry) => host === entry.host || (entry.subdomains && host.endsWith(`.${entry.host}`)));
  };
}

function admit(record: DiscoveredUrl, url: URL, classify: HostClassifier, sameResource: boolean): HostClass {
  const { private: isPrivate, reason } = classify(url.hostname);
  if (record.disallowPrivateHostRegistration) {
    if (sameResource) return { private: true, reason: REGISTRATION_SCOPE };
    return { private: false, reason: isPrivate ? "private-host-registration-disabled" : reason };
  }
  if (isPrivate) return { private: true, reason };
  if (sameResource) return { private: true, reason: REGISTRATION_SCOPE };
  return { private: false, reason };
}

function sanitizeLabel(raw: string): string {
  let label = raw
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^[-_]+|[-_]+$/g, "");
  if (label === "") return "";
  if (!/^[a-z0-9]/.test(label)) label = `x${label}`;
  return label.slice(0, 64);
}

function withSuffix(base: string, n: number): string {
  if (n === 0) return base;
  const suffix = `-${n}`;
  let trimmed = base.slice(0, 64 - suffix.length);
  if (trimmed.length < base.length) trimmed = trimmed.replace(/[-_]+$/, "") || "x";
  return trimmed + suffix;
}

/**
 * Register the admissible URLs of one discovery result as targets labelled
 * `oauth-<role>-<index>` (`-1`, `-2` … on collision); returns those registered. URLs that
 * are not admitted, or that the registry refuses (plaintext, bad URL), are logged and skipped.
 */
export function registerDiscovered(
  registry: HarpoonRegistry,
  classify: HostClassifier,
  records: DiscoveredUrl[],
  log: Logger,
): HarpoonTarget[] {
  const sameResource = resourceHostPolicy(records);
  const registered: HarpoonTarget[] = [];
  for (const [position, record] of records.entries()) {
    const url = parse(record.url);
    const role = record.role ?? "";
    if (!url) {
      log.info("harpoon auto-registration skipped: not an http(s) URL", { role });
      continue;
    }
    const verdict = admit(record, url, classify, sameResource(record, url));
    if (!verdict.private) {
      log.info("harpoon auto-registration skipped: host not admitted", {
        host: url.hostname,
        role,
        reason: verdict.reason,
      });
      continue;
    }
    const base = sanitizeLabel(
      ["oauth", role, String(record.index ?? position)].filter((part) => part !== "").join("-"),
    );
    let label = "";
    for (let n = 0; n < MAX_COLLISIONS && label === ""; n++) {
      const candidate = withSuffix(base, n);
      if (!registry.lookup(candidate)) label = candidate;
    }
    if (label === "") {
      log.warn("harpoon auto-registration skipped: no free label", { base });
      continue;
    }
    const roleKey = normalizeToken(role);
    const tags = roleKey === "" ? [] : [...(ROLE_TAGS[roleKey] ?? [roleKey])];
    const group = normalizeToken(record.group ?? "");
    if (group !== "") tags.push(`group=${group}`);
    try {
      const target = registry.register({
        label,
        url,
        category: record.source,
        tags: normalizeTags(tags),
        inclusionReason: verdict.reason,
        ...(record.description ? { description: record.description } : {}),
        ...(record.unixSocket ? { unixSocket: record.unixSocket } : {}),
      });
      registered.push(target);
      log.info("harpoon target auto-registered", { label, host: url.hostname, role, reason: verdict.reason });
    } catch (error) {
      log.warn("harpoon auto-registration failed", {
        label,
        role,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return registered;
}
