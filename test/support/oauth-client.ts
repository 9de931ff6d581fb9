/**
 * The MCP SDK client's OAuth support, driven headlessly: an in-memory
 * `OAuthClientProvider` whose "browser" is {@link followSignIn}, signing in as one user.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError, type OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import { followSignIn } from "./oidc-idp.ts";

/** What a test inspects after a sign-in. */
export class HeadlessOAuthProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  savedTokens?: OAuthTokens;
  verifier = "";
  /** The authorization URL the SDK built (discovery, PKCE, resource) and where the browser ended. */
  authorizationUrl?: URL;
  finalRedirect?: URL;
  readonly login: string;
  readonly redirect: string;

  constructor(login: string, redirect = "http://127.0.0.1:33418/callback") {
    this.login = login;
    this.redirect = redirect;
  }

  get redirectUrl(): string {
    return this.redirect;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: `airlock test (${this.login})`,
      redirect_uris: [this.redirect],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }

  clientInformation() {
    return this.client;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.client = info;
  }
  tokens() {
    return this.savedTokens;
  }
  saveTokens(tokens: OAuthTokens) {
    this.savedTokens = tokens;
  }
  async redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
    this.finalRedirect = await followSignIn(url, this.redirect, this.login);
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/** Connect to `mcpUrl` signing in as `provider.login`: 401 → discovery → DCR → authorize → token → connect. */
export async function connectWithOAuth(mcpUrl: URL, provider: HeadlessOAuthProvider): Promise<Client> {
  const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  const probe = new Client({ name: "airlock-oauth-test", version: "0.0.0" });
  try {
    await probe.connect(first);
    return probe;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  const code = provider.finalRedirect?.searchParams.get("code");
  if (!code) throw new Error(`the sign-in ended without a code: ${provider.finalRedirect?.href}`);
  await first.finishAuth(code);
  const client = new Client({ name: "airlock-oauth-test", version: "0.0.0" });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
  return client;
}
