/**
 * OAuth discovery against real loopback servers: a protected MCP server answering 401 with a
 * `WWW-Authenticate: Bearer resource_metadata=…` challenge plus RFC 9728 / RFC 8414 metadata,
 * and a "private" server that must never be reached. First the discovery itself (candidates,
 * the SSRF rules, readiness states), then a real agent against the fake control plane: the
 * `oauth_discovery` command, `/readyz`, Harpoon auto-registration and `harpoon://` rewriting —
 * the intent of tunnel-client's five `oauth_discovery` end-to-end tests.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { startAgent, type AgentHandle } from "../../agent/agent.ts";
import { loadConfig } from "../../agent/config/load.ts";
import { createOAuthDiscovery, discoveryReadiness } from "../../agent/oauth/discovery.ts";
import { createRegistry } from "../../agent/harpoon/registry.ts";
import { wellKnownResourceUrls } from "../../agent/oauth/resource-metadata.ts";
import { silentLogger } from "../../shared/log.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { startLoopback, startProtectedMcp, type LoopbackServer } from "../support/oauth-servers.ts";

const PRM = "/.well-known/oauth-protected-resource";

/** Metadata on the MCP server's own origin: resource `<origin>/mcp`, the origin as its authorization server. */
const sameOrigin = {
  resourceMetadata: (origin: string) => ({
    [`${PRM}/mcp`]: { resource: `${origin}/mcp`, authorization_servers: [origin], scopes_supported: ["mcp:tools"] },
  }),
};

async function startPrivate(t: TestContext): Promise<LoopbackServer> {
  const server = await startLoopback((_req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" }).end("customer-internal-secret");
  });
  t.after(() => server.close());
  return server;
}

function discoveryFor(
  mcp: LoopbackServer,
  extra: { trustedOrigins?: string[]; registry?: ReturnType<typeof createRegistry> } = {},
) {
  return createOAuthDiscovery({
    mcpUrl: new URL(`${mcp.origin}/mcp`),
    headers: { "X-Discovery": "d" },
    trustedOrigins: extra.trustedOrigins ?? [],
    hosts: { suffixes: [], patterns: [], loopback: true, private: true },
    ...(extra.registry ? { registry: extra.registry } : {}),
    fetch: (input, init) => fetch(input, init),
    log: silentLogger,
  });
}

