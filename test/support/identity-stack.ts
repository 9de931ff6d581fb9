/**
 * One signed-in-capable hub for identity tests: a real OpenID provider on loopback with
 * alice (engineering), the hub in workerd with OAuth on (plus the test's extra OAuth
 * settings), one tunnel, and a real agent in front of server-everything.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalHub, type LocalHub, type LocalOidc } from "../../agent/hub-local/run.ts";
import { everythingStdioCommand } from "./everything.ts";
import { AGENT_KEY, CLIENT_TOKEN } from "./hub.ts";
import { startHubAgent } from "./hub-stack.ts";
import { startTestIdp, type TestIdp, type TestUser } from "../../agent/demo/test-idp.ts";

const ALICE: TestUser = { login: "alice", email: "alice@example.com", name: "Alice", groups: ["engineering"] };

/** What else a test may set: the provider's users and whether it issues refresh tokens, the hub's policy and auditor token. */
export interface IdentityStackOptions {
  users?: TestUser[];
  refreshTokens?: boolean;
  policy?: string;
  auditorToken?: string;
  /** The tunnel's static client tokens (default: {@link CLIENT_TOKEN}); none is allowed with OAuth on. */
  clientTokens?: string[];
}

export interface IdentityStack {
  hub: LocalHub;
  idp: TestIdp;
  /** The tunnel's MCP URL (the tokens' resource). */
  mcpUrl: URL;
  close(): Promise<void>;
}

export async function startIdentityStack(
  tunnel: string,
  oauth: Omit<LocalOidc, "issuer" | "clientId" | "clientSecret"> = {},
  { users = [ALICE], refreshTokens, policy, auditorToken, clientTokens = [CLIENT_TOKEN] }: IdentityStackOptions = {},
): Promise<IdentityStack> {
  const idp = await startTestIdp(users, { ...(refreshTokens === undefined ? {} : { refreshTokens }) });
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-identity-"));
  const hub = await startLocalHub({
    stateDir,
    ...(policy ? { policy } : {}),
    ...(auditorToken ? { auditorToken } : {}),
    tunnels: [{ id: tunnel, agentKeys: [AGENT_KEY], clientTokens }],
    oidc: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret, ...oauth },
  });
  idp.register(`${hub.url.origin}/oauth/callback`);
  const agent = await startHubAgent(hub.url, tunnel, ["--mcp.command", everythingStdioCommand().join(" ")]);
  return {
    hub,
    idp,
    mcpUrl: new URL(`/v1/mcp/${tunnel}`, hub.url.origin),
    async close() {
      await agent.stop();
      await hub.close();
      await idp.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
