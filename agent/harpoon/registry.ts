/**
 * Harpoon's allowlist: labelled targets, each one exact URL. A call names a label, never a
 * URL, and a redirect is followed only when its destination is, exactly, the URL of some
 * registered target — not a path under it, not another port — the rule tunnel-client keeps.
 *
 * URLs are compared in WHATWG-normalised form (scheme and host lower-cased, default port
 * dropped, an empty path written `/`): two spellings that normalise alike send the same
 * request line to the same origin, so treating them as one target loses nothing.
 */

/** Labels as tunnel-client accepts them; also the `label` pattern in the tool schemas. */
export const LABEL_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$";
const LABEL = new RegExp(LABEL_PATTERN);

/** tunnel-client's ceiling on registered targets (configured plus auto-registered). */
export const MAX_TARGETS = 10_000;

/** One allowlisted target as the registry holds it. */
export interface HarpoonTarget {
  label: string;
  /** The exact URL calls go to. */
  url: URL;
  /** The URL as configured or discovered, before normalisation (an OAuth audience must match it byte for byte). */
  written: string;
  description?: string;
  /** `config` for configured targets, `oauth` for OAuth-discovered ones. */
  category: string;
  source: string;
  /** Lower-case, de-duplicated, sorted (OAuth roles such as `token-endpoint`). */
  tags: string[];
  /** Dial this Unix socket instead of TCP; the URL stays the logical HTTP URL. */
  unixSocket?: string;
  /** Why an auto-registered target was admitted (`loopback`, `suffix:.corp`, …). */
  inclusionReason?: string;
}

/** What `register` accepts: a URL as text or parsed, the rest optional. */
export interface TargetInput {
  label: string;
  url: string | URL;
  description?: string;
  category?: string;
  source?: string;
  tags?: string[];
  unixSocket?: string;
  inclusionReason?: string;
}

/** A target the registry refuses; the message names the label and what to change. */
export class HarpoonTargetError extends Error {
  override name = "HarpoonTargetError";
}

export interface HarpoonRegistry {
  /** Plaintext `http:` targets (and redirects to them) are refused unless this is set. */
  readonly allowPlaintext: boolean;
  /** Validate and add a target; throws {@link HarpoonTargetError}. */
  register(input: TargetInput): HarpoonTarget;
  lookup(label: string): HarpoonTarget | undefined;
  /** Registration order. */
  targets(): HarpoonTarget[];
  /** The first registered target whose URL is exactly `url`, if any (plaintext only when allowed). */
  match(url: URL): HarpoonTarget | undefined;
}

export function normalizeToken(value: string): string {
  return value.trim().toLowerCase();
}

/** Trimmed, lower-cased, de-duplicated and sorted, as tunnel-client stores and filters tags. */
export function normalizeTags(tags: readonly string[] | undefined): string[] {
  return [...new Set((tags ?? []).map(normalizeToken).filter((tag) => tag !== ""))].sort();
}

/** True when every tag in `required` is among `tags` (case-insensitively). */
export function hasAllTags(tags: readonly string[], required: readonly string[]): boolean {
  const present = new Set(tags.map(normalizeToken));
  return required.every((tag) => present.has(normalizeToken(tag)));
}

/**
 * A `.` or `..` path segment, literal or percent-encoded, in the URL as written. The URL
 * parser would silently resolve them, so the allowlisted URL would not be the one the
 * operator wrote; refusing it is clearer.
 */
function hasTraversal(raw: string): boolean {
  const path = raw.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "").split(/[?#]/, 1)[0] ?? "";
  return path.split("/").some((segment) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return true;
    }
    return decoded === "." || decoded === "..";
  });
}

function isPlaintext(url: URL): boolean {
  return url.protocol === "http:";
}

/** The registry, seeded with `targets` (configured first). Throws on the first bad one. */
export function createRegistry(options: { allowPlaintext: boolean; targets?: TargetInput[] }): HarpoonRegistry {
  const byLabel = new Map<string, HarpoonTarget>();
  const ordered: HarpoonTarget[] = [];
  const allowPlaintext = options.allowPlaintext;

  const registry: HarpoonRegistry = {
    allowPlaintext,
    register(input) {
      const label = input.label.trim();
      if (!LABEL.test(label)) {
        throw new HarpoonTargetError(
          `Harpoon target label "${label}" is invalid: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit`,
        );
      }
      const raw = typeof input.url === "string" ? input.url.trim() : input.url.href;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new HarpoonTargetError(
          `Harpoon target ${label}: "${raw}" is not an absolute URL; write it as https://host[:port]/path`,
        );
      }
      if (url.protocol !== "https:" && url.protocol !== "http:") {
        throw new HarpoonTargetError(
          `Harpoon target ${label}: only http and https URLs can be targets, not ${url.protocol.replace(/:$/, "")}`,
        );
      }
      if (url.hostname === "") throw new HarpoonTargetError(`Harpoon target ${label}: the URL has no host`);
      if (isPlaintext(url) && !allowPlaintext) {
        throw new HarpoonTargetError(
          `Harpoon target ${label}: ${url.origin} is plaintext http; use https or set harpoon.allow_plaintext_http`,
        );
      }
      if (typeof input.url === "string" && hasTraversal(raw)) {
        throw new HarpoonTargetError(
          `Harpoon target ${label}: the URL path contains '.' or '..' segments; write the path it should reach`,
        );
      }
      if (byLabel.has(label))
        throw new HarpoonTargetError(`Harpoon target label ${label} is registered twice; labels must be unique`);
      if (ordered.length >= MAX_TARGETS)
        throw new HarpoonTargetError(`Harpoon already has ${MAX_TARGETS} targets; ${label} was not registered`);
      const source = normalizeToken(input.category || input.source || "");
      const target: HarpoonTarget = {
        label,
        url,
        written: raw,
        category: source,
        source,
        tags: normalizeTags(input.tags),
      };
      const description = input.description?.trim();
      if (description) target.description = description;
      const socket = input.unixSocket?.trim();
      if (socket) target.unixSocket = socket;
      const reason = input.inclusionReason?.trim();
      if (reason) target.inclusionReason = reason;
      byLabel.set(label, target);
      ordered.push(target);
      return target;
    },
    lookup: (label) => byLabel.get(label.trim()),
    targets: () => [...ordered],
    match(url) {
      if (isPlaintext(url) && !allowPlaintext) return undefined;
      return ordered.find((target) => target.url.href === url.href);
    },
  };
  for (const [index, target] of (options.targets ?? []).entries()) {
    try {
      registry.register(target);
    } catch (error) {
      if (error instanceof HarpoonTargetError)
        throw new HarpoonTargetError(`harpoon.targets[${index}]: ${error.message}`);
      throw error;
    }
  }
  return registry;
}
