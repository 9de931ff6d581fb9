/**
 * Client ID Metadata Documents (CIMD), for admin-allowlisted origins only. A client whose
 * `client_id` is a URL publishes its metadata (name, redirect URIs) at that URL instead of
 * registering. The OAuth library's own CIMD support fetches any URL a client names and can
 * only be made safe by the `global_fetch_strictly_public` flag, which would also stop the
 * hub reaching an identity provider on a private network; so the library's support stays
 * off and the hub fetches the document itself, only from origins the admin listed
 * (`AIRLOCK_OAUTH_CIMD_ORIGINS`): no redirects followed, size and time bounded. The client
 * it describes is stored as the library stores registered clients, keyed by the URL.
 */
import { redirectAllowed, type IdentitySettings } from "./settings.ts";
import type { IdentityBindings } from "./authorization-server.ts";

/** The CIMD draft's recommended ceiling; metadata is a few hundred bytes. */
const MAX_DOCUMENT_BYTES = 5 * 1024;
const FETCH_TIMEOUT_MS = 5_000;

interface Kv {
  put(key: string, value: string): Promise<void>;
}

/** Why a metadata-document client was not admitted, said to the person at the authorize page. */
export class ClientMetadataError extends Error {}

/** True when `clientId` is a URL (a metadata-document client rather than a registered id). */
export function isMetadataClientId(clientId: string): boolean {
  return /^https?:\/\//i.test(clientId);
}

async function readBounded(response: Response): Promise<string> {
  const declared = Number(response.headers.get("Content-Length") ?? "0");
  if (declared > MAX_DOCUMENT_BYTES)
    throw new ClientMetadataError(`its metadata document is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  const reader = response.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_DOCUMENT_BYTES) {
      await reader.cancel();
      throw new ClientMetadataError(`its metadata document is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

async function fetchDocument(url: URL): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    // A redirect could lead anywhere: the allowlist holds for the URL fetched, not where it points.
    response = await fetch(url, {
      redirect: "manual",
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (error) {
    throw new ClientMetadataError(
      `its metadata document could not be fetched (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new ClientMetadataError(
      `its metadata document answered ${response.status}, not 200 (redirects are not followed)`,
    );
  }
  let document: unknown;
  try {
    document = JSON.parse(await readBounded(response));
  } catch (error) {
    if (error instanceof ClientMetadataError) throw error;
    throw new ClientMetadataError("its metadata document is not JSON");
  }
  if (typeof document !== "object" || document === null || Array.isArray(document))
    throw new ClientMetadataError("its metadata document is not a JSON object");
  return document as Record<string, unknown>;
}

/** The library's stored client record for a public client (PKCE only) described by `document`. */
function clientRecord(settings: IdentitySettings, clientId: string, document: Record<string, unknown>) {
  if (document.client_id !== clientId)
    throw new ClientMetadataError("its metadata document's client_id is not the document's own URL");
  const uris = document.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0 || !uris.every((uri) => typeof uri === "string"))
    throw new ClientMetadataError("its metadata document lists no redirect_uris");
  const refused = uris.find((uri) => !redirectAllowed(settings, uri));
  if (refused !== undefined)
    throw new ClientMetadataError(
      `redirect URI ${JSON.stringify(refused)} is not on this hub's allowlist (AIRLOCK_OAUTH_REDIRECT_ORIGINS)`,
    );
  const method = document.token_endpoint_auth_method ?? "none";
  if (method !== "none")
    throw new ClientMetadataError(
      `token_endpoint_auth_method ${JSON.stringify(method)} is not supported for metadata-document clients; use "none" (PKCE)`,
    );
  return {
    clientId,
    redirectUris: uris as string[],
    clientName: typeof document.client_name === "string" ? document.client_name.slice(0, 200) : undefined,
    clientUri: typeof document.client_uri === "string" ? document.client_uri : undefined,
    grantTypes: ["authorization_code", "refresh_token"],
    responseTypes: ["code"],
    registrationDate: Math.floor(Date.now() / 1000),
    tokenEndpointAuthMethod: "none",
  };
}

/**
 * Admit the metadata-document client `clientId` (a URL): refused without any fetch unless
 * its origin is on `AIRLOCK_OAUTH_CIMD_ORIGINS`; otherwise its document is fetched and the
 * client stored (refreshed at every authorization request, so an edited document counts).
 */
export async function admitMetadataClient(
  settings: IdentitySettings,
  clientId: string,
  env: IdentityBindings,
): Promise<void> {
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    throw new ClientMetadataError("its client_id is not a URL");
  }
  if (!settings.cimdOrigins.includes(url.origin) || url.username || url.password || url.hash) {
    throw new ClientMetadataError(
      `client metadata documents from ${url.origin} are not allowed here; the hub's admin can add the origin to AIRLOCK_OAUTH_CIMD_ORIGINS, or the client can register (Dynamic Client Registration)`,
    );
  }
  const record = clientRecord(settings, clientId, await fetchDocument(url));
  await (env.OAUTH_KV as Kv).put(`client:${clientId}`, JSON.stringify(record));
}
