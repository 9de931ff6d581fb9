/**
 * Harpoon's allowlist pieces without the network: the target registry, the host
 * classifier behind `harpoon.hosts_include_*`, OAuth auto-registration, and the
 * `harpoon://<label>` rewriting of results.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRegistry, HarpoonTargetError } from "../../agent/harpoon/registry.ts";
import { createHostClassifier, registerDiscovered, type DiscoveredUrl } from "../../agent/harpoon/auto-register.ts";
import { createRewriter } from "../../agent/harpoon/rewrite.ts";
import { silentLogger } from "../../shared/log.ts";

const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);

describe("registry", () => {
  test("refuses bad labels, non-http schemes, plaintext, traversal and duplicates, naming the entry", () => {
    const cases: Array<[string, string, RegExp]> = [
      ["Upper", "https://a.example/", /label "Upper" is invalid/],
      ["-dash", "https://a.example/", /is invalid/],
      ["ftp", "ftp://a.example/", /only http and https/],
      ["relative", "/token", /not an absolute URL/],
      ["plain", "http://a.example/token", /plaintext http; use https or set harpoon.allow_plaintext_http/],
      ["dots", "https://a.example/a/../admin", /'\.' or '\.\.' segments/],
      ["encoded", "https://a.example/a/%2e%2E/admin", /'\.' or '\.\.' segments/],
    ];
    for (const [label, url, message] of cases) {
      assert.throws(
        () => createRegistry({ allowPlaintext: false, targets: [{ label, url }] }),
        (error: unknown) => {
          assert.ok(error instanceof HarpoonTargetError);
          assert.match(error.message, /^harpoon\.targets\[0\]: /);
          assert.match(error.message, message);
          return true;
        },
        `${label} ${url}`,
      );
    }
    assert.throws(
      () =>
        createRegistry({
          allowPlaintext: false,
          targets: [
            { label: "a", url: "https://a.example/" },
            { label: "a", url: "https://b.example/" },
          ],
        }),
      /harpoon\.targets\[1\]: Harpoon target label a is registered twice/,
    );
  });

  test("match is exact: scheme/host case and default port normalise, a path under the target or another port does not", () => {
    const registry = createRegistry({
      allowPlaintext: false,
      targets: [{ label: "token", url: "https://Auth.Example:443/oauth/token" }],
    });
    const token = registry.lookup("token");
    assert.equal(token?.url.href, "https://auth.example/oauth/token");
    assert.equal(token?.written, "https://Auth.Example:443/oauth/token");
    assert.equal(registry.match(new URL("HTTPS://auth.example/oauth/token"))?.label, "token");
    assert.equal(registry.match(new URL("https://auth.example/oauth/token/x")), undefined);
    assert.equal(registry.match(new URL("https://auth.example/oauth/token?x=1")), undefined);
    assert.equal(registry.match(new URL("https://auth.example:8443/oauth/token")), undefined);
    assert.equal(registry.match(new URL("http://auth.example/oauth/token")), undefined);
  });

  test("plaintext targets only with allowPlaintext; configured entries keep their description and socket", () => {
    const registry = createRegistry({
      allowPlaintext: true,
      targets: [
        {
          label: "local",
          url: "http://127.0.0.1:8080/status",
          description: " Status ",
          unixSocket: "/tmp/s.sock",
          category: "config",
        },
      ],
    });
    const local = registry.lookup(" local ");
    assert.deepEqual(
      { ...local, url: local?.url.href },
      {
        label: "local",
        url: "http://127.0.0.1:8080/status",
        written: "http://127.0.0.1:8080/status",
        category: "config",
        source: "config",
        tags: [],
        description: "Status",
        unixSocket: "/tmp/s.sock",
      },
    );
    assert.equal(registry.match(new URL("http://127.0.0.1:8080/status"))?.label, "local");
  });
});

describe("host classifier (hosts_include_*)", () => {
  const all = createHostClassifier({
    includeLoopback: true,
    includePrivate: true,
    suffixes: ["corp.example", ".lan"],
    patterns: ["^auth[0-9]+\\.example$"],
  });

  test("loopback, RFC 1918, ULA and IPv4-mapped literals are private; public ones are not", () => {
    const table: Array<[string, boolean, string]> = [
      ["127.0.0.1", true, "loopback"],
      ["127.9.9.9", true, "loopback"],
      ["[::1]", true, "loopback"],
      ["::ffff:7f00:1", true, "loopback"],
      ["10.1.2.3", true, "private-ip"],
      ["172.16.0.1", true, "private-ip"],
      ["172.31.255.255", true, "private-ip"],
      ["192.168.1.1", true, "private-ip"],
      ["[fd12::1]", true, "private-ip"],
      ["fc00::", true, "private-ip"],
      ["::ffff:10.0.0.1", true, "private-ip"],
      ["172.32.0.1", false, ""],
      ["8.8.8.8", false, ""],
      ["169.254.169.254", false, ""],
      ["2001:db8::1", false, ""],
      ["localhost", false, ""],
    ];
    for (const [host, isPrivate, reason] of table) assert.deepEqual(all(host), { private: isPrivate, reason }, host);
  });

  test("suffixes match the domain and its subdomains; patterns are case-insensitive; trailing dots ignored", () => {
    assert.deepEqual(all("corp.example"), { private: true, reason: "suffix:.corp.example" });
    assert.deepEqual(all("IDP.Corp.Example."), { private: true, reason: "suffix:.corp.example" });
    assert.deepEqual(all("notcorp.example"), { private: false, reason: "" });
    assert.deepEqual(all("printer.lan"), { private: true, reason: "suffix:.lan" });
    assert.deepEqual(all("AUTH7.example"), { private: true, reason: "regex:^auth[0-9]+\\.example$" });
    assert.deepEqual(all("auth.example"), { private: false, reason: "" });
  });

  test("patterns are RE2, as tunnel-client's Go regexp: inline flags work, lookaround is not accepted", () => {
    const classify = createHostClassifier({
      includeLoopback: false,
      includePrivate: false,
      suffixes: [],
      patterns: ["(?i)^idp-[0-9]+\\.corp$", "(?<=x)y"],
    });
    assert.deepEqual(classify("IDP-7.corp"), { private: true, reason: "regex:(?i)^idp-[0-9]+\\.corp$" });
    assert.deepEqual(classify("xy"), { private: false, reason: "" });
  });

  test("a pattern that backtracks in JavaScript matches a long hostile host in linear time", () => {
    // Discovery classifies hosts an MCP server named; with a backtracking engine this pattern
    // takes exponential time on "a"×N + "!" (the test would never finish).
    const classify = createHostClassifier({
      includeLoopback: false,
      includePrivate: false,
      suffixes: [],
      patterns: ["^(a|aa)*$"],
    });
    assert.deepEqual(classify(`${"a".repeat(5000)}!`), { private: false, reason: "" });
    assert.deepEqual(classify("a".repeat(5000)), { private: true, reason: "regex:^(a|aa)*$" });
  });

  test("include_loopback / include_private switch their ranges off", () => {
    const none = createHostClassifier({ includeLoopback: false, includePrivate: false, suffixes: [], patterns: [] });
    assert.equal(none("127.0.0.1").private, false);
    assert.equal(none("10.0.0.1").private, false);
  });
});

describe("OAuth auto-registration", () => {
  const classify = createHostClassifier({
    includeLoopback: true,
    includePrivate: true,
    suffixes: ["internal"],
    patterns: [],
  });
  const oauth = (url: string, role: string, extra: Partial<DiscoveredUrl> = {}): DiscoveredUrl => ({
    url,
    role,
    source: "oauth",
    index: 0,
    ...extra,
  });

  test("private hosts are registered as oauth-<role>-<index> with role tags; public ones are skipped", () => {
    const registry = createRegistry({ allowPlaintext: true });
    const registered = registerDiscovered(
      registry,
      classify,
      [
        oauth("https://auth.internal/oauth/token", "token-endpoint", { group: "auth-server:abc:0" }),
        oauth("http://10.0.0.5/register", "registration-endpoint"),
        oauth("https://public.example/token", "revocation-endpoint"),
      ],
      silentLogger,
    );
    assert.deepEqual(
      registered.map((t) => [t.label, t.category, t.tags, t.inclusionReason]),
      [
        [
          "oauth-token-endpoint-0",
          "oauth",
          ["auth-server-metadata", "group=auth-server:abc:0", "token-endpoint"],
          "suffix:.internal",
        ],
        ["oauth-registration-endpoint-0", "oauth", ["auth-server-metadata", "registration-endpoint"], "private-ip"],
      ],
    );
    assert.equal(registry.lookup("oauth-revocation-endpoint-0"), undefined);
  });

  test("the protected resource's host and its subdomains are admitted even when public; a colliding label gets -1", () => {
    const registry = createRegistry({
      allowPlaintext: false,
      targets: [{ label: "oauth-issuer-0", url: "https://other.internal/" }],
    });
    const registered = registerDiscovered(
      registry,
      classify,
      [
        oauth("https://mcp.example.com/mcp", "prmd-resource"),
        oauth("https://login.mcp.example.com/", "issuer"),
        oauth("https://elsewhere.example.net/token", "token-endpoint"),
      ],
      silentLogger,
    );
    assert.deepEqual(
      registered.map((t) => [t.label, t.inclusionReason]),
      [
        ["oauth-prmd-resource-0", "oauth-protected-resource-host"],
        ["oauth-issuer-0-1", "oauth-protected-resource-host"],
      ],
    );
  });

  test("a URL discovery cannot vouch for is admitted only on the resource's exact origin, never for looking private", () => {
    const registry = createRegistry({ allowPlaintext: true });
    const registered = registerDiscovered(
      registry,
      classify,
      [
        oauth("http://127.0.0.1:9000/mcp", "prmd-resource"),
        oauth("http://127.0.0.1:9000/token", "token-endpoint", { disallowPrivateHostRegistration: true }),
        oauth("http://127.0.0.1:9001/token", "jwks-uri", { disallowPrivateHostRegistration: true }),
        oauth("http://10.0.0.9/metadata", "auth-server-metadata", { disallowPrivateHostRegistration: true }),
      ],
      silentLogger,
    );
    assert.deepEqual(
      registered.map((t) => [t.label, t.inclusionReason]),
      [
        ["oauth-prmd-resource-0", "loopback"],
        ["oauth-token-endpoint-0", "oauth-protected-resource-host"],
      ],
    );
  });

  test("plaintext discoveries are skipped when plaintext is not allowed", () => {
    const registry = createRegistry({ allowPlaintext: false });
    assert.deepEqual(
      registerDiscovered(registry, classify, [oauth("http://10.0.0.5/token", "token-endpoint")], silentLogger),
      [],
    );
  });
});

describe("harpoon:// rewriting", () => {
  const registry = createRegistry({
    allowPlaintext: false,
    targets: [
      { label: "root", url: "https://example.com" },
      { label: "api", url: "https://example.com/api" },
    ],
  });

  test("exact target URLs in JSON string values become harpoon://<label>; keys, near misses and non-JSON stay", () => {
    const rewriter = createRewriter(registry.targets());
    const body = new TextEncoder().encode(
      JSON.stringify({
        url: "https://EXAMPLE.com/api",
        root: "https://example.com/",
        nested: ["https://example.com/api/", "api://x", 3],
        "https://example.com/api": "key stays",
        opaque: "https:example.com/api",
      }),
    );
    assert.deepEqual(JSON.parse(text(rewriter.jsonBody(body))!), {
      url: "harpoon://api",
      root: "harpoon://root",
      nested: ["https://example.com/api/", "api://x", 3],
      "https://example.com/api": "key stays",
      opaque: "https:example.com/api",
    });
    assert.equal(rewriter.jsonBody(new TextEncoder().encode('{"a":"https://other.example/"}')), undefined);
    assert.equal(rewriter.jsonBody(new TextEncoder().encode('{"url":')), undefined);
    assert.equal(text(rewriter.jsonBody(new TextEncoder().encode('"https://example.com/api"'))), '"harpoon://api"');
  });

  test("Location, Content-Location and Link are rewritten; other headers are not", () => {
    const rewriter = createRewriter(registry.targets());
    assert.deepEqual(
      rewriter.headers({
        Location: ["https://example.com/api"],
        Link: ['<https://example.com/api>; rel="next", <https://example.com/api/v2>; rel="x"'],
        "X-Other": ["https://example.com/api"],
      }),
      {
        Location: ["harpoon://api"],
        Link: ['<harpoon://api>; rel="next", <https://example.com/api/v2>; rel="x"'],
        "X-Other": ["https://example.com/api"],
      },
    );
  });

  test("OAuth: PRMD resource stays, the JSON key picks the role among targets sharing a URL", () => {
    const oauth = createRegistry({ allowPlaintext: false });
    for (const [label, url, tags] of [
      ["oauth-prmd-resource-0", "https://mcp.example.test", ["protected-resource-metadata", "resource"]],
      ["oauth-prmd-auth-server-0", "https://mcp.example.test", ["protected-resource-metadata", "authorization-server"]],
      ["oauth-issuer-0", "https://mcp.example.test", ["auth-server-metadata", "issuer"]],
      ["oauth-token-endpoint-0", "https://mcp.example.test/oauth/token", ["auth-server-metadata", "token-endpoint"]],
    ] as const)
      oauth.register({ label, url, tags: [...tags], category: "oauth" });
    const rewriter = createRewriter(oauth.targets());
    const body = new TextEncoder().encode(
      JSON.stringify({
        resource: "https://mcp.example.test",
        authorization_servers: ["https://mcp.example.test"],
        issuer: "https://mcp.example.test",
        token_endpoint: "https://mcp.example.test/oauth/token",
      }),
    );
    assert.deepEqual(JSON.parse(text(rewriter.jsonBody(body))!), {
      resource: "https://mcp.example.test",
      authorization_servers: ["harpoon://oauth-prmd-auth-server-0"],
      issuer: "harpoon://oauth-issuer-0",
      token_endpoint: "harpoon://oauth-token-endpoint-0",
    });
  });
});
