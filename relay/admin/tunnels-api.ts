/**
 * The hub's tunnel management routes, the twin of OpenAI's `/v1/tunnels` admin API
 * (shared/protocol/admin-tunnels.ts), mounted at `/v1/admin/tunnels` and authenticated with
 * the hub admin token (`AIRLOCK_ADMIN_TOKEN_SHA256`, digests compared in constant time; no
 * digest configured = no access):
 *
 *   POST   /v1/admin/tunnels          create: a new id, agent key and client token (crypto random,
 *                                      answered once, stored as SHA-256 digests in the registry)
 *   GET    /v1/admin/tunnels[?f=v]    list static and registry tunnels, optionally by one id filter
 *   GET    /v1/admin/tunnels/{id}     one tunnel
 *   POST   /v1/admin/tunnels/{id}     update (fields present replace; lists PUT-like)
 *   DELETE /v1/admin/tunnels/{id}     delete: its agents and clients are refused from then on
 *
 * Static tunnels (AIRLOCK_TUNNELS) are shown read-only: update and delete answer 409.
 */
import { Hono, type Context } from "hono";
import type { z } from "zod";
import {
  TUNNEL_LIST_FILTERS,
  TunnelCreateRequest,
  TunnelUpdateRequest,
  type Tunnel,
} from "../../shared/protocol/admin-tunnels.ts";
import { sha256Hex } from "../../shared/audit/digest.ts";
import { loadConfig, type TunnelConfig } from "../config.ts";
import { credentialCheck, fail, sizeLimit, type WorkerContext } from "../context.ts";
import { parseDigests } from "../policy/load.ts";
import type { RegistryRecord, TunnelRegistryApi } from "./registry-service.ts";
import { registryOf } from "./registry-lookup.ts";

/** What every unauthenticated answer says: which credential, and which permission it carries. */
export const ADMIN_TOKEN_MESSAGE =
  "Missing or invalid hub admin token: tunnel management needs Authorization: Bearer <hub admin token>, " +
  "one whose SHA-256 is in AIRLOCK_ADMIN_TOKEN_SHA256 (`airlock hub --admin-token`).";

/** Random bytes as base64url, for ids and secrets (WebCrypto randomness). */
function randomText(bytes: number): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...raw))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** `tunnel_` + 32 lowercase hex: the id format agents and the service expect. */
function newTunnelId(): string {
  const raw = crypto.getRandomValues(new Uint8Array(16));
  return `tunnel_${[...raw].map((byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

function staticView(id: string, tunnel: TunnelConfig): Tunnel {
  return { id, name: tunnel.name, description: tunnel.description, source: "static" };
}

function registryView(record: RegistryRecord): Tunnel {
  const view: Tunnel = { id: record.id, name: record.name, description: record.description };
  if (record.tenant_ids.length) view.tenant_ids = record.tenant_ids;
  if (record.workspace_ids.length) view.workspace_ids = record.workspace_ids;
  if (record.organization_ids.length) view.organization_ids = record.organization_ids;
  return { ...view, source: "registry", created_at: record.created_at };
}

/** The first schema problem as a sentence naming the field. */
function bodyProblem(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const field = issue.path.join(".");
  return `Invalid request body${field ? ` at ${field}` : ""}: ${issue.message}.`;
}

async function readBody<T>(c: Context<WorkerContext>, schema: z.ZodType<T>): Promise<T | Response> {
  let json: unknown;
  try {
    json = await c.req.json();
  } catch {
    return fail({ status: 400, code: "invalid_json_payload", message: "The request body is not a JSON object." });
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : fail({ status: 400, code: null, message: bodyProblem(parsed.error) });
}

/** Bounds that keep one registry record small (the Durable Object holds them all). */
const MAX_TEXT = { name: 256, description: 4096 } as const;
const MAX_IDS = 100;
/** Over every valid body: 3 id lists × 100 ids × 256 characters, a 4 KiB description, JSON's quotes. */
const MAX_BODY_BYTES = 256 * 1024;
const MAX_ID_LENGTH = 256;

/** The first field over its bound, as an error answer; undefined when all fit. */
function oversized(body: TunnelUpdateRequest): Response | undefined {
  for (const field of ["name", "description"] as const) {
    const value = body[field];
    if (value !== undefined && value.length > MAX_TEXT[field])
      return fail({
        status: 400,
        code: null,
        param: field,
        message: `${field} is longer than ${MAX_TEXT[field]} characters.`,
      });
  }
  for (const field of ["organization_ids", "workspace_ids", "tenant_ids"] as const) {
    const ids = body[field] ?? [];
    if (ids.length > MAX_IDS || ids.some((id) => id.length > MAX_ID_LENGTH))
      return fail({
        status: 400,
        code: null,
        param: field,
        message: `${field} takes at most ${MAX_IDS} ids of at most ${MAX_ID_LENGTH} characters.`,
      });
  }
  return undefined;
}

const noRegistry = () =>
  fail({
    status: 501,
    code: null,
    message:
      "This hub has no tunnel registry (the TUNNEL_REGISTRY Durable Object binding is missing from wrangler.toml): only its static AIRLOCK_TUNNELS exist.",
  });

const readOnly = (id: string) =>
  fail({
    status: 409,
    code: "tunnel_read_only",
    message: `Tunnel ${id} is configured in the hub's AIRLOCK_TUNNELS and is read-only here; change AIRLOCK_TUNNELS (wrangler secret put AIRLOCK_TUNNELS) to edit or remove it.`,
  });

