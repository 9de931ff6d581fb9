/**
 * The hub's tunnel registry: tunnels made at runtime through `/v1/admin/tunnels`, beside
 * the static ones of AIRLOCK_TUNNELS. A record holds the tunnel's metadata and the
 * SHA-256 digests of its agent key and client token (never the secrets, as AIRLOCK_TUNNELS).
 *
 * Plain logic over a tiny key-value seam, so tests run it without workerd; the
 * `TunnelRegistry` Durable Object (tunnel-registry.ts) puts it on its storage.
 */
import type { TunnelUpdateRequest } from "../../shared/protocol/admin-tunnels.ts";
import type { TunnelConfig } from "../config.ts";

/** One runtime-made tunnel as stored. */
export interface RegistryRecord {
  id: string;
  name: string;
  description: string;
  organization_ids: string[];
  workspace_ids: string[];
  tenant_ids: string[];
  /** RFC 3339. */
  created_at: string;
  agent_key_sha256: string[];
  client_token_sha256: string[];
}

/** The storage the registry needs (the Durable Object's synchronous KV, or a Map in tests). */
export interface RegistryStore {
  get(key: string): RegistryRecord | undefined;
  put(key: string, record: RegistryRecord): void;
  delete(key: string): void;
  list(prefix: string): RegistryRecord[];
}

/** The registry's operations, as the Worker calls them (RPC on the Durable Object). */
export interface TunnelRegistryApi {
  get(id: string): Promise<RegistryRecord | undefined>;
  list(): Promise<RegistryRecord[]>;
  /** False when the id is taken. */
  add(record: RegistryRecord): Promise<boolean>;
  update(id: string, patch: TunnelUpdateRequest): Promise<RegistryRecord | undefined>;
  remove(id: string): Promise<RegistryRecord | undefined>;
}

const PREFIX = "tunnel/";

/** {@link TunnelRegistryApi} over a {@link RegistryStore}. */
export function registryService(store: RegistryStore): TunnelRegistryApi {
  return {
    get: async (id) => store.get(PREFIX + id),
    list: async () => store.list(PREFIX).sort((a, b) => a.created_at.localeCompare(b.created_at)),
    async add(record) {
      if (store.get(PREFIX + record.id)) return false;
      store.put(PREFIX + record.id, record);
      return true;
    },
    async update(id, patch) {
      const record = store.get(PREFIX + id);
      if (!record) return undefined;
      const updated: RegistryRecord = {
        ...record,
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.description !== undefined ? { description: patch.description } : {}),
        ...(patch.organization_ids !== undefined ? { organization_ids: patch.organization_ids } : {}),
        ...(patch.workspace_ids !== undefined ? { workspace_ids: patch.workspace_ids } : {}),
        ...(patch.tenant_ids !== undefined ? { tenant_ids: patch.tenant_ids } : {}),
      };
      store.put(PREFIX + id, updated);
      return updated;
    },
    async remove(id) {
      const record = store.get(PREFIX + id);
      if (record) store.delete(PREFIX + id);
      return record;
    },
  };
}

/** A registry record as the routes see a tunnel: the same shape AIRLOCK_TUNNELS entries have. */
export function tunnelConfigOf(record: RegistryRecord): TunnelConfig {
  return {
    name: record.name,
    description: record.description,
    agent_key_sha256: record.agent_key_sha256,
    client_token_sha256: record.client_token_sha256,
    pass_client_authorization: false,
  };
}
