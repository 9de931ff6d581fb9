/**
 * Issue 14, class "path-prefix escape": `airlock run --policy` in front of the real
 * @modelcontextprotocol/server-filesystem, confined by the server to a temp dir and by
 * the policy to its `docs` folder. The server reads `docs?/../secret.txt` as a path
 * (`secret.txt`), so the policy must too.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { controlPlaneFlags, startAgentProcess, type AgentProcess } from "../support/agent-process.ts";
import { filesystemCommand } from "../support/routing.ts";

const KEY = "sk-policy-paths-0123456789";
const SECRET = "the-secret-behind-docs-7f3a";

describe("agent --policy with server-filesystem: a path prefix holds as the server reads paths", () => {
  let dir: string;
  let cp: FakeControlPlane;
  let agent: AgentProcess;
  let nextId = 10;

  before(async () => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), "airlock-paths-")));
    mkdirSync(join(dir, "docs"));
    writeFileSync(join(dir, "docs", "ok.txt"), "public text");
    writeFileSync(join(dir, "secret.txt"), SECRET);
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      `policy_version: 1
default: deny
rules:
  - allow: { methods: ["initialize", "notifications/*", "tools/list"] }
  - allow: { tools: ["read_text_file"], arguments: { path: { prefix: ${JSON.stringify(join(dir, "docs"))} } } }
`,
    );
    cp = await startFakeControlPlane({ apiKey: KEY });
    agent = await startAgentProcess(
      "node",
      [...controlPlaneFlags(cp, "env:KEY"), "--mcp.command", filesystemCommand(dir).join(" "), "--policy", policy],
      { KEY },
    );
    const [init] = cp.enqueue({
      jsonrpc: {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } },
      },
    });
    await cp.waitForFinal(init!.request_id, 20_000);
  });
  after(async () => {
    await agent?.stop();
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function readFile(path: string): Promise<string> {
    const [command] = cp.enqueue({
      jsonrpc: {
        jsonrpc: "2.0",
        id: nextId++,
        method: "tools/call",
        params: { name: "read_text_file", arguments: { path } },
      },
    });
    return JSON.stringify((await cp.waitForFinal(command!.request_id, 10_000)).payload.resp_json);
  }

  test("a file inside docs is read", async () => {
    assert.match(await readFile(join(dir, "docs", "ok.txt")), /public text/);
  });

  test("docs?/../secret.txt, docs#/../secret.txt and docs/%2e%2e/secret.txt are refused before the server sees them", async () => {
    for (const attempt of [
      "docs?/../secret.txt",
      "docs#/../secret.txt",
      "docs/%2e%2e/secret.txt",
      "docs/./../secret.txt",
    ]) {
      const answer = await readFile(`${dir}/${attempt}`);
      assert.doesNotMatch(answer, new RegExp(SECRET), attempt);
      assert.match(answer, /-32003/, `${attempt}: ${answer}`);
    }
    cp.assertNoViolations();
  });
});
