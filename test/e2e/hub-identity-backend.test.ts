/**
 * Identity to backends: the hub (workerd) signs a short-lived ES256 JWT naming the caller
 * for each command and the agent hands it to an HTTP MCP server in `X-Airlock-Identity`.
 * The backend here is a real HTTP server on loopback that verifies the token with `jose`
 * against the hub's published JWKS. A client's own `X-Airlock-Identity` never reaches it,
 * and a hub without a signing key sends none.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LocalHub } from "../../agent/hub-local/run.ts";
import { HUB_FLAGS, readHubCommand, startHub } from "../../agent/cli/hub.ts";
import { parseFlags } from "../../agent/cli/options.ts";
import { sha256Hex } from "../../shared/audit/digest.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, tunnelId } from "../support/hub.ts";
import { startHubAgent, type HubAgent } from "../support/hub-stack.ts";
import { controlPlaneFlags, startAgentProcess, type AgentProcess } from "../support/agent-process.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";

const TUNNEL = tunnelId(0x1d3);
const FORGED = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";

/** An MCP server over plain JSON-RPC/HTTP that records every identity header it is sent and verifies it. */
class IdentityBackend {
  readonly seen: Array<string | undefined> = [];
  readonly verified: JWTPayload[] = [];
  readonly failures: string[] = [];
  server!: Server;
  jwks?: ReturnType<typeof createRemoteJWKSet>;
  issuer = "";
  audience = "";

