/**
 * The agent-facing API of docs/openapi.json, served exactly as OpenAI's tunnel service
 * does so its `tunnel-client` works unchanged:
 *
 *   GET  /v1/tunnels/{id}            metadata (id, name, description)
 *   GET  /v1/tunnels/{id}/poll       long-poll: 200 {"commands":[…]} or 204
 *   POST /v1/tunnels/{id}/response   one intermediate or final result
 *
 * plus `GET /v1/tunnels/{id}/status` (Airlock: connected agents and queue sizes).
 */
import { Hono, type Context } from "hono";
import { z } from "zod";
import {
  AIRLOCK_CAPABILITIES_HEADER_VALUE,
  CLIENT_HEADERS,
  POLL_LIMIT_MAX,
  TunnelResponsePayload,
  decodeServerInfo,
  normalizeChannel,
  parseCapabilities,
} from "../shared/protocol/index.ts";
import { watchConnection } from "./connection.ts";
import {
  AGENT_KEY_MESSAGE,
  credentialCheck,
  fail,
  sizeLimit,
  tunnelContext,
  type WorkerContext,
  type WorkerDeps,
} from "./context.ts";
import { invalidChannel } from "./errors.ts";
import type { AgentHello } from "./hub/tunnel-state.ts";

/** Without `limit` a poll takes one command: an agent that did not say how much it can take gets the least. */
const DEFAULT_POLL_LIMIT = 1;
const MAX_INSTANCE_ID_LENGTH = 128;

/** Who is calling, from the headers every agent call carries. */
export function agentHello(c: Context<WorkerContext>): AgentHello {
  const instanceId =
    (c.req.header(CLIENT_HEADERS.instanceId) ?? "").trim().slice(0, MAX_INSTANCE_ID_LENGTH) || "anonymous";
  const capabilities = parseCapabilities(c.req.header(CLIENT_HEADERS.capabilities));
  return {
    instanceId,
    serverInfo: decodeServerInfo(c.req.header(CLIENT_HEADERS.serverInfo)),
    capabilities,
    clientName: c.req.header(CLIENT_HEADERS.name)?.slice(0, 128),
    clientVersion: c.req.header(CLIENT_HEADERS.version)?.slice(0, 64),
  };
}

function intParam(c: Context<WorkerContext>, name: string, min: number, max: number): number | undefined | Response {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "" || raw === "null") return undefined;
  const value = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    return fail({
      status: 400,
      code: null,
      param: name,
      message: `Query parameter ${name}=${raw.slice(0, 32)} is invalid: expected an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ""}.`,
    });
  }
  return value;
}

/** The agent API routes, mounted at `/v1/tunnels`. */
export function agentApi(deps: WorkerDeps): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  // `/:tunnel_id/*` also matches `/:tunnel_id` itself.
  app.use("/:tunnel_id/*", tunnelContext(deps));
  const agentAuth = credentialCheck((c) => c.get("tunnel")?.agent_key_sha256 ?? [], {
    code: "invalid_api_key",
    message: AGENT_KEY_MESSAGE,
  });
  app.use("/:tunnel_id/*", agentAuth);
  // Tells an Airlock agent which extensions this hub offers; other clients ignore it.
  app.use("*", async (c, next) => {
    await next();
    c.res.headers.set(CLIENT_HEADERS.capabilities, AIRLOCK_CAPABILITIES_HEADER_VALUE);
    // So an agent can answer "too large" itself instead of posting a body this hub refuses.
    const config = c.get("config");
    if (config) c.res.headers.set(CLIENT_HEADERS.maxResponseBytes, String(config.settings.maxResponseBytes));
  });

  app.get("/:tunnel_id", (c) => {
    const tunnel = c.get("tunnel")!;
    return c.json({ id: c.get("tunnelId"), name: tunnel.name, description: tunnel.description });
  });

  app.get("/:tunnel_id/status", async (c) => c.json(await c.get("hub").status()));

  app.get("/:tunnel_id/poll", async (c) => {
    const limit = intParam(c, "limit", 1, POLL_LIMIT_MAX);
    if (limit instanceof Response) return limit;
    const timeout = intParam(c, "timeout_ms", 1, Number.MAX_SAFE_INTEGER);
    if (timeout instanceof Response) return timeout;
    const channels: string[] = [];
    for (const raw of c.req.queries("channel") ?? []) {
      const channel = normalizeChannel(raw);
      if (!channel) return fail(invalidChannel(raw, "poll channel parameter"));
      channels.push(channel);
    }
    const { maxPollHoldMs } = c.get("config").settings;
    // A busy agent's lease-only poll: it keeps the agent live and is handed no command.
    const leaseOnly = c.req.header(CLIENT_HEADERS.lease)?.trim().toLowerCase() === "renew";
    const commands = await c.get("hub").poll({
      ...agentHello(c),
      pollId: watchConnection(c),
      limit: leaseOnly ? 0 : (limit ?? DEFAULT_POLL_LIMIT),
      holdMs: Math.min(timeout ?? maxPollHoldMs, maxPollHoldMs),
      channels,
    });
    if (commands.length === 0) return c.body(null, 204);
    return c.json({ commands });
  });

  app.post(
    "/:tunnel_id/response",
    sizeLimit((c) => c.get("config").settings.maxResponseBytes, "The response body"),
    async (c) => {
      const shardToken = c.req.header(CLIENT_HEADERS.shardToken);
      if (!shardToken) {
        return fail({
          status: 400,
          code: null,
          message: `Missing ${CLIENT_HEADERS.shardToken}: send the shard_token of the command being answered.`,
        });
      }
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        return fail({ status: 400, code: "invalid_json_payload", message: "The response body is not valid JSON." });
      }
      const parsed = TunnelResponsePayload.safeParse(body);
      if (!parsed.success) {
        return fail({
          status: 400,
          code: null,
          message: `The response body is not a TunnelResponsePayload: ${z.prettifyError(parsed.error)}`,
        });
      }
      const payload = parsed.data;
      if (payload.channel !== undefined && payload.channel !== null && !normalizeChannel(payload.channel)) {
        return fail(invalidChannel(payload.channel, "response channel"));
      }
      const outcome = await c.get("hub").respond(agentHello(c), shardToken, payload);
      if (outcome === "not_found") {
        return fail({
          status: 404,
          code: "pending_request_not_found",
          message: `Request ${payload.request_id.slice(0, 80)} is not pending on tunnel ${c.get("tunnelId")}: it was already answered, expired, cancelled, or never existed.`,
        });
      }
      if (outcome === "mismatch") {
        return fail({
          status: 401,
          code: "tunnel_request_mismatch",
          message: `The ${CLIENT_HEADERS.shardToken} header does not match request ${payload.request_id.slice(0, 80)}; send the shard_token from the same command.`,
        });
      }
      return c.json({ status: "ok" });
    },
  );
  return app;
}
