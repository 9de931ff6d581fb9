/**
 * A fake of OpenAI's tunnel management API (`/v1/tunnels` CRUD, what tunnel-client's
 * `admin tunnels` calls) on 127.0.0.1, any port. It checks every request against what
 * tunnel-client sends (pkg/controlplane/admin/tunnel_client.go): method and path, the
 * identity headers, `Content-Type` exactly when there is a body, the body's schema
 * (shared/protocol/admin-tunnels.ts, strict: no field tunnel-client would not send) and
 * exactly one list filter. Each breach lands in {@link FakeAdminApi.violations}.
 *
 * Keys: the admin key may do everything; the runtime key may only read one tunnel (the
 * metadata lookup tunnel-client's `get` allows with it), other calls get 403
 * `tunnel_management_permission_required`; any other key gets 401 `invalid_api_key`.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { Hono, type Context } from "hono";
import { serve } from "@hono/node-server";
import { TunnelCreateRequest, TunnelUpdateRequest, type Tunnel } from "../../shared/protocol/admin-tunnels.ts";

export const FAKE_ADMIN_KEY = "sk-admin-fake-0123456789abcdef";
export const FAKE_RUNTIME_KEY = "sk-runtime-fake-0123456789abcdef";

export interface FakeAdminApiOptions {
  /** Path prefix before `/v1` (`control_plane.url_path`). */
  urlPath?: string;
}

/** One request as received. */
export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
}

export interface FakeAdminApi {
  baseUrl: string;
  /** Every request, in order. */
  seen: SeenRequest[];
  violations: string[];
  /** Stored tunnels by id. */
  tunnels: Map<string, Tunnel>;
  /** Answer the next request with this status and raw body instead (then behave normally). */
  failNext(status: number, body: string): void;
  assertNoViolations(): void;
  close(): Promise<void>;
}

function apiError(c: Context, status: 400 | 401 | 403 | 404, message: string, code: string | null, type: string) {
  return c.json({ error: { message, type, param: null, code } }, status);
}

/** The headers every tunnel-client admin request carries (`do` in tunnel_client.go). */
function headerViolations(c: Context, hasBody: boolean): string[] {
  const problems: string[] = [];
  const header = (name: string) => c.req.header(name);
  if (!/^Bearer \S+$/.test(header("authorization") ?? "")) problems.push("Authorization is not `Bearer <key>`");
  if (header("accept") !== "application/json") problems.push(`Accept is ${header("accept")}, not application/json`);
  if (!header("user-agent")?.includes("/")) problems.push("User-Agent is not name/version");
  if (!header("x-tunnel-client-name")) problems.push("X-Tunnel-Client-Name is missing");
  if (!header("x-tunnel-client-version")) problems.push("X-Tunnel-Client-Version is missing");
  if (!/^[0-9a-f]{32}$/.test(header("x-tunnel-client-instance-id") ?? ""))
    problems.push("X-Tunnel-Client-Instance-Id is not 32 hex characters");
  const type = header("content-type");
  if (hasBody && type !== "application/json") problems.push(`Content-Type is ${type}, not application/json`);
  if (!hasBody && type !== undefined) problems.push(`Content-Type ${type} on a request without a body`);
  return problems;
}