describe("discovery", () => {
  test("the challenge's resource_metadata is tried first; discovery headers go on every discovery request", async (t) => {
    const mcp = await startProtectedMcp({
      challenge: (origin) => `${origin}/meta/prm`,
      resourceMetadata: (origin) => ({ "/meta/prm": { resource: `${origin}/mcp` } }),
    });
    t.after(() => mcp.close());
    const discovery = discoveryFor(mcp);
    t.after(() => discovery.close());
    await discovery.done;
    assert.deepEqual(discovery.state(), { kind: "ready" });
    const result = await discovery.discover();
    assert.equal(result.metadata?.source.href, `${mcp.origin}/meta/prm`);
    assert.equal(result.probeUrl, `${mcp.origin}/meta/prm`);
    assert.deepEqual(
      result.attempts.map((a) => [a.source, a.selected ?? false]),
      [["www_authenticate", true]],
    );
    assert.ok(mcp.seen.length >= 3);
    for (const request of mcp.seen) assert.equal(request.headers["x-discovery"], "d", request.path);
    assert.deepEqual(
      mcp.seen.slice(0, 2).map((r) => `${r.method} ${r.path}`),
      ["POST /mcp", "GET /meta/prm"],
    );
  });

  test("well-known URLs: path form first, then the root (the started line's oauth_discovery_urls)", () => {
    assert.deepEqual(
      wellKnownResourceUrls(new URL("https://mcp.example.com/tenant/mcp")).map((c) => [c.source, c.url.href]),
      [
        ["well_known_path", "https://mcp.example.com/.well-known/oauth-protected-resource/tenant/mcp"],
        ["well_known_root", "https://mcp.example.com/.well-known/oauth-protected-resource"],
      ],
    );
    assert.deepEqual(
      wellKnownResourceUrls(new URL("https://mcp.example.com/")).map((c) => c.url.href),
      ["https://mcp.example.com/.well-known/oauth-protected-resource"],
    );
  });

  test("SSRF: a challenge naming another origin is never fetched; well-known URLs still are", async (t) => {
    const internal = await startPrivate(t);
    const mcp = await startProtectedMcp({ challenge: () => `${internal.origin}/admin`, ...sameOrigin });
    t.after(() => mcp.close());
    const discovery = discoveryFor(mcp);
    t.after(() => discovery.close());
    const result = await discovery.discover();
    assert.equal(result.metadata?.source.href, `${mcp.origin}${PRM}/mcp`);
    assert.deepEqual(internal.seen, []);
    assert.match(result.attempts[0]!.error ?? "", /is not an origin OAuth discovery may contact/);
  });

  test("SSRF: a redirect to another origin is refused; an oversized document is refused", async (t) => {
    const internal = await startPrivate(t);
    const mcp = await startLoopback((req, res) => {
      if (req.url === `${PRM}/mcp`) res.writeHead(302, { Location: `${internal.origin}/metadata` }).end();
      else if (req.url === PRM)
        res.writeHead(200, { "Content-Type": "application/json" }).end(`{"resource":"${"x".repeat(70_000)}"}`);
      else res.writeHead(404).end();
    });
    t.after(() => mcp.close());
    const discovery = discoveryFor(mcp);
    t.after(() => discovery.close());
    await discovery.done;
    const state = discovery.state();
    assert.equal(state.kind, "failed");
    const [ready, text] = discoveryReadiness(state);
    assert.equal(ready, false);
    assert.match(text, /^oauth discovery failed: .*body larger than 65536 bytes/);
    const result = await discovery.discover();
    assert.match(result.attempts[0]!.error ?? "", /redirect from .* to another origin .* refused/);
    assert.deepEqual(internal.seen, []);
  });

  test("a failed startup run is retried in the background: readiness recovers once the metadata is served", async (t) => {
    let serving = false;
    const mcp = await startLoopback((req, res, origin) => {
      if (!serving || req.url !== `${PRM}/mcp`) return void res.writeHead(500).end("upstream down");
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ resource: `${origin}/mcp` }));
    });
    t.after(() => mcp.close());
    const discovery = createOAuthDiscovery({
      mcpUrl: new URL(`${mcp.origin}/mcp`),
      headers: {},
      trustedOrigins: [],
      hosts: { suffixes: [], patterns: [], loopback: true, private: true },
      fetch: (input, init) => fetch(input, init),
      log: silentLogger,
      recheckMs: 20,
    });
    t.after(() => discovery.close());
    await discovery.done;
    assert.deepEqual(discoveryReadiness(discovery.state()), [
      false,
      `oauth discovery failed: oauth discovery: status 500 (${mcp.origin}${PRM})`,
    ]);
    serving = true;
    const deadline = Date.now() + 10_000;
    while (discovery.state().kind !== "ready") {
      assert.ok(Date.now() < deadline, `still ${JSON.stringify(discovery.state())}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(discoveryReadiness(discovery.state()), [true, "ready"]);
  });

  test("a server with no metadata (404 everywhere, bare challenge) does not hold readiness", async (t) => {
    const mcp = await startProtectedMcp({});
    t.after(() => mcp.close());
    const discovery = discoveryFor(mcp);
    t.after(() => discovery.close());
    await discovery.done;
    assert.equal(discovery.state().kind, "absent");
    assert.deepEqual(discoveryReadiness(discovery.state()), [true, "ready"]);
  });

  test("an authorization server on another origin is fetched and vouched for only when oauth_trusted_origins lists it", async (t) => {
    const as = await startLoopback((req, res, origin) => {
      if (req.url !== "/.well-known/oauth-authorization-server") return void res.writeHead(404).end();
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          issuer: origin,
          token_endpoint: `${origin}/token`,
          registration_endpoint: `${origin}/register`,
        }),
      );
    });
    t.after(() => as.close());
    const mcp = await startProtectedMcp({
      resourceMetadata: (origin) => ({
        [`${PRM}/mcp`]: { resource: `${origin}/mcp`, authorization_servers: [as.origin] },
      }),
    });
    t.after(() => mcp.close());
    const untrusted = createRegistry({ allowPlaintext: true });
    const plain = discoveryFor(mcp, { registry: untrusted });
    t.after(() => plain.close());
    await plain.done;
    assert.deepEqual(as.seen, [], "not trusted: never contacted");
    assert.deepEqual(
      untrusted
        .targets()
        .map((target) => target.label)
        .sort(),
      ["oauth-prmd-resource-0", "oauth-prmd-source-0"],
    );

    const trusted = createRegistry({ allowPlaintext: true });
    const withTrust = discoveryFor(mcp, { registry: trusted, trustedOrigins: [as.origin] });
    t.after(() => withTrust.close());
    await withTrust.done;
    assert.equal(as.seen.length, 1);
    assert.deepEqual(
      trusted
        .targets()
        .map((target) => [target.label, target.url.href])
        .sort(),
      [
        ["oauth-auth-server-metadata-0", `${as.origin}/.well-known/oauth-authorization-server`],
        ["oauth-issuer-0", `${as.origin}/`],
        ["oauth-prmd-auth-server-0", `${as.origin}/`],
        ["oauth-prmd-resource-0", `${mcp.origin}/mcp`],
        ["oauth-prmd-source-0", `${mcp.origin}${PRM}/mcp`],
        ["oauth-registration-endpoint-0", `${as.origin}/register`],
        ["oauth-token-endpoint-0", `${as.origin}/token`],
      ],
    );
    // A second run registers nothing twice (no `-1` twins).
    await withTrust.discover();
    assert.equal(trusted.targets().length, 7);
  });
});

interface Running {
  cp: FakeControlPlane;
  agent: AgentHandle;
}

async function runAgent(
  t: TestContext,
  mcpUrl: string,
  argv: string[] = [],
  env: Record<string, string> = {},
): Promise<Running> {
  const cp = await startFakeControlPlane();
  t.after(() => cp.close());
  const loaded = await loadConfig({
    argv: [
      "--control-plane.base-url",
      cp.baseUrl,
      "--control-plane.tunnel-id",
      cp.tunnelId,
      "--mcp.server-url",
      mcpUrl,
      "--mcp.discovery-extra-headers",
      "X-Discovery: d",
      "--health.listen-addr",
      "127.0.0.1:0",
      "--control-plane.poll-timeout",
      "2s",
      ...argv,
    ],
    env: { CONTROL_PLANE_API_KEY: cp.apiKey, ...env },
    cwd: process.cwd(),
  });
  const agent = await startAgent(loaded, { log: silentLogger });
  t.after(() => agent.stop());
  return { cp, agent };
}

async function readyz(agent: AgentHandle): Promise<[number, string]> {
  const response = await fetch(`${agent.opsUrl}/readyz`);
  return [response.status, await response.text()];
}

const harpoonCall = (id: number, name: string, args: Record<string, unknown>) => ({
  channel: "harpoon",
  jsonrpc: { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } },
});

type ToolResult = {
  isError?: boolean;
  content?: Array<{ text?: string }>;
  structuredContent?: { targets?: Array<{ label: string }>; status_code?: number; body_base64?: string };
};

async function harpoon(
  cp: FakeControlPlane,
  id: number,
  name: string,
  args: Record<string, unknown>,
): Promise<ToolResult> {
  const [command] = cp.enqueue(harpoonCall(id, name, args));
  const final = await cp.waitForFinal(command!.request_id, 20_000);
  assert.equal(final.respType, "jsonrpc_response");
  const message = final.payload.resp_json as { result?: ToolResult; error?: unknown };
  assert.equal(message.error, undefined, JSON.stringify(message.error));
  return message.result!;
}

async function labels(cp: FakeControlPlane, id: number): Promise<string[]> {
  const result = await harpoon(cp, id, "list_targets", {});
  return (result.structuredContent?.targets ?? []).map((target) => target.label).sort();
}

/**
 * An agent polling main and harpoon, once discovery settled: the targets registered, which
 * always include the two tunnel-client's OAuth shim relies on.
 */
async function discoverWithHarpoon(t: TestContext, mcp: LoopbackServer) {
  const { cp, agent } = await runAgent(t, `${mcp.origin}/mcp`, ["--harpoon.allow-plaintext-http"], {
    CONTROL_PLANE_POLL_CHANNELS: "main,harpoon",
  });
  await cp.waitFor(() => agent.readiness({ strict: false }).ready, 20_000, "discovery to settle");
  const registered = await labels(cp, 1);
  for (const label of ["oauth-auth-server-metadata-0", "oauth-registration-endpoint-0"])
    assert.ok(registered.includes(label), `${label} in ${registered.join(", ")}`);
  return { cp, registered };
}

describe("a real agent", () => {
  test("oauth_discovery is answered with oauth_discovery_response; /readyz says `oauth discovery pending` until discovery settles", async (t) => {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    const mcp = await startProtectedMcp({ ...sameOrigin, hold });
    t.after(() => mcp.close());
    const { cp, agent } = await runAgent(t, `${mcp.origin}/mcp`);
    await cp.waitFor(() => mcp.seen.some((r) => r.path.startsWith(PRM)), 10_000, "discovery to ask for metadata");
    assert.deepEqual(await readyz(agent), [503, "oauth discovery pending"]);
    release();
    await cp.waitFor(() => agent.readiness({ strict: false }).ready, 20_000, "readiness");
    assert.deepEqual(await readyz(agent), [200, "ready (mcp initialize requires auth: HTTP 401)"]);

    const [command] = cp.enqueue({ command_type: "oauth_discovery" });
    const final = await cp.waitForFinal(command!.request_id, 20_000);
    assert.equal(final.respType, "oauth_discovery_response");
    assert.equal(final.payload.resp_code, 200);
    assert.deepEqual(final.payload.resp_json, {
      resource: `${mcp.origin}/mcp`,
      authorization_servers: [mcp.origin],
      scopes_supported: ["mcp:tools"],
    });
    assert.equal(final.payload.channel, "main");
    for (const request of mcp.seen) assert.equal(request.headers["x-discovery"], "d", request.path);
    cp.assertNoViolations();
  });

  test("oauth_discovery finds metadata only the WWW-Authenticate challenge names; other channels get 400 unsupported_channel", async (t) => {
    const mcp = await startProtectedMcp({
      challenge: (origin) => `${origin}/custom/prm`,
      resourceMetadata: (origin) => ({ "/custom/prm": { resource: `${origin}/mcp` } }),
    });
    t.after(() => mcp.close());
    const { cp } = await runAgent(t, `${mcp.origin}/mcp`);
    const [command, other] = cp.enqueue(
      { command_type: "oauth_discovery" },
      { command_type: "oauth_discovery", channel: "tools" },
    );
    const final = await cp.waitForFinal(command!.request_id, 20_000);
    assert.equal(final.respType, "oauth_discovery_response");
    assert.deepEqual([final.payload.resp_code, final.payload.resp_json], [200, { resource: `${mcp.origin}/mcp` }]);
    const refused = await cp.waitForFinal(other!.request_id, 20_000);
    assert.equal(refused.respType, "oauth_discovery_response");
    assert.equal(refused.payload.resp_code, 400);
    assert.equal((refused.payload.resp_json as { error: { code: string } }).error.code, "unsupported_channel");
    cp.assertNoViolations();
  });

  test("metadata on the customer host registers Harpoon targets; registration_endpoint comes back as harpoon://", async (t) => {
    const idpToken = "https://idp.example.com/oauth2/v1/token";
    const mcp = await startProtectedMcp({
      ...sameOrigin,
      authServer: (origin) => ({
        issuer: "https://idp.example.com/oauth2",
        authorization_endpoint: "https://idp.example.com/oauth2/v1/authorize",
        token_endpoint: idpToken,
        registration_endpoint: `${origin}/register`,
      }),
    });
    t.after(() => mcp.close());
    const { cp, registered } = await discoverWithHarpoon(t, mcp);
    assert.ok(!registered.includes("oauth-token-endpoint-0"), "the public IdP's token endpoint is not a target");

    const result = await harpoon(cp, 2, "call_target", { label: "oauth-auth-server-metadata-0", method: "GET" });
    assert.equal(result.structuredContent?.status_code, 200);
    const metadata = JSON.parse(Buffer.from(result.structuredContent!.body_base64!, "base64").toString("utf8"));
    assert.equal(metadata.registration_endpoint, "harpoon://oauth-registration-endpoint-0");
    assert.equal(metadata.token_endpoint, idpToken);
    cp.assertNoViolations();
  });

  for (const poison of ["exact_issuer", "issuer_mismatch", "private_prmd_resource_anchor"] as const) {
    test(`off-origin private endpoints are not registered (${poison})`, async (t) => {
      const internal = await startPrivate(t);
      const mcp = await startProtectedMcp({
        resourceMetadata: (origin) => ({
          [`${PRM}/mcp`]: {
            resource: poison === "private_prmd_resource_anchor" ? `${internal.origin}/mcp` : `${origin}/mcp`,
            authorization_servers: [origin],
          },
        }),
        authServer: (origin) => ({
          issuer: poison === "issuer_mismatch" ? `${internal.origin}/issuer` : origin,
          token_endpoint: `${internal.origin}/admin/config`,
          registration_endpoint: `${origin}/register`,
          revocation_endpoint: `${origin}/revoke`,
        }),
      });
      t.after(() => mcp.close());
      const { cp, registered } = await discoverWithHarpoon(t, mcp);
      const poisoned = {
        exact_issuer: ["oauth-token-endpoint-0"],
        issuer_mismatch: ["oauth-issuer-0", "oauth-token-endpoint-0"],
        private_prmd_resource_anchor: ["oauth-prmd-resource-0", "oauth-token-endpoint-0"],
      }[poison];
      for (const label of poisoned) assert.ok(!registered.includes(label), `${label} must not be registered`);

      const call = await harpoon(cp, 2, "call_target", {
        label: "oauth-token-endpoint-0",
        method: "POST",
        body: "grant_type=authorization_code",
      });
      assert.equal(call.isError, true);
      assert.match(call.content?.map((c) => c.text).join("\n") ?? "", /unknown target/);
      assert.deepEqual(internal.seen, [], "the private endpoint was never called");
      cp.assertNoViolations();
    });
  }

  test("a Harpoon-only agent never contacts the unpolled main server and registers nothing", async (t) => {
    const main = await startProtectedMcp(sameOrigin);
    t.after(() => main.close());
    const { cp, agent } = await runAgent(
      t,
      `${main.origin}/mcp`,
      ["--harpoon.allow-plaintext-http", "--harpoon.target", `label=seed,url=${main.origin}/seed`],
      { CONTROL_PLANE_POLL_CHANNELS: "harpoon" },
    );
    await cp.waitForPolls(1, 10_000);
    assert.deepEqual(await labels(cp, 1), ["seed"]);
    assert.deepEqual(main.seen, []);
    assert.equal((await readyz(agent))[1], "ready");
    cp.assertNoViolations();
  });
});
