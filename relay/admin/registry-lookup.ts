/**
 * Finding the tunnel registry from a request: a tunnel id the static AIRLOCK_TUNNELS does not
 * know is looked up in the `TunnelRegistry` Durable Object; static tunnels never touch it, so
 * their requests cost nothing more. Type-only imports: Node-side code (the local hub's front)
 * loads this file, and it must not load `cloudflare:workers`.
 */
import type { TunnelConfig } from "../config.ts";
import { tunnelConfigOf, type TunnelRegistryApi } from "./registry-service.ts";
import type { TunnelRegistry } from "./tunnel-registry.ts";

/** The single registry instance: tunnels are few and change rarely; one object keeps them consistent. */
export const REGISTRY_NAME = "registry";

/** The binding, optional: a Worker deployed without it (or a test app) simply has no runtime tunnels. */
export interface RegistryBindings {
  TUNNEL_REGISTRY?: DurableObjectNamespace<TunnelRegistry>;
}

/** The registry of this deployment, or undefined without the binding. */
export function registryOf(env: RegistryBindings): TunnelRegistryApi | undefined {
  const namespace = env.TUNNEL_REGISTRY;
  return namespace ? (namespace.get(namespace.idFromName(REGISTRY_NAME)) as unknown as TunnelRegistryApi) : undefined;
}

/** A runtime-made tunnel's configuration, or undefined when the registry does not know the id. */
export async function registeredTunnel(env: RegistryBindings, tunnelId: string): Promise<TunnelConfig | undefined> {
  const record = await registryOf(env)?.get(tunnelId);
  return record ? tunnelConfigOf(record) : undefined;
}
