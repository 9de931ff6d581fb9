/**
 * How an aggregated channel names what its backends offer, so one MCP client can hold
 * the tools of several servers without collisions, and every name leads back to exactly
 * one backend.
 *
 * Tools and prompts: `<backend>__<name>`. Backend names never contain `__`
 * (`BACKEND_NAME_PATTERN`), so the first `__` always ends the backend part, and a
 * backend's own names may contain `__` freely.
 *
 * Resources and resource templates: `airlock://<backend>/<original URI, verbatim>`.
 * A literal prefix rather than an encoding (base64 and the like) because templates must
 * keep working: the client expands `airlock://fs/file:///{path}` to
 * `airlock://fs/file:///notes.txt`, which is exactly the mapped form of what the backend's
 * own template `file:///{path}` expands to. Stripping the prefix gives the original back,
 * whatever characters it holds.
 */
import { isObject } from "../../shared/jsonrpc.ts";

export const NAME_SEPARATOR = "__";
export const URI_PREFIX = "airlock://";

/** `github` + `create_issue` → `github__create_issue`. */
export function namespaced(backend: string, name: string): string {
  return `${backend}${NAME_SEPARATOR}${name}`;
}

/** The backend and its own name for a namespaced name, or undefined when the name has no backend part. */
export function splitNamespaced(name: string): { backend: string; name: string } | undefined {
  const at = name.indexOf(NAME_SEPARATOR);
  if (at <= 0) return undefined;
  const rest = name.slice(at + NAME_SEPARATOR.length);
  return rest === "" ? undefined : { backend: name.slice(0, at), name: rest };
}

/** A backend's resource URI (or URI template) as the aggregate shows it. */
export function mapUri(backend: string, uri: string): string {
  return `${URI_PREFIX}${backend}/${uri}`;
}

/** The backend and original URI (or template) behind a mapped one, or undefined when it is not one. */
export function unmapUri(uri: string): { backend: string; uri: string } | undefined {
  if (!uri.startsWith(URI_PREFIX)) return undefined;
  const rest = uri.slice(URI_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  return { backend: rest.slice(0, slash), uri: rest.slice(slash + 1) };
}

/**
 * One content item of a tool result or prompt message with its resource URI mapped
 * (`resource_link` and embedded `resource`), so the client can read what a backend
 * points at through the aggregate. Other items are returned as they are.
 */
export function mapContentUris(backend: string, item: unknown): unknown {
  if (!isObject(item)) return item;
  if (item.type === "resource_link" && typeof item.uri === "string") return { ...item, uri: mapUri(backend, item.uri) };
  if (item.type === "resource" && isObject(item.resource) && typeof item.resource.uri === "string") {
    return { ...item, resource: { ...item.resource, uri: mapUri(backend, item.resource.uri) } };
  }
  return item;
}