  async start(): Promise<string> {
    this.server = createServer(
      (req, res) =>
        void this.#handle(req).then(
          (reply) => {
            if (reply === undefined) return void res.writeHead(202).end();
            res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(reply));
          },
          // Not JSON-RPC (the agent's OAuth discovery asks for /.well-known/… metadata): none here.
          () => void res.writeHead(404).end(),
        ),
    );
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/mcp`;
  }

  async #handle(req: IncomingMessage): Promise<unknown> {
    let body = "";
    for await (const chunk of req) body += chunk;
    const message = JSON.parse(body) as { id?: number; method: string; params?: { protocolVersion?: string } };
    const header = req.headers["x-airlock-identity"];
    if (message.method === "tools/call") {
      this.seen.push(Array.isArray(header) ? header.join(",") : header);
      if (typeof header === "string" && this.jwks) {
        try {
          this.verified.push(
            (
              await jwtVerify(header, this.jwks, {
                issuer: this.issuer,
                audience: this.audience,
                algorithms: ["ES256"],
              })
            ).payload,
          );
        } catch (error) {
          this.failures.push(String(error));
        }
      }
    }
    if (message.id === undefined) return undefined;
    const result =
      message.method === "initialize"
        ? {
            protocolVersion: message.params?.protocolVersion ?? "2025-06-18",
            capabilities: { tools: {} },
            serverInfo: { name: "identity-backend", version: "1" },
          }
        : message.method === "tools/list"
          ? { tools: [{ name: "whoami", inputSchema: { type: "object" } }] }
          : { content: [{ type: "text", text: "ok" }] };
    return { jsonrpc: "2.0", id: message.id, result };
  }
}

async function signingKeyJwk(): Promise<string> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  return JSON.stringify(await crypto.subtle.exportKey("jwk", pair.privateKey));
}

/** Hub (with the signing key, if given) and agent in front of `backend`; `stop` ends all three. */
async function startStack(
  backend: IdentityBackend,
  identitySigningKey?: string,
): Promise<{ hub: LocalHub; stop: () => Promise<void> }> {
  const url = await backend.start();
  // Through `airlock hub`'s own flags, so --identity-signing-key is what turns it on.
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-identity-backend-"));
  const io = {
    stdout: () => {},
    stderr: () => {},
    env: { K: AGENT_KEY, T: CLIENT_TOKEN, ...(identitySigningKey ? { SIGNING_KEY: identitySigningKey } : {}) },
    cwd: stateDir,
  };
  const flags = [
    "--listen",
    "127.0.0.1:0",
    "--tunnel-id",
    TUNNEL,
    "--agent-key",
    "env:K",
    "--client-token",
    "env:T",
    "--state-dir",
    stateDir,
    ...(identitySigningKey ? ["--identity-signing-key", "env:SIGNING_KEY"] : []),
  ];
  const hub = await startHub(await readHubCommand(parseFlags("hub", flags, HUB_FLAGS), io));
  const agent: HubAgent = await startHubAgent(hub.url, TUNNEL, ["--mcp.server-url", url]);
  return {
    hub,
    stop: async () => {
      await agent.stop();
      await hub.close();
      backend.server.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

const call = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "whoami", arguments: {} } };

describe("identity to backends, on (AIRLOCK_IDENTITY_SIGNING_KEY set)", () => {
  const backend = new IdentityBackend();
  let hub: LocalHub;
  let stop: () => Promise<void> = async () => {};

  before(async () => {
    ({ hub, stop } = await startStack(backend, await signingKeyJwk()));
    backend.issuer = hub.url.origin;
    backend.audience = `${hub.url.origin}/v1/mcp/${TUNNEL}/main`;
    backend.jwks = createRemoteJWKSet(new URL("/.well-known/jwks.json", hub.url));
  });

  after(() => stop());

  test("the backend gets a hub-signed token naming the caller, verifiable with the hub's JWKS; a client's forged copy is dropped", async () => {
    const response = await mcpPost(new URL(`/v1/mcp/${TUNNEL}`, hub.url), call, {
      headers: { "X-Airlock-Identity": FORGED },
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(backend.seen.length, 1);
    assert.notEqual(backend.seen[0], FORGED, "the client's header never reaches the backend");
    assert.ok(!backend.seen[0]?.includes(FORGED));
    assert.deepEqual(backend.failures, []);
    const claims = backend.verified[0]!;
    assert.equal(claims.sub, `token:${(await sha256Hex(CLIENT_TOKEN)).slice(0, 12)}`);
    assert.deepEqual(claims.groups, []);
    assert.equal(claims.auth_method, "static_token");
    assert.ok(claims.exp! - claims.iat! <= 300, "lives at most 5 minutes");
    const jwks = (await (await fetch(new URL("/.well-known/jwks.json", hub.url))).json()) as {
      keys: Array<Record<string, string>>;
    };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]!.d, undefined, "only the public half is published");
  });

  test("a token for one channel does not verify for another audience", async () => {
    const token = backend.seen[0]!;
    await assert.rejects(
      jwtVerify(token, backend.jwks!, { issuer: backend.issuer, audience: `${hub.url.origin}/v1/mcp/${TUNNEL}/other` }),
      /aud/,
    );
  });
});

describe("identity to backends, off (the default)", () => {
  const backend = new IdentityBackend();
  let hub: LocalHub;
  let stop: () => Promise<void> = async () => {};

  before(async () => {
    ({ hub, stop } = await startStack(backend));
  });

  after(() => stop());

  test("no identity header reaches the backend, forged or otherwise, and no JWKS is published", async () => {
    const response = await mcpPost(new URL(`/v1/mcp/${TUNNEL}`, hub.url), call, {
      headers: { "X-Airlock-Identity": FORGED },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(backend.seen, [undefined]);
    assert.equal((await fetch(new URL("/.well-known/jwks.json", hub.url))).status, 404);
  });
});

describe("an agent polling a control plane that does not assert identity (no `identity` extension)", () => {
  const backend = new IdentityBackend();
  let cp: FakeControlPlane;
  let agent: AgentProcess;

  before(async () => {
    const url = await backend.start();
    cp = await startFakeControlPlane();
    agent = await startAgentProcess(
      "node",
      [...controlPlaneFlags(cp, "env:E2E_KEY"), "--control-plane.poll-timeout", "2s", "--mcp.server-url", url],
      { E2E_KEY: cp.apiKey },
    );
  });

  after(async () => {
    await agent?.stop("SIGKILL");
    await cp?.close();
    backend.server?.close();
  });

  test("drops an X-Airlock-Identity header in the command: it could be a client's", async () => {
    const [command] = cp.enqueue({ channel: "main", jsonrpc: call, headers: { "X-Airlock-Identity": [FORGED] } });
    const final = await cp.waitForFinal(command!.request_id, 15_000);
    assert.equal(final.payload.resp_code, 200);
    assert.deepEqual(backend.seen, [undefined]);
    cp.assertNoViolations();
  });
});
