/**
 * Pure merging for an aggregated channel: the one `initialize` answer built from the
 * backends' answers, and list pages that span backends.
 *
 * Pagination. An aggregate cursor is opaque to the client and holds, for every backend
 * not yet exhausted, the backend's own cursor and how many of that backend page's items
 * were already handed out. A page request fetches the current page of each of those
 * backends in parallel and hands out their items in route order (all of them, or up to
 * `pageSize`); a backend whose page was handed out completely moves on to its own
 * `nextCursor`, or drops out. As long as the backends' own paging is stable, every item
 * is returned exactly once.
 */
import { isObject } from "../../shared/jsonrpc.ts";
import type { ListMethod } from "../../shared/mcp/methods.ts";

/** What one backend answered to `initialize`. */
export interface MemberInitialize {
  name: string;
  protocolVersion: string;
  capabilities: Record<string, unknown>;
  instructions?: string;
}

/**
 * Capabilities the aggregate serves: the union of the backends'. Only the features the
 * aggregate routes are announced (tools, prompts, resources, logging, completions);
 * `experimental`, `tasks` and the like would promise methods it cannot route.
 * `listChanged` is always announced for lists: a backend that recovers later joins
 * the session, and the aggregate tells the client with a `list_changed` notification.
 */
export function mergeCapabilities(members: readonly MemberInitialize[]): Record<string, unknown> {
  const has = (key: string) => members.some((member) => isObject(member.capabilities[key]));
  const merged: Record<string, unknown> = {};
  if (has("tools")) merged.tools = { listChanged: true };
  if (has("prompts")) merged.prompts = { listChanged: true };
  if (has("resources")) {
    const subscribe = members.some(
      (member) => isObject(member.capabilities.resources) && member.capabilities.resources.subscribe === true,
    );
    merged.resources = subscribe ? { subscribe: true, listChanged: true } : { listChanged: true };
  }
  if (has("logging")) merged.logging = {};
  if (has("completions")) merged.completions = {};
  return merged;
}

/**
 * The protocol version to answer with: the highest one every backend speaks, i.e. the
 * oldest of the versions they agreed to (MCP versions are ISO dates, so they sort as text).
 */
export function commonProtocolVersion(versions: readonly string[], fallback: string): string {
  return versions.length === 0 ? fallback : [...versions].sort()[0]!;
}

/** Each backend's `instructions` under its name, so the model knows which namespace they describe. */
export function mergeInstructions(members: readonly MemberInitialize[]): string | undefined {
  const parts = members
    .filter((member) => typeof member.instructions === "string" && member.instructions.trim() !== "")
    .map(
      (member) => `## ${member.name} (tools and prompts prefixed ${member.name}__)\n\n${member.instructions!.trim()}`,
    );
  return parts.length === 0 ? undefined : parts.join("\n\n");
}

/** Where paging stands for one backend. */
export interface PagePosition {
  name: string;
  /** The backend's cursor for the page being handed out; undefined for its first page. */
  cursor?: string;
  /** Items of that page already handed out. */
  offset: number;
}

/** One backend's page at its position, or undefined when the backend could not be asked. */
export interface MemberPage {
  items: readonly unknown[];
  nextCursor?: string;
}

/**
 * One aggregate page from the backends' pages (`pages[i]` answers `positions[i]`).
 * `accept` maps an item to what the client sees, or drops it (undefined; a filtered
 * tool). Returns the items and the positions the next page starts from (empty: done).
 * A backend that could not be asked drops out rather than stalling the listing.
 */
export function assemblePage<T>(
  positions: readonly PagePosition[],
  pages: ReadonlyArray<MemberPage | undefined>,
  accept: (backend: string, item: unknown) => T | undefined,
  pageSize = Infinity,
): { items: T[]; next: PagePosition[] } {
  const items: T[] = [];
  const next: PagePosition[] = [];
  positions.forEach((position, index) => {
    const page = pages[index];
    if (!page) return;
    for (let at = position.offset; at < page.items.length; at++) {
      if (items.length >= pageSize) {
        next.push({ ...position, offset: at });
        return;
      }
      const item = accept(position.name, page.items[at]);
      if (item !== undefined) items.push(item);
    }
    if (page.nextCursor !== undefined) next.push({ name: position.name, cursor: page.nextCursor, offset: 0 });
  });
  return { items, next };
}

interface CursorBody {
  v: 1;
  m: ListMethod;
  p: Array<[name: string, cursor: string | null, offset: number]>;
}

/** The opaque cursor for the next page of `method`. */
export function encodeCursor(method: ListMethod, positions: readonly PagePosition[]): string {
  const body: CursorBody = { v: 1, m: method, p: positions.map((p) => [p.name, p.cursor ?? null, p.offset]) };
  return base64UrlEncode(JSON.stringify(body));
}

/** The positions a cursor holds, or undefined when it is not one of ours for `method`. */
export function decodeCursor(method: ListMethod, cursor: string): PagePosition[] | undefined {
  let body: unknown;
  try {
    body = JSON.parse(base64UrlDecode(cursor));
  } catch {
    return undefined;
  }
  if (!isObject(body) || body.v !== 1 || body.m !== method || !Array.isArray(body.p) || body.p.length === 0)
    return undefined;
  const positions: PagePosition[] = [];
  for (const entry of body.p) {
    if (!Array.isArray(entry) || entry.length !== 3) return undefined;
    const [name, memberCursor, offset] = entry as unknown[];
    if (typeof name !== "string" || (memberCursor !== null && typeof memberCursor !== "string")) return undefined;
    if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) return undefined;
    positions.push(memberCursor === null ? { name, offset } : { name, cursor: memberCursor, offset });
  }
  return positions;
}

function base64UrlEncode(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Throws on anything that is not base64url of UTF-8. */
function base64UrlDecode(text: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
}
