/**
 * The auditor's routes, authenticated with an auditor token (`auditor_token_sha256` of
 * the tunnel, or `AIRLOCK_AUDITOR_TOKEN_SHA256` for every tunnel; SHA-256 digests,
 * compared in constant time):
 *
 *   GET  /v1/audit/{tunnel_id}[?after=SEQ]     the hash chain as NDJSON, streamed
 *   GET  /v1/audit/{tunnel_id}/pins            tool pins, with drift awaiting approval
 *   POST /v1/audit/{tunnel_id}/pins/approve    {"channel","tool","digest"}: approve a definition
 *
 * The export carries `X-Airlock-Audit-Head: <seq> <hash>` (the chain's end when the export
 * began; records after it are left for the next export) and `X-Airlock-Audit-Start:
 * <seq> <hash>` (the link before the first record), so `airlock audit verify` can prove
 * nothing was cut from either end.
 */
import { Hono, type Context } from "hono";
import { z } from "zod";
import {
  AUDIT_HEAD_HEADER,
  AUDIT_START_HEADER,
  ndjsonStream,
  type AuditRecord,
  type Digest,
} from "../../shared/audit/index.ts";
import { normalizeChannel } from "../../shared/protocol/index.ts";
import { credentialCheck, fail, tunnelContext, type WorkerContext, type WorkerDeps } from "../context.ts";
import { auditLogFor, type AuditBindings } from "../policy/enforce.ts";
import { loadEnforcement } from "../policy/load.ts";
import type { AuditLogApi } from "./audit-service.ts";

/** Records fetched from the Durable Object per round trip while streaming an export. */
const PAGE_SIZE = 500;

const Approval = z.strictObject({
  channel: z.string().optional(),
  tool: z.string().min(1, "name the tool"),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex>, as GET …/pins shows it"),
});

function logOf(c: Context<WorkerContext>): AuditLogApi {
  return auditLogFor(c.env as AuditBindings, c.get("tunnelId"));
}

async function* records(log: AuditLogApi, after: number, through: number): AsyncGenerator<AuditRecord> {
  let cursor = after;
  while (cursor < through) {
    const page = await log.page(cursor, through, PAGE_SIZE);
    if (page.length === 0) return;
    yield* page;
    cursor = page.at(-1)!.seq;
  }
}

/** The auditor routes, mounted at `/v1/audit`. */
export function auditApi(deps: WorkerDeps): Hono<WorkerContext> {
  const app = new Hono<WorkerContext>();
  app.use("/:tunnel_id/*", tunnelContext(deps));
  app.use(
    "/:tunnel_id/*",
    credentialCheck(
      (c) => {
        const tunnel = c.get("tunnel");
        return tunnel ? [...(tunnel.auditor_token_sha256 ?? []), ...loadEnforcement(c.env).auditorDigests] : [];
      },
      {
        code: "invalid_api_key",
        message: "Missing or invalid auditor token for this tunnel: send Authorization: Bearer <auditor token>.",
      },
    ),
  );

  app.get("/:tunnel_id", async (c) => {
    const raw = c.req.query("after") ?? "0";
    if (!/^[0-9]{1,15}$/.test(raw)) {
      return fail({
        status: 400,
        code: null,
        param: "after",
        message: `Query parameter after=${raw.slice(0, 32)} is invalid: expected the seq of the last record you already have (0 for all).`,
      });
    }
    const after = Number(raw);
    const log = logOf(c);
    const { head, start } = await log.exportInfo(after);
    const headers = new Headers({
      "Content-Type": "application/x-ndjson",
      "Cache-Control": "no-store",
      [AUDIT_HEAD_HEADER]: `${head.seq} ${head.hash}`,
    });
    if (start) headers.set(AUDIT_START_HEADER, `${start.seq} ${start.hash}`);
    return new Response(ndjsonStream(records(log, after, head.seq)), { status: 200, headers });
  });

  app.get("/:tunnel_id/pins", async (c) => c.json({ pins: await logOf(c).pins() }));

  app.post("/:tunnel_id/pins/approve", async (c) => {
    const body = await c.req.json().catch(() => undefined);
    const parsed = Approval.safeParse(body);
    if (!parsed.success) {
      return fail({
        status: 400,
        code: "invalid_json_payload",
        message: `Expected {"channel","tool","digest"}: ${z.prettifyError(parsed.error).replace(/\n/g, " ")}`,
      });
    }
    const channel = normalizeChannel(parsed.data.channel);
    if (!channel)
      return fail({
        status: 400,
        code: "invalid_channel_format",
        param: "channel",
        message: `"${parsed.data.channel}" is not a channel name.`,
      });
    const tunnel = c.get("tunnelId");
    const result = await logOf(c).approve(
      tunnel,
      channel,
      parsed.data.tool,
      parsed.data.digest as Digest,
      loadEnforcement(c.env).audit,
    );
    if (!result.ok) return fail({ status: 409, code: null, message: result.reason });
    return c.json({ pin: result.pin });
  });
  return app;
}
