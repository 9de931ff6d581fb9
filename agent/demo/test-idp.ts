/**
 * A real OpenID provider for tests and `airlock demo --login`: `oidc-provider` (a certified
 * implementation) on 127.0.0.1:0 with fixed users, standing in for the company's
 * Okta/Entra/Keycloak. Its development login form accepts any password for a known login;
 * the consent step is its own. {@link followSignIn} drives both over HTTP the way a browser
 * would. `oidc-provider` is a devDependency loaded only here, on first use, so the agent
 * (and its bundle, where it is external) never needs it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface TestUser {
  login: string;
  email: string;
  name: string;
  groups: string[];
}

export interface TestIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The query of every authorization request the provider received, in order (what the hub asked for). */
  readonly authorizationRequests: URLSearchParams[];
  /** Register the hub's callback (known once the hub listens) and start answering. */
  register(redirectUri: string): void;
  /** The person's groups change at the provider (seen at their next sign-in or refresh). */
  setGroups(login: string, groups: string[]): void;
  /** The person is removed at the provider: their refresh tokens are refused from now on. */
  disable(login: string): void;
  close(): Promise<void>;
}

async function loadProvider(): Promise<typeof import("oidc-provider").default> {
  try {
    return (await import("oidc-provider")).default;
  } catch (error) {
    throw new Error(
      `the built-in test IdP needs the oidc-provider package (a devDependency): run it from a checkout after npm install (${(error as Error).message})`,
    );
  }
}

/**
 * Listen first (the hub needs the issuer to start); the provider is built once the hub's
 * callback is known. It issues refresh tokens (offline_access) unless `refreshTokens` is false,
 * as Google does not to this kind of request.
 */
export async function startTestIdp(
  initial: TestUser[],
  { refreshTokens = true }: { refreshTokens?: boolean } = {},
): Promise<TestIdp> {
  const users = initial.map((user) => ({ ...user }));
  const Provider = await loadProvider();
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const authorizationRequests: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://idp");
    // oidc-provider's authorization endpoint.
    if (url.pathname === "/auth") authorizationRequests.push(url.searchParams);
    if (handler) return handler(req, res);
    res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = "airlock-hub";
  const clientSecret = `idp-secret-${crypto.randomUUID()}`;
  return {
    issuer,
    clientId,
    clientSecret,
    authorizationRequests,
    register(redirectUri) {
      const provider = new Provider(issuer, {
        clients: [
          {
            client_id: clientId,
            client_secret: clientSecret,
            redirect_uris: [redirectUri],
            grant_types: refreshTokens ? ["authorization_code", "refresh_token"] : ["authorization_code"],
            response_types: ["code"],
          },
        ],
        // Without offline_access in the scopes the discovery document offers none, so the hub asks for none.
        scopes: refreshTokens ? ["openid", "offline_access"] : ["openid"],
        // Groups travel with the profile scope, as Okta and Keycloak can be set up to do.
        claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "groups"] },
        // Claims in the ID token itself (not only at userinfo): what the hub reads.
        conformIdTokenClaims: false,
        features: { devInteractions: { enabled: true } },
        cookies: { keys: [crypto.randomUUID()] },
        // Set, so the provider does not print a notice per default on the demo's console.
        ttl: { Interaction: 600, Session: 3600, Grant: 86400, AccessToken: 3600, IdToken: 3600, RefreshToken: 86400 },
        async findAccount(_ctx, id) {
          const user = users.find((candidate) => candidate.login === id);
          if (!user) return undefined;
          return {
            accountId: id,
            claims: () => ({ sub: id, email: user.email, email_verified: true, name: user.name, groups: user.groups }),
          };
        },
      });
      handler = provider.callback();
    },
    setGroups(login, groups) {
      const user = users.find((candidate) => candidate.login === login);
      if (!user) throw new Error(`no test user ${login}`);
      user.groups = groups;
    },
    disable(login) {
      const index = users.findIndex((candidate) => candidate.login === login);
      if (index < 0) throw new Error(`no test user ${login}`);
      // oidc-provider looks the account up at every refresh: a missing one is invalid_grant.
      users.splice(index, 1);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Cookies per origin, as a browser keeps them (only names and values; enough for these flows). */
class CookieJar {
  readonly #jars = new Map<string, Map<string, string>>();

  header(url: URL): string {
    return [...(this.#jars.get(url.origin) ?? new Map()).entries()]
      .map(([name, value]) => `${name}=${value}`)
      .join("; ");
  }

  store(url: URL, response: Response): void {
    const jar = this.#jars.get(url.origin) ?? new Map<string, string>();
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const index = pair!.indexOf("=");
      const expired = /max-age=0|expires=Thu, 01 Jan 1970/i.test(line);
      if (expired) jar.delete(pair!.slice(0, index).trim());
      else jar.set(pair!.slice(0, index).trim(), pair!.slice(index + 1).trim());
    }
    this.#jars.set(url.origin, jar);
  }
}

/** The first POST form of a page: its action and fields (hidden inputs, plus `fill`). */
function formOf(html: string, page: URL, fill: Record<string, string>): { action: URL; body: URLSearchParams } {
  const form = /<form[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error(`no form on ${page.href}: ${html.slice(0, 300)}`);
  const action = /action="([^"]*)"/i.exec(form[0])?.[1]?.replace(/&amp;/g, "&") ?? "";
  const body = new URLSearchParams();
  for (const input of form[1]!.matchAll(/<input[^>]*>/gi)) {
    const name = /name="([^"]*)"/i.exec(input[0])?.[1];
    const value = /value="([^"]*)"/i.exec(input[0])?.[1];
    if (name)
      body.set(
        name,
        fill[name] ?? value?.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))) ?? "",
      );
  }
  for (const [name, value] of Object.entries(fill)) if (!body.has(name)) body.set(name, value);
  return { action: new URL(action || page.href, page), body };
}

/**
 * Play the browser from an authorization URL until the redirect to `redirectUri`: follow
 * redirects, submit the hub's consent form and the provider's login and consent forms.
 * Returns the final redirect (with `code`, `state`, `iss` — or `error`).
 */
export async function followSignIn(
  start: URL,
  redirectUri: string,
  login: string,
  options: {
    decision?: "approve" | "deny";
    tamper?: (next: URL) => URL;
    /** Told each form the browser submits (the hub's consent, the IdP's login and consent). */
    onForm?: (page: URL, html: string) => void;
  } = {},
): Promise<URL> {
  const { decision = "approve", tamper = (next: URL) => next, onForm } = options;
  const jar = new CookieJar();
  let url = start;
  let init: RequestInit = {};
  for (let step = 0; step < 20; step++) {
    const response = await fetch(url, {
      ...init,
      redirect: "manual",
      headers: { ...(init.headers as Record<string, string>), Cookie: jar.header(url) },
    });
    jar.store(url, response);
    const location = response.headers.get("Location");
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      const next = tamper(new URL(location, url));
      if (next.href.startsWith(redirectUri)) return next;
      url = next;
      init = {};
      continue;
    }
    const html = await response.text();
    if (response.status !== 200)
      throw new Error(`sign-in step ${url.href} answered ${response.status}: ${html.slice(0, 300)}`);
    const form = formOf(html, url, { login, password: "any", decision });
    onForm?.(url, html);
    url = form.action;
    init = {
      method: "POST",
      body: form.body.toString(),
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    };
  }
  throw new Error(`the sign-in from ${start.href} did not reach ${redirectUri} in 20 steps`);
}
