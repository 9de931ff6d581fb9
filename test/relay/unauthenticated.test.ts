/**
 * Issue 14, class "relay tunnels can be told apart without a key", in workerd: whatever
 * a caller without a valid credential sends — nothing, a wrong key, a malformed header,
 * another tunnel's key — every tunnel answers the same (status, body and headers):
 * relay tunnels, hub tunnels, pass-through tunnels, and ids no tunnel has.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { tunnelId } from "../support/hub.ts";
import { UPSTREAM_KEY, startRelayStack, type RelayStack } from "./support.ts";

const HUB_TUNNEL = tunnelId(0x1);
const PASS_TUNNEL = tunnelId(0x2);
const MISSING_TUNNEL = tunnelId(0x3);
const OTHER_TUNNEL = tunnelId(0x4);
const HUB_KEY = "hub-agent-key-0123456789";
const HUB_CLIENT = "hub-client-token-0123456789";
/** The credentials of a tunnel not under test: valid somewhere on this hub, but not on any tunnel asked. */
const OTHER_KEY = "other-tunnel-key-0123456789";
let stack: RelayStack;
let tunnels: string[];

before(async () => {
  stack = await startRelayStack({
    tunnels: [
      { id: HUB_TUNNEL, agentKeys: [HUB_KEY], clientTokens: [HUB_CLIENT] },
      { id: PASS_TUNNEL, agentKeys: [HUB_KEY], clientTokens: [HUB_CLIENT], passClientAuthorization: true },
      { id: OTHER_TUNNEL, agentKeys: [OTHER_KEY], clientTokens: [OTHER_KEY] },
    ],
  });
  tunnels = [stack.cp.tunnelId, HUB_TUNNEL, PASS_TUNNEL, MISSING_TUNNEL];
});
after(() => stack.close());

// What a caller without a key might send; each must look the same on every tunnel.
const credentials: Array<[string, Record<string, string>]> = [
  ["nothing", {}],
  ["a wrong bearer token", { Authorization: "Bearer not-a-key-at-all" }],
  ["a malformed Authorization", { Authorization: "Bearer two words" }],
  ["another scheme", { Authorization: "Basic dXNlcjpwYXNz" }],
  ["a key of another tunnel", { Authorization: `Bearer ${OTHER_KEY}` }],
  ["the upstream key", { Authorization: `Bearer ${UPSTREAM_KEY}` }],
  ["a wrong hub token", { "X-Airlock-Token": "not-the-hub-token" }],
  ["another tunnel's token as hub token", { Authorization: "Bearer backend-token", "X-Airlock-Token": OTHER_KEY }],
];

/** Everything a caller can observe of an answer, minus what varies by the clock. */
async function observed(response: Response): Promise<string> {
  const headers = [...response.headers]
    .filter(([name]) => name !== "date")
    .map(([name, value]) => `${name}: ${value}`)
    .sort();
  return `${response.status}\n${headers.join("\n")}\n\n${await response.text()}`;
}

const surfaces: Array<[string, (tunnel: string) => [string, RequestInit]]> = [
  ["agent metadata", (t) => [`v1/tunnels/${t}`, {}]],
  ["agent poll", (t) => [`v1/tunnels/${t}/poll?timeout_ms=1`, {}]],
  [
    "agent response post",
    (t) => [
      `v1/tunnels/${t}/response`,
      { method: "POST", body: "{}", headers: { "Content-Type": "application/json", "X-Tunnel-Shard-Token": "x" } },
    ],
  ],
  [
    "MCP POST",
    (t) => [
      `v1/mcp/${t}`,
      {
        method: "POST",
        body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
        headers: { "Content-Type": "application/json" },
      },
    ],
  ],
  ["MCP GET stream", (t) => [`v1/mcp/${t}`, { headers: { Accept: "text/event-stream" } }]],
  ["MCP DELETE", (t) => [`v1/mcp/${t}`, { method: "DELETE", headers: { "Mcp-Session-Id": "s" } }]],
  ["audit export", (t) => [`v1/audit/${t}`, {}]],
];

describe("unauthenticated answers do not tell tunnels apart", () => {
  for (const [surface, request] of surfaces) {
    test(`${surface}: the same 401 on relay, hub, pass-through and missing tunnels, whatever was sent`, async () => {
      for (const [what, headers] of credentials) {
        const answers = new Map<string, string>();
        for (const tunnel of tunnels) {
          const [path, init] = request(tunnel);
          const text = await observed(
            await fetch(new URL(path, stack.relay.url), {
              ...init,
              headers: { ...(init.headers as Record<string, string>), ...headers },
            }),
          );
          answers.set(tunnel, text.replaceAll(tunnel, "TUNNEL"));
        }
        const distinct = new Set(answers.values());
        assert.equal(
          distinct.size,
          1,
          `${surface}, ${what}:\n${[...answers].map(([t, a]) => `--- ${t}\n${a}`).join("\n")}`,
        );
        assert.match([...distinct][0]!, /^401\n/, `${surface}, ${what}`);
      }
    });
  }
});
