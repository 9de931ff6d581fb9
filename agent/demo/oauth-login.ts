/**
 * The MCP SDK client's OAuth support, driven headlessly: an in-memory
 * `OAuthClientProvider` whose "browser" is {@link followSignIn}, signing in as one user.
 * Used by the identity tests and by `airlock demo --login`, which passes `report` to print
 * each step of the sign-in.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError, type OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import { followSignIn } from "./test-idp.ts";

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
  /** Told each step of the sign-in, in order (the demo prints them); silent by default. */
  readonly report: (line: string) => void;

  constructor(login: string, redirect = "http://127.0.0.1:33418/callback", report: (line: string) => void = () => {}) {
    this.login = login;
    this.redirect = redirect;
    this.report = report;
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
    this.report(`registration: the hub issued client_id ${info.client_id}`);
  }
  tokens() {
    return this.savedTokens;
  }
  saveTokens(tokens: OAuthTokens) {
    this.savedTokens = tokens;
    this.report(
      `token: ${tokens.token_type} access token for ${tokens.expires_in ?? "?"} s, scope ${tokens.scope ?? "(none)"}`,
    );
  }
  async redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
    this.report(`authorize: ${url.origin}${url.pathname} with PKCE and resource=${url.searchParams.get("resource")}`);
    this.finalRedirect = await followSignIn(url, this.redirect, this.login, {
      onForm: (page, html) => this.report(signInForm(page, html, this.login)),
    });
    this.report(`callback: ${this.redirect} got an authorization code`);
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/** One line per form the browser submits: whose page it is and what the user does there. */
function signInForm(page: URL, html: string, login: string): string {
  if (/name="password"/i.test(html)) return `IdP login: ${page.origin}${page.pathname} as ${login}`;
  if (/name="decision"/i.test(html)) return `hub consent: ${page.origin}${page.pathname} approved`;
  return `IdP consent: ${page.origin}${page.pathname} granted`;
}

/** The SDK's requests, reported as 401 challenges and metadata discovery (the rest speak through the provider). */
function reportingFetch(report: (line: string) => void): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (response.status === 401) report(`401 from ${url.pathname}: ${response.headers.get("WWW-Authenticate") ?? ""}`);
    else if (url.pathname.startsWith("/.well-known/")) report(`discovery: ${url.pathname} → HTTP ${response.status}`);
    return response;
  };
}

/** Connect to `mcpUrl` signing in as `provider.login`: 401 → discovery → DCR → authorize → token → connect. */
export async function connectWithOAuth(
  mcpUrl: URL,
  provider: HeadlessOAuthProvider,
  clientName = "airlock-oauth-test",
): Promise<Client> {
  const fetchFn = reportingFetch(provider.report);
  const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: fetchFn });
  const probe = new Client({ name: clientName, version: "0.0.0" });
  try {
    await probe.connect(first);
    return probe;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  const code = provider.finalRedirect?.searchParams.get("code");
  if (!code) throw new Error(`the sign-in ended without a code: ${provider.finalRedirect?.href}`);
  await first.finishAuth(code);
  const client = new Client({ name: clientName, version: "0.0.0" });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: fetchFn }));
  return client;
}
