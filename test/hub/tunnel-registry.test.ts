/**
 * The hub's tunnel registry logic (relay/admin/registry-service.ts) over a Map: what the
 * `TunnelRegistry` Durable Object stores and answers, and how a record becomes the tunnel
 * configuration the routes authenticate against.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  registryService,
  tunnelConfigOf,
  type RegistryRecord,
  type RegistryStore,
} from "../../relay/admin/registry-service.ts";

function mapStore(): RegistryStore & { map: Map<string, RegistryRecord> } {
  const map = new Map<string, RegistryRecord>();
  return {
    map,
    get: (key) => map.get(key),
    put: (key, record) => void map.set(key, record),
    delete: (key) => void map.delete(key),
    list: (prefix) => [...map].filter(([key]) => key.startsWith(prefix)).map(([, record]) => record),
  };
}

function record(id: string, createdAt: string): RegistryRecord {
  return {
    id,
    name: `n-${id}`,
    description: "d",
    organization_ids: ["org_1"],
    workspace_ids: [],
    tenant_ids: [],
    created_at: createdAt,
    agent_key_sha256: ["a".repeat(64)],
    client_token_sha256: ["c".repeat(64)],
  };
}

test("add refuses a taken id; list is oldest first; update replaces only the fields given; remove answers what it removed", async () => {
  const store = mapStore();
  const registry = registryService(store);
  assert.equal(await registry.add(record("tunnel_b", "2026-01-02T00:00:00.000Z")), true);
  assert.equal(await registry.add(record("tunnel_a", "2026-01-01T00:00:00.000Z")), true);
  assert.equal(await registry.add(record("tunnel_a", "2026-01-03T00:00:00.000Z")), false);
  assert.deepEqual(
    (await registry.list()).map((r) => r.id),
    ["tunnel_a", "tunnel_b"],
  );

  const updated = await registry.update("tunnel_a", { name: "renamed", workspace_ids: ["ws_1"], organization_ids: [] });
  assert.deepEqual(
    [updated?.name, updated?.description, updated?.workspace_ids, updated?.organization_ids],
    ["renamed", "d", ["ws_1"], []],
  );
  assert.deepEqual(updated?.agent_key_sha256, ["a".repeat(64)], "credentials are never changed by an update");
  assert.equal(await registry.update("tunnel_zz", { name: "x" }), undefined);

  assert.equal((await registry.remove("tunnel_a"))?.name, "renamed");
  assert.equal(await registry.remove("tunnel_a"), undefined);
  assert.equal(await registry.get("tunnel_a"), undefined);
  assert.deepEqual([...store.map.keys()], ["tunnel/tunnel_b"]);
});

test("a record authenticates like an AIRLOCK_TUNNELS entry: its digests, no pass-through", () => {
  const config = tunnelConfigOf(record("tunnel_a", "2026-01-01T00:00:00.000Z"));
  assert.deepEqual(config, {
    name: "n-tunnel_a",
    description: "d",
    agent_key_sha256: ["a".repeat(64)],
    client_token_sha256: ["c".repeat(64)],
    pass_client_authorization: false,
  });
});
