/**
 * `TunnelRegistry`: one Durable Object (named `registry`, see registry-lookup.ts) holding the
 * tunnels made at runtime, strongly consistent, in its SQLite-backed KV storage.
 */
import { DurableObject } from "cloudflare:workers";
import type { TunnelUpdateRequest } from "../../shared/protocol/admin-tunnels.ts";
import type { HubVars } from "../config.ts";
import {
  registryService,
  type RegistryRecord,
  type RegistryStore,
  type TunnelRegistryApi,
} from "./registry-service.ts";

/** {@link RegistryStore} on the Durable Object's synchronous KV storage. */
function kvRegistryStore(kv: SyncKvStorage): RegistryStore {
  return {
    get: (key) => kv.get<RegistryRecord>(key),
    put: (key, record) => kv.put(key, record),
    delete: (key) => void kv.delete(key),
    list: (prefix) => [...kv.list<RegistryRecord>({ prefix })].map(([, record]) => record),
  };
}

export class TunnelRegistry extends DurableObject<HubVars> implements TunnelRegistryApi {
  readonly #service: TunnelRegistryApi;

  constructor(ctx: DurableObjectState, env: HubVars) {
    super(ctx, env);
    this.#service = registryService(kvRegistryStore(ctx.storage.kv));
  }

  get(id: string): Promise<RegistryRecord | undefined> {
    return this.#service.get(id);
  }

  list(): Promise<RegistryRecord[]> {
    return this.#service.list();
  }

  add(record: RegistryRecord): Promise<boolean> {
    return this.#service.add(record);
  }

  update(id: string, patch: TunnelUpdateRequest): Promise<RegistryRecord | undefined> {
    return this.#service.update(id, patch);
  }

  remove(id: string): Promise<RegistryRecord | undefined> {
    return this.#service.remove(id);
  }
}
