/**
 * `airlock admin tunnels …` (tunnel-client's tunnel management, agent/cli/admin-tunnels.ts)
 * and `airlock admin grants list|revoke`: a hub admin's view of the OAuth grants people gave
 * MCP clients (docs/identity.md), over the hub's `/v1/admin/grants` routes.
 *
 *   airlock admin grants list <hub url> --subject S --token env:NAME [--json]
 *   airlock admin grants revoke <hub url> <grant id> --subject S --token env:NAME
 *
 * Revoking a grant ends its access and refresh tokens at once: the client's next call is
 * refused and it must send the person through sign-in again.
 * Exit status: 0 done, 1 the hub refused or could not be reached, 2 usage error.
 */
import { helpText, parseFlags, processIo, UsageError, withUsageErrors } from "./options.ts";
import type { CliIo, FlagSpec } from "./options.ts";
import { hubErrorDetail, tokenFlag } from "./secret-flag.ts";
import { tunnelsMain, TUNNELS_HELP } from "./admin-tunnels.ts";

const FLAGS: Record<string, FlagSpec> = {
  subject: { kind: "string", value: "SUB", help: "the person: the identity provider's sub (the audit log's subject)" },
  token: {
    kind: "string",
    value: "REF",
    help: "hub-wide auditor token (AIRLOCK_AUDITOR_TOKEN_SHA256), as env:NAME or file:/path",
  },
  json: { kind: "bool", help: "print the hub's answer as JSON" },
};

const SYNOPSIS =
  "airlock admin grants list <hub url> --subject SUB --token env:NAME [--json]\n       airlock admin grants revoke <hub url> <grant id> --subject SUB --token env:NAME";
const DESCRIPTION = [
  "Lists or revokes the OAuth grants a person gave MCP clients at a hub (OAuth on: AIRLOCK_OIDC_ISSUER).",
  "A revoked grant's access and refresh tokens stop working at once.",
  "Exit status: 0 done, 1 the hub refused or could not be reached, 2 usage error.",
].join("\n");

interface GrantView {
  id: string;
  client_id: string;
  resource: string[];
  created_at: string;
  expires_at: string | null;
}

function describeGrants(subject: string, grants: GrantView[]): string {
  if (grants.length === 0) return `no grants for ${subject}\n`;
  const lines = grants.map(
    (grant) =>
      `${grant.id}  client ${grant.client_id}  ${grant.resource.join(" ")}  created ${grant.created_at}  expires ${grant.expires_at ?? "never"}`,
  );
  return `${lines.join("\n")}\n`;
}

function hubUrl(raw: string | undefined, path: string): URL {
  if (!raw || !/^https?:\/\//i.test(raw))
    throw new UsageError(
      `name the hub first: its URL, e.g. https://hub.example.com (got ${JSON.stringify(raw ?? "")})`,
    );
  try {
    return new URL(path, raw);
  } catch {
    throw new UsageError(`"${raw}" is not a URL`);
  }
}

async function call(url: URL, method: string, token: string, io: CliIo): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, { method, headers: { Authorization: `Bearer ${token}`, Accept: "application/json" } });
  } catch (error) {
    io.stderr(`airlock admin: cannot reach ${url.origin}: ${error instanceof Error ? error.message : String(error)}\n`);
    return undefined;
  }
  if (response.status !== 200) {
    const hint = response.status === 401 ? "; pass the hub-wide auditor token with --token env:NAME" : "";
    io.stderr(
      `airlock admin: ${url.origin}${url.pathname} answered HTTP ${response.status}: ${await hubErrorDetail(response)}${hint}\n`,
    );
    return undefined;
  }
  return response.json();
}

export function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  return withUsageErrors("admin", io, () => admin(argv, io));
}

async function admin(argv: string[], io: CliIo): Promise<number> {
  const [area, action, ...rest] = argv;
  // tunnel-client: `admin` alone prints its help, exit 0.
  if (area === undefined || area === "--help" || area === "-h" || area === "help") {
    io.stdout(`${TUNNELS_HELP}\n${helpText(SYNOPSIS, DESCRIPTION, FLAGS)}`);
    return 0;
  }
  // tunnel-client's admin flags may come before `tunnels` (`admin --json tunnels get …`).
  if (area !== "grants") return tunnelsMain(argv, io);
  if (action !== "list" && action !== "revoke")
    throw new UsageError(`airlock admin grants takes list or revoke (got ${JSON.stringify(action ?? "")})`);
  const flags = parseFlags(`admin grants ${action}`, rest, FLAGS);
  if (flags.help) {
    io.stdout(helpText(SYNOPSIS, DESCRIPTION, FLAGS));
    return 0;
  }
  const subject = flags.strings.get("subject");
  if (!subject)
    throw new UsageError(
      "--subject SUB is required: the person whose grants these are (the audit log's subject field)",
    );
  const token = await tokenFlag(flags, io, "env:AIRLOCK_AUDITOR_TOKEN");
  if (token === undefined) throw new UsageError("--token env:NAME is required: the hub-wide auditor token");
  const [hub, grantId, ...extra] = flags.positionals;
  if (action === "list") {
    if (grantId !== undefined) throw new UsageError("admin grants list takes only the hub's URL");
    const url = hubUrl(hub, "/v1/admin/grants");
    url.searchParams.set("subject", subject);
    const answer = (await call(url, "GET", token, io)) as { grants: GrantView[] } | undefined;
    if (!answer) return 1;
    io.stdout(
      flags.bools.has("json") ? `${JSON.stringify(answer, null, 2)}\n` : describeGrants(subject, answer.grants),
    );
    return 0;
  }
  if (grantId === undefined || extra.length > 0)
    throw new UsageError("admin grants revoke takes the hub's URL and one grant id (from admin grants list)");
  const url = hubUrl(hub, `/v1/admin/grants/${encodeURIComponent(grantId)}`);
  url.searchParams.set("subject", subject);
  const answer = await call(url, "DELETE", token, io);
  if (!answer) return 1;
  io.stdout(
    flags.bools.has("json") ? `${JSON.stringify(answer, null, 2)}\n` : `revoked grant ${grantId} of ${subject}\n`,
  );
  return 0;
}
