/**
 * Turning what discovery found into the URL records auto-registration classifies
 * (agent/harpoon/auto-register.ts). Each record says whether discovery can vouch for it:
 * the resource, the authorization server and the metadata's own URL only when they sit on a
 * trusted origin (the main MCP server's, or one in `mcp.oauth_trusted_origins`); the authorization server's endpoints only when that server was
 * vouched for and they sit on the issuer's origin. A record discovery cannot vouch for is
 * registered only on the protected resource's exact origin — so a metadata document cannot
 * point Harpoon at an internal address by naming it.
 */
import type { DiscoveredUrl } from "../harpoon/auto-register.ts";
import { AUTH_SERVER_FIELDS, type AuthServerMetadata } from "./auth-server-metadata.ts";

function parseHttpUrl(raw: unknown): URL | undefined {
  if (typeof raw !== "string") return undefined;
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url : undefined;
  } catch {
    return undefined;
  }
}

/** Groups the URLs of one authorization server: a short, stable hash of where the metadata came from. */
async function groupId(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
  return `auth-server:${[...digest.slice(0, 6)].map((byte) => byte.toString(16).padStart(2, "0")).join("")}:0`;
}

export interface DiscoveredDocuments {
  /** The origins discovery vouches for: the main MCP server's and `mcp.oauth_trusted_origins`. */
  trusted: (origin: string) => boolean;
  /** Where the protected-resource metadata was found. */
  source: URL;
  resource: Record<string, unknown>;
  authServer?: AuthServerMetadata;
}

/** The records of one discovery, in tunnel-client's order (resource, auth server, source, then the AS endpoints). */
export async function discoveredUrls(found: DiscoveredDocuments): Promise<DiscoveredUrl[]> {
  const trusted = (raw: unknown) => {
    const url = parseHttpUrl(raw);
    return url !== undefined && found.trusted(url.origin);
  };
  const group = await groupId(found.source.href);
  const records: DiscoveredUrl[] = [];
  const add = (
    raw: unknown,
    role: string,
    description: string,
    vouched: boolean,
    extra: Partial<DiscoveredUrl> = {},
  ) => {
    const url = parseHttpUrl(raw);
    if (url)
      records.push({
        url,
        role,
        description,
        source: "oauth",
        index: 0,
        disallowPrivateHostRegistration: !vouched,
        ...extra,
      });
  };
  add(found.resource.resource, "prmd-resource", "PRMD resource", trusted(found.resource.resource));
  const servers = Array.isArray(found.resource.authorization_servers) ? found.resource.authorization_servers : [];
  const issuer = parseHttpUrl(servers[0]);
  const issuerVouched = trusted(servers[0]);
  add(servers[0], "prmd-auth-server", "PRMD authorization server", issuerVouched, { group });
  add(found.source.href, "prmd-source", "PRMD source URL", trusted(found.source.href));
  const meta = found.authServer;
  if (!meta || !issuer) return records;
  const onIssuer = (raw: unknown) => issuerVouched && parseHttpUrl(raw)?.origin === issuer.origin;
  add(meta.url.href, "auth-server-metadata", "Auth server metadata URL", onIssuer(meta.url.href), { group });
  for (const [field, role] of Object.entries(AUTH_SERVER_FIELDS)) {
    const raw = meta.document[field];
    add(raw, role, `Auth server ${field.replace(/_/g, " ")}`, onIssuer(raw), { group });
  }
  return records;
}