/** Start the fake; close it with `close()`. */
export async function startFakeAdminApi(options: FakeAdminApiOptions = {}): Promise<FakeAdminApi> {
  const prefix = options.urlPath ?? "";
  const seen: SeenRequest[] = [];
  const violations: string[] = [];
  const tunnels = new Map<string, Tunnel>();
  let scripted: { status: number; body: string } | undefined;
  const bodies = new WeakMap<Request, unknown>();
  const app = new Hono();

  app.use("*", async (c, next) => {
    const text = await c.req.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      violations.push(`${c.req.method} ${c.req.path}: body is not JSON`);
    }
    const headers = Object.fromEntries(c.req.raw.headers);
    seen.push({ method: c.req.method, path: c.req.path, query: { ...c.req.query() }, headers, body });
    for (const problem of headerViolations(c, text.length > 0))
      violations.push(`${c.req.method} ${c.req.path}: ${problem}`);
    bodies.set(c.req.raw, body);
    c.header("x-request-id", `req_${randomBytes(8).toString("hex")}`);
    if (scripted) {
      const { status, body: raw } = scripted;
      scripted = undefined;
      return c.body(raw, status as 500, { "content-type": "application/json" });
    }
    const key = /^Bearer (\S+)$/.exec(c.req.header("authorization") ?? "")?.[1];
    if (key !== FAKE_ADMIN_KEY && key !== FAKE_RUNTIME_KEY)
      return apiError(
        c,
        401,
        `Incorrect API key provided: ${(key ?? "").slice(0, 6)}****. You can find your API key at https://platform.openai.com/account/api-keys.`,
        "invalid_api_key",
        "invalid_request_error",
      );
    const readOnly = c.req.method === "GET" && /\/v1\/tunnels\/[^/]+$/.test(c.req.path);
    if (key === FAKE_RUNTIME_KEY && !readOnly)
      return apiError(
        c,
        403,
        "The caller lacks tunnel management permission for the active org or workspace.",
        "tunnel_management_permission_required",
        "invalid_request_error",
      );
    await next();
  });

  const body = (c: Context) => bodies.get(c.req.raw);
  const unknownTunnel = (c: Context) =>
    apiError(c, 404, `No tunnel found with id '${c.req.param("id")}'.`, null, "invalid_request_error");
  const base = `${prefix}/v1/tunnels`;

  app.post(base, (c) => {
    const parsed = TunnelCreateRequest.safeParse(body(c));
    if (!parsed.success) {
      violations.push(`POST ${base}: body breaks the create schema: ${parsed.error.message}`);
      return apiError(c, 400, "Invalid request body.", null, "invalid_request_error");
    }
    const request = parsed.data;
    if (!request.organization_ids?.length && !request.workspace_ids?.length)
      return apiError(c, 400, "At least one organization or workspace is required.", null, "invalid_request_error");
    const tunnel: Tunnel = {
      id: `tunnel_${randomBytes(16).toString("hex")}`,
      name: request.name,
      description: request.description,
      creator: "user-fake-admin",
      ...(request.workspace_ids ? { workspace_ids: request.workspace_ids } : {}),
      ...(request.organization_ids ? { organization_ids: request.organization_ids } : {}),
    };
    tunnels.set(tunnel.id, tunnel);
    return c.json(tunnel);
  });

  app.get(base, (c) => {
    const query = c.req.query();
    const filters = (["organization_id", "workspace_id", "tenant_id"] as const).filter((name) => query[name]);
    const extra = Object.keys(query).filter((name) => !filters.includes(name as never));
    if (filters.length !== 1 || extra.length > 0) {
      violations.push(`GET ${base}: expected exactly one filter, got ${JSON.stringify(query)}`);
      return apiError(c, 400, "Provide exactly one filter.", null, "invalid_request_error");
    }
    const [filter] = filters as [(typeof filters)[number]];
    const field = { organization_id: "organization_ids", workspace_id: "workspace_ids", tenant_id: "tenant_ids" }[
      filter
    ] as "organization_ids" | "workspace_ids" | "tenant_ids";
    const found = [...tunnels.values()].filter((tunnel) => tunnel[field]?.includes(query[filter]!));
    return c.json({ tunnels: found });
  });

  app.get(`${base}/:id`, (c) => {
    const tunnel = tunnels.get(c.req.param("id"));
    return tunnel ? c.json(tunnel) : unknownTunnel(c);
  });

  app.post(`${base}/:id`, (c) => {
    const parsed = TunnelUpdateRequest.safeParse(body(c));
    if (!parsed.success) {
      violations.push(`POST ${base}/:id: body breaks the update schema: ${parsed.error.message}`);
      return apiError(c, 400, "Invalid request body.", null, "invalid_request_error");
    }
    const tunnel = tunnels.get(c.req.param("id"));
    if (!tunnel) return unknownTunnel(c);
    const updated: Tunnel = { ...tunnel, ...parsed.data };
    tunnels.set(tunnel.id, updated);
    return c.json(updated);
  });

  app.delete(`${base}/:id`, (c) => {
    const tunnel = tunnels.get(c.req.param("id"));
    if (!tunnel) return unknownTunnel(c);
    tunnels.delete(tunnel.id);
    return c.json(tunnel);
  });

  app.notFound((c) => {
    violations.push(`${c.req.method} ${c.req.path}: not a route tunnel-client calls`);
    return c.json({ error: { message: "Invalid URL", type: "invalid_request_error", param: null, code: null } }, 404);
  });

  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>((resolve) => {
    const server = serve(
      { fetch: app.fetch, hostname: "127.0.0.1", port: 0, overrideGlobalObjects: false },
      (info: AddressInfo) => resolve({ server, port: info.port }),
    );
  });

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    seen,
    violations,
    tunnels,
    failNext(status, raw) {
      scripted = { status, body: raw };
    },
    assertNoViolations() {
      if (violations.length > 0) throw new Error(`fake admin API violations:\n${violations.join("\n")}`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}
