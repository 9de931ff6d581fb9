/**
 * The identity settings (relay/identity/settings.ts): OAuth is off without an issuer; the
 * issuer must be https (or loopback http); the redirect allowlist admits exactly what the
 * admin listed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { HubConfigError } from "../../relay/config.ts";
import { parseIdentitySettings, redirectAllowed } from "../../relay/identity/settings.ts";

describe("identity settings", () => {
  test("no issuer: OAuth is off", () => {
    assert.equal(parseIdentitySettings({}), undefined);
    assert.equal(parseIdentitySettings({ AIRLOCK_OIDC_ISSUER: "  ", AIRLOCK_OIDC_CLIENT_ID: "x" }), undefined);
  });

  test("an issuer needs https (http only on loopback) and a client id", () => {
    const ok = parseIdentitySettings({
      AIRLOCK_OIDC_ISSUER: "https://login.example.com/",
      AIRLOCK_OIDC_CLIENT_ID: "hub",
    });
    assert.equal(ok?.issuer.href, "https://login.example.com/");
    assert.equal(ok?.scopes, "openid email profile");
    assert.equal(ok?.groupsClaim, "groups");
    assert.deepEqual(ok?.redirectOrigins, ["loopback"]);
    assert.ok(parseIdentitySettings({ AIRLOCK_OIDC_ISSUER: "http://127.0.0.1:9000", AIRLOCK_OIDC_CLIENT_ID: "hub" }));
    assert.throws(
      () => parseIdentitySettings({ AIRLOCK_OIDC_ISSUER: "http://login.example.com", AIRLOCK_OIDC_CLIENT_ID: "hub" }),
      /AIRLOCK_OIDC_ISSUER: http:\/\/login.example.com must be https/,
    );
    assert.throws(
      () => parseIdentitySettings({ AIRLOCK_OIDC_ISSUER: "login.example.com", AIRLOCK_OIDC_CLIENT_ID: "hub" }),
      /is not a URL/,
    );
    assert.throws(
      () => parseIdentitySettings({ AIRLOCK_OIDC_ISSUER: "https://login.example.com" }),
      (error: Error) => error instanceof HubConfigError && /AIRLOCK_OIDC_CLIENT_ID is not set/.test(error.message),
    );
  });

  test("redirect URIs: loopback by default, listed https origins exactly, nothing else", () => {
    const local = parseIdentitySettings({ AIRLOCK_OIDC_ISSUER: "https://idp.example", AIRLOCK_OIDC_CLIENT_ID: "hub" })!;
    assert.ok(redirectAllowed(local, "http://127.0.0.1:6274/oauth/callback"));
    assert.ok(redirectAllowed(local, "http://localhost/cb"));
    assert.ok(!redirectAllowed(local, "https://claude.ai/api/mcp/auth_callback"));
    assert.ok(!redirectAllowed(local, "http://127.0.0.1.evil.example/cb"));
    assert.ok(!redirectAllowed(local, "http://user@127.0.0.1/cb"));
    const hosted = parseIdentitySettings({
      AIRLOCK_OIDC_ISSUER: "https://idp.example",
      AIRLOCK_OIDC_CLIENT_ID: "hub",
      AIRLOCK_OAUTH_REDIRECT_ORIGINS: "https://claude.ai, loopback",
    })!;
    assert.ok(redirectAllowed(hosted, "https://claude.ai/api/mcp/auth_callback"));
    assert.ok(!redirectAllowed(hosted, "https://claude.ai.evil.example/cb"));
    assert.ok(!redirectAllowed(hosted, "http://claude.ai/cb"));
    assert.ok(!redirectAllowed(hosted, "https://claude.ai/cb#fragment"));
    assert.ok(!redirectAllowed(hosted, "not a url"));
    assert.throws(
      () =>
        parseIdentitySettings({
          AIRLOCK_OIDC_ISSUER: "https://idp.example",
          AIRLOCK_OIDC_CLIENT_ID: "hub",
          AIRLOCK_OAUTH_REDIRECT_ORIGINS: "http://claude.ai",
        }),
      /must be https/,
    );
  });

  test("access-token lifetime: the library's default unless set; whole seconds, at least the library's 60", () => {
    const base = { AIRLOCK_OIDC_ISSUER: "https://idp.example", AIRLOCK_OIDC_CLIENT_ID: "hub" };
    assert.equal(parseIdentitySettings(base)?.accessTokenTtl, undefined);
    assert.equal(parseIdentitySettings({ ...base, AIRLOCK_OAUTH_ACCESS_TOKEN_TTL: " 900 " })?.accessTokenTtl, 900);
    for (const bad of ["59", "1.5", "an hour", "-60"]) {
      assert.throws(
        () => parseIdentitySettings({ ...base, AIRLOCK_OAUTH_ACCESS_TOKEN_TTL: bad }),
        /AIRLOCK_OAUTH_ACCESS_TOKEN_TTL: .* at least 60/,
        bad,
      );
    }
  });

  test("AIRLOCK_OAUTH_REAUTH_AFTER: a day by default; seconds or a duration, at least a minute", () => {
    const base = { AIRLOCK_OIDC_ISSUER: "https://idp.example", AIRLOCK_OIDC_CLIENT_ID: "hub" };
    assert.equal(parseIdentitySettings(base)?.reauthAfter, 86_400);
    assert.equal(parseIdentitySettings({ ...base, AIRLOCK_OAUTH_REAUTH_AFTER: "7200" })?.reauthAfter, 7200);
    assert.equal(parseIdentitySettings({ ...base, AIRLOCK_OAUTH_REAUTH_AFTER: " 8h " })?.reauthAfter, 28_800);
    for (const bad of ["59", "30s", "1.5", "a day", "-60", "1500ms"]) {
      assert.throws(
        () => parseIdentitySettings({ ...base, AIRLOCK_OAUTH_REAUTH_AFTER: bad }),
        /AIRLOCK_OAUTH_REAUTH_AFTER: .* at least 60s/,
        bad,
      );
    }
  });

  test("metadata-document origins: none by default; https only, loopback http only with the test flag", () => {
    const base = { AIRLOCK_OIDC_ISSUER: "https://idp.example", AIRLOCK_OIDC_CLIENT_ID: "hub" };
    assert.deepEqual(parseIdentitySettings(base)?.cimdOrigins, []);
    assert.deepEqual(
      parseIdentitySettings({ ...base, AIRLOCK_OAUTH_CIMD_ORIGINS: "https://app.example/x, https://b.example" })
        ?.cimdOrigins,
      ["https://app.example", "https://b.example"],
    );
    assert.throws(
      () => parseIdentitySettings({ ...base, AIRLOCK_OAUTH_CIMD_ORIGINS: "http://app.example" }),
      /AIRLOCK_OAUTH_CIMD_ORIGINS: http:\/\/app.example must be https/,
    );
    assert.throws(
      () => parseIdentitySettings({ ...base, AIRLOCK_OAUTH_CIMD_ORIGINS: "http://127.0.0.1:8080" }),
      /AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK=1/,
    );
    assert.deepEqual(
      parseIdentitySettings({
        ...base,
        AIRLOCK_OAUTH_CIMD_ORIGINS: "http://127.0.0.1:8080",
        AIRLOCK_OAUTH_CIMD_ALLOW_LOOPBACK: "1",
      })?.cimdOrigins,
      ["http://127.0.0.1:8080"],
    );
    assert.throws(() => parseIdentitySettings({ ...base, AIRLOCK_OAUTH_CIMD_ORIGINS: "app.example" }), /is not a URL/);
  });
});