const unknown = (id: string) =>
  fail({
    status: 404,
    code: null,
    message: `No tunnel ${id.slice(0, 80)} on this hub; list them with GET /v1/admin/tunnels (airlock admin tunnels list --hub URL).`,
  });

async function create(c: Context<WorkerContext>, registry: TunnelRegistryApi): Promise<Response> {
  const body = await readBody(c, TunnelCreateRequest);
  if (body instanceof Response) return body;
  if (body.name.trim() === "") return fail({ status: 400, code: null, param: "name", message: "name is required." });
  const tooBig = oversized(body);
  if (tooBig) return tooBig;
  const agentKey = `airlock_ak_${randomText(32)}`;
  const clientToken = `airlock_ct_${randomText(32)}`;
  const record: RegistryRecord = {
    id: newTunnelId(),
    name: body.name.trim(),
    description: body.description,
    organization_ids: body.organization_ids ?? [],
    workspace_ids: body.workspace_ids ?? [],
    tenant_ids: body.tenant_ids ?? [],
    created_at: new Date().toISOString(),
    agent_key_sha256: [await sha256Hex(agentKey)],
    client_token_sha256: [await sha256Hex(clientToken)],
  };
  if (loadConfig(c.env).tunnels.has(record.id) || !(await registry.add(record)))
    return fail({ status: 409, code: null, message: "Tunnel id collision; send the request again." });
  return c.json({ ...registryView(record), agent_key: agentKey, client_token: clientToken }, 201);
}

async function list(c: Context<WorkerContext>, registry: TunnelRegistryApi): Promise<Response> {
  const filters = TUNNEL_LIST_FILTERS.flatMap((name) => {
    const value = c.req.query(name);
    return value ? [[`${name}s` as "organization_ids" | "workspace_ids" | "tenant_ids", value] as const] : [];
  });
  const statics = [...loadConfig(c.env).tunnels].map(([id, tunnel]) => staticView(id, tunnel));
  const records = (await registry.list()).map(registryView);
  // Static tunnels carry no ids, so any filter leaves only registry tunnels that match it.
  const tunnels = [...statics, ...records].filter((tunnel) =>
    filters.every(([field, value]) => tunnel[field]?.includes(value)),
  );
  return c.json({ tunnels });
}

/** The management routes, mounted at `/v1/admin/tunnels`. */
export function tunnelsAdminApi(): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  app.use(
    "*",
    credentialCheck((c) => parseDigests(c.env.AIRLOCK_ADMIN_TOKEN_SHA256, "AIRLOCK_ADMIN_TOKEN_SHA256"), {
      code: "invalid_api_key",
      message: ADMIN_TOKEN_MESSAGE,
    }),
  );
  // Bounded before parsing: the largest valid body (the field bounds below) is under 100 KiB.
  app.use(
    "*",
    sizeLimit(() => MAX_BODY_BYTES, "A tunnel management request body"),
  );
  const withRegistry =
    (handler: (c: Context<WorkerContext>, registry: TunnelRegistryApi) => Promise<Response>) =>
    (c: Context<WorkerContext>) => {
      const registry = registryOf(c.env);
      return registry ? handler(c, registry) : noRegistry();
    };
  const staticTunnel = (c: Context<WorkerContext>) => loadConfig(c.env).tunnels.get(c.req.param("id") ?? "");

  app.post("/", withRegistry(create));
  app.get("/", withRegistry(list));
  type Lookup = (
    c: Context<WorkerContext>,
    registry: TunnelRegistryApi,
    id: string,
  ) => Promise<RegistryRecord | undefined | Response>;
  /** A `/:id` route: the lookup's record is answered in its registry view, no record is a 404. */
  const byId = (lookup: Lookup) =>
    withRegistry(async (c, registry) => {
      const id = c.req.param("id")!;
      const found = await lookup(c, registry, id);
      if (found instanceof Response) return found;
      return found ? c.json(registryView(found)) : unknown(id);
    });
  /** A `/:id` route that changes a tunnel: static tunnels are configuration, so they are refused. */
  const registryOnly = (lookup: Lookup) =>
    byId(async (c, registry, id) => (staticTunnel(c) ? readOnly(id) : lookup(c, registry, id)));

  app.get(
    "/:id",
    byId(async (c, registry, id) => {
      const fixed = staticTunnel(c);
      return fixed ? c.json(staticView(id, fixed)) : registry.get(id);
    }),
  );
  app.post(
    "/:id",
    registryOnly(async (c, registry, id) => {
      const patch = await readBody(c, TunnelUpdateRequest);
      if (patch instanceof Response) return patch;
      if (patch.name !== undefined && patch.name.trim() === "")
        return fail({ status: 400, code: null, param: "name", message: "name cannot be empty." });
      return oversized(patch) ?? registry.update(id, patch);
    }),
  );
  app.delete(
    "/:id",
    registryOnly((_c, registry, id) => registry.remove(id)),
  );
  return app;
}
