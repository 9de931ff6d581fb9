/**
 * Durable Object stubs by name, with the names' ids remembered. `idFromName` hashes the name
 * (SHA-256) on every call, and every request to a tunnel asks for its `TunnelHub` and, with
 * the audit log on, its `AuditLog`: the id of a name never changes, so it is derived once per
 * isolate. Stubs themselves are made per request (a stub that saw an error must not be reused).
 */

/** Names remembered per namespace; beyond, the oldest go (names come from URLs before authentication). */
const MAX_NAMES = 1024;

const ids = new WeakMap<object, Map<string, DurableObjectId>>();

/** `namespace.get(namespace.idFromName(name))`, deriving each name's id once. */
export function objectNamed<T extends Rpc.DurableObjectBranded | undefined>(
  namespace: DurableObjectNamespace<T>,
  name: string,
): DurableObjectStub<T> {
  let known = ids.get(namespace);
  if (!known) {
    known = new Map();
    ids.set(namespace, known);
  }
  let id = known.get(name);
  if (id === undefined) {
    id = namespace.idFromName(name);
    if (known.size >= MAX_NAMES) known.delete(known.keys().next().value!);
    known.set(name, id);
  }
  return namespace.get(id);
}
