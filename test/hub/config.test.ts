/** Hub configuration (AIRLOCK_TUNNELS, AIRLOCK_HUB_*) and credential digests. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createWorkerApp } from "../../relay/app.ts";
import { matchesDigest } from "../../relay/auth.ts";
import { sha256Hex } from "../../shared/audit/digest.ts";
import { HubConfigError, parseSettings, parseTunnels } from "../../relay/config.ts";
import { hubBindings } from "../../agent/hub-local/run.ts";
import { assertSchema } from "../support/openapi.ts";

const ID = `tunnel_${"a".repeat(32)}`;
const DIGEST = "0".repeat(64);

describe("AIRLOCK_TUNNELS", () => {
  test("a valid entry gets defaults", () => {
    const tunnels = parseTunnels(
      JSON.stringify({ [ID]: { agent_key_sha256: [DIGEST], client_token_sha256: [DIGEST] } }),
    );
    assert.deepEqual(tunnels.get(ID), {
      name: "",
      description: "",
      agent_key_sha256: [DIGEST],
      client_token_sha256: [DIGEST],
      pass_client_authorization: false,
    });
  });

  test("errors name the variable and the key path", () => {
    const cases: Array<[string | undefined, RegExp]> = [
      [undefined, /AIRLOCK_TUNNELS is not set/],
      ["{", /AIRLOCK_TUNNELS is not valid JSON/],
      [
        JSON.stringify({ tunnel_short: { agent_key_sha256: [DIGEST], client_token_sha256: [DIGEST] } }),
        /AIRLOCK_TUNNELS\.tunnel_short: tunnel ids/,
      ],
      [
        JSON.stringify({ [ID]: { agent_key_sha256: ["not-hex"], client_token_sha256: [DIGEST] } }),
        new RegExp(`AIRLOCK_TUNNELS\\.${ID}\\.agent_key_sha256\\.0: expected a lowercase hex SHA-256`),
      ],
      [
        JSON.stringify({ [ID]: { agent_key_sha256: [DIGEST] } }),
        new RegExp(
          `${ID}\\.client_token_sha256: client_token_sha256 needs at least one hash unless pass_client_authorization`,
        ),
      ],
      [
        JSON.stringify({ [ID]: { agent_key_sha256: [DIGEST], client_token_sha256: [DIGEST], agent_keys: ["plain"] } }),
        /Unrecognized key: "agent_keys"/,
      ],
    ];
    for (const [raw, pattern] of cases)
      assert.throws(
        () => parseTunnels(raw),
        (error: Error) => error instanceof HubConfigError && pattern.test(error.message),
      );
  });

  test("a pass-through tunnel may leave client authentication to the MCP server", () => {
    const tunnels = parseTunnels(
      JSON.stringify({ [ID]: { agent_key_sha256: [DIGEST], pass_client_authorization: true } }),
    );
    assert.deepEqual(tunnels.get(ID)?.client_token_sha256, []);
  });

  test("with OAuth on (an OpenID issuer configured) a tunnel needs no static client token", () => {
    const raw = JSON.stringify({ [ID]: { agent_key_sha256: [DIGEST] } });
    assert.deepEqual(parseTunnels(raw, { oauth: true }).get(ID)?.client_token_sha256, []);
    assert.throws(() => parseTunnels(raw), /client_token_sha256 needs at least one hash .*OAuth is on/);
    // The other checks still hold.
    assert.throws(
      () => parseTunnels(JSON.stringify({ [ID]: { agent_key_sha256: [], extra: 1 } }), { oauth: true }),
      /agent_key_sha256: at least one agent key hash is required.*Unrecognized key: "extra"/,
    );
  });
});

describe("AIRLOCK_HUB_* settings", () => {
  test("defaults, overrides, and errors naming the variable", () => {
    assert.deepEqual(parseSettings({}), {
      livenessMs: 10_000,
      maxPollHoldMs: 30_000,
      responseTimeoutMs: 120_000,
      maxQueued: 1000,
      maxRequestBytes: 4 * 1024 * 1024,
      maxResponseBytes: 16 * 1024 * 1024,
      sseKeepaliveMs: 15_000,
      sessionIdleMs: 3_600_000,
      maxSessions: 10_000,
    });
    assert.equal(parseSettings({ AIRLOCK_HUB_SESSION_IDLE_MS: "60000" }).sessionIdleMs, 60_000);
    assert.equal(parseSettings({ AIRLOCK_HUB_MAX_QUEUED: "7" }).maxQueued, 7);
    assert.throws(() => parseSettings({ AIRLOCK_HUB_AGENT_LIVENESS_MS: "soon" }), /env\.AIRLOCK_HUB_AGENT_LIVENESS_MS/);
  });

  test("the local runner hashes plain keys and tokens before the Worker sees them", async () => {
    const vars = await hubBindings([{ id: ID, agentKeys: ["agent-secret"], clientTokens: ["client-secret"] }], {
      livenessMs: 500,
    });
    assert.ok(!JSON.stringify(vars).includes('secret"'), "no plain secret in the bindings");
    const tunnel = parseTunnels(vars.AIRLOCK_TUNNELS).get(ID)!;
    assert.deepEqual(tunnel.agent_key_sha256, [await sha256Hex("agent-secret")]);
    assert.equal(parseSettings(vars).livenessMs, 500);
  });
});

describe("credentials", () => {
  test("a secret matches its SHA-256 digest among others, and nothing else does", async () => {
    const digests = [await sha256Hex("one"), await sha256Hex("two")];
    assert.equal(await sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert.equal(await matchesDigest("two", digests), true);
    assert.equal(await matchesDigest("three", digests), false);
    assert.equal(await matchesDigest("two", []), false);
  });

  test("a misconfigured hub answers 500 hub_misconfigured naming the variable", async () => {
    const app = createWorkerApp({
      hub: () => {
        throw new Error("unreachable");
      },
    });
    const response = await app.request(`/v1/tunnels/${ID}/poll`, {}, { AIRLOCK_TUNNELS: "[" } as never);
    assert.equal(response.status, 500);
    const body = (await response.json()) as { error: { code: string; message: string } };
    assertSchema("APIErrorResponse", body);
    assert.equal(body.error.code, "hub_misconfigured");
    assert.match(body.error.message, /AIRLOCK_TUNNELS is not valid JSON/);
  });
});
