/**
 * The tunnel management API: OpenAI's admin routes that tunnel-client's `admin tunnels`
 * calls, and the Airlock hub's twin of them (docs/protocol.md "Tunnel management API").
 *
 *   OpenAI (admin key)            Airlock hub (hub admin token)       body → answer
 *   POST   /v1/tunnels            POST   /v1/admin/tunnels            TunnelCreateRequest → Tunnel
 *   GET    /v1/tunnels/{id}       GET    /v1/admin/tunnels/{id}       → Tunnel
 *   GET    /v1/tunnels?…          GET    /v1/admin/tunnels?…          → TunnelList
 *   POST   /v1/tunnels/{id}       POST   /v1/admin/tunnels/{id}       TunnelUpdateRequest → Tunnel
 *   DELETE /v1/tunnels/{id}       DELETE /v1/admin/tunnels/{id}       → Tunnel
 *
 * The list takes one of `organization_id`, `workspace_id`, `tenant_id` (OpenAI requires
 * exactly one; the hub lists everything without one). The hub's create answer adds the new
 * tunnel's credentials ({@link CreatedTunnelSecrets}), shown once and kept only as digests.
 */
import { z } from "zod";

/** OpenAI's admin routes, relative to the control plane's host root and url path. */
export const OPENAI_TUNNELS_PATH = "/v1/tunnels";
/** The hub's admin routes. */
export const HUB_ADMIN_TUNNELS_PATH = "/v1/admin/tunnels";

const Ids = z.array(z.string());
/** Go decodes `null` into an empty value; so does this. */
const Text = z
  .string()
  .nullish()
  .transform((value) => value ?? "");
const IdList = Ids.nullish()
  .transform((value) => (value?.length ? value : undefined))
  .optional();

/**
 * A tunnel's metadata as the management API returns it. Unknown fields are dropped and
 * empty id lists read as absent, as tunnel-client's Go decoder and `omitempty` do.
 */
export const Tunnel = z.object({
  id: Text,
  name: Text,
  description: Text,
  creator: Text.optional(),
  tenant_ids: IdList,
  workspace_ids: IdList,
  organization_ids: IdList,
  /** The answer's `x-request-id`, added by the client (never sent by a server). */
  request_id: z.string().optional(),
  /** Airlock hub: `static` for tunnels of AIRLOCK_TUNNELS (read-only), `registry` for tunnels made here. */
  source: z.enum(["static", "registry"]).optional(),
  /** Airlock hub: when a registry tunnel was made (RFC 3339). */
  created_at: z.string().optional(),
});
export type Tunnel = z.infer<typeof Tunnel>;

/** `GET …/tunnels`: `tunnels` is null when the server sent none (Go's nil slice). */
export const TunnelList = z.object({
  tunnels: z.array(Tunnel).nullable().default(null),
  request_id: z.string().optional(),
});
export type TunnelList = z.infer<typeof TunnelList>;

/** `POST …/tunnels`. */
export const TunnelCreateRequest = z.strictObject({
  name: z.string(),
  description: z.string(),
  tenant_ids: Ids.optional(),
  workspace_ids: Ids.optional(),
  organization_ids: Ids.optional(),
});
export type TunnelCreateRequest = z.infer<typeof TunnelCreateRequest>;

/** `POST …/tunnels/{id}`: a field present replaces the stored one; an absent field is kept (lists: PUT-like). */
export const TunnelUpdateRequest = TunnelCreateRequest.partial();
export type TunnelUpdateRequest = z.infer<typeof TunnelUpdateRequest>;

/** The hub's create answer adds the new tunnel's credentials, in plain text this once. */
export const CreatedTunnelSecrets = z.object({
  /** What agents send as `control_plane.api_key` (CONTROL_PLANE_API_KEY). */
  agent_key: z.string(),
  /** What MCP clients send as `Authorization: Bearer` at `<hub>/v1/mcp/<id>`. */
  client_token: z.string(),
});
export type CreatedTunnelSecrets = z.infer<typeof CreatedTunnelSecrets>;

/** The list filters, in the order tunnel-client sets them. */
export const TUNNEL_LIST_FILTERS = ["organization_id", "workspace_id", "tenant_id"] as const;
