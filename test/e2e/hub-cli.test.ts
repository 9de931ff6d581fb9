/**
 * `airlock hub` as an operator runs it: a real process serving the Worker in workerd with
 * persistent state, credentials from env:/file: references (never printed), a real agent
 * process polling it, and a clean exit on SIGTERM. Usage errors are checked in-process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HUB_FLAGS, hubBanner, main as hubMain, readHubCommand } from "../../agent/cli/hub.ts";
import { parseFlags } from "../../agent/cli/options.ts";
import type { CliIo } from "../../agent/cli/options.ts";
import { airlockCommand, REPO, type AgentProcess } from "../support/agent-process.ts";
import { everythingStdioCommand } from "../support/everything.ts";
import { tunnelId } from "../support/hub.ts";
import { connectClient, startHubAgent } from "../support/hub-stack.ts";

const TUNNEL = tunnelId(0xc11);
const AGENT_KEY = "hub-cli-agent-key-5d1f0e8a";
const CLIENT_TOKEN = "hub-cli-client-token-77a0c3";

function fakeIo(env: Record<string, string> = {}): CliIo & { out: string; err: string } {
  const io = {
    out: "",
    err: "",
    stdout(text: string) {
      io.out += text;
    },
    stderr(text: string) {
      io.err += text;
    },
    env,
    cwd: tmpdir(),
  };
  return io;
}

describe("airlock hub: usage errors (exit 2, nothing started)", () => {
  const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
    [
      "no tunnel id",
      ["--agent-key", "env:K", "--client-token", "env:T"],
      { K: "k", T: "t" },
      /--tunnel-id is required/,
    ],
    [
      "a malformed tunnel id",
      ["--tunnel-id", "tunnel_XYZ", "--agent-key", "env:K", "--client-token", "env:T"],
      { K: "k", T: "t" },
      /is not a tunnel id/,
    ],
    [
      "a literal key",
      ["--tunnel-id", TUNNEL, "--agent-key", AGENT_KEY, "--client-token", "env:T"],
      { T: "t" },
      /--agent-key takes a reference, env:NAME or file:\/path/,
    ],
    [
      "an unset variable",
      ["--tunnel-id", TUNNEL, "--agent-key", "env:NOPE_UNSET", "--client-token", "env:T"],
      { T: "t" },
      /NOPE_UNSET, which is not set/,
    ],
    [
      "no client token and no pass-through",
      ["--tunnel-id", TUNNEL, "--agent-key", "env:K"],
      { K: "k" },
      /--client-token is required/,
    ],
    [
      "a bad listen address",
      ["--tunnel-id", TUNNEL, "--agent-key", "env:K", "--client-token", "env:T", "--listen", "localhost"],
      { K: "k", T: "t" },
      /--listen: listen address "localhost" is not host:port/,
    ],
    [
      "an unknown flag",
      ["--tunnel-id", TUNNEL, "--agent-keys", "env:K"],
      {},
      /unknown flag --agent-keys; did you mean --agent-key\?/,
    ],
    [
      "an OIDC client id without an issuer",
      ["--tunnel-id", TUNNEL, "--agent-key", "env:K", "--client-token", "env:T", "--oidc-client-id", "hub"],
      { K: "k", T: "t" },
      /--oidc-client-id configures OAuth sign-in: give --oidc-issuer URL too/,
    ],
    [
      "a plain-http issuer off loopback",
      [
        "--tunnel-id",
        TUNNEL,
        "--agent-key",
        "env:K",
        "--client-token",
        "env:T",
        "--oidc-issuer",
        "http://idp.example.com",
        "--oidc-client-id",
        "hub",
      ],
      { K: "k", T: "t" },
      /--oidc-issuer: http:\/\/idp.example.com must be https/,
    ],
    [
      "an issuer without a client id",
      [
        "--tunnel-id",
        TUNNEL,
        "--agent-key",
        "env:K",
        "--client-token",
        "env:T",
        "--oidc-issuer",
        "https://idp.example.com",
      ],
      { K: "k", T: "t" },
      /--oidc-client-id is required/,
    ],
    [
      "a zero audit retention",
      ["--tunnel-id", TUNNEL, "--agent-key", "env:K", "--client-token", "env:T", "--audit-retain", "0"],
      { K: "k", T: "t" },
      /--audit-retain "0" is not a record count: write a positive number .* or all/,
    ],
    [
      "a literal OIDC client secret",
      [
        "--tunnel-id",
        TUNNEL,
        "--agent-key",
        "env:K",
        "--client-token",
        "env:T",
        "--oidc-issuer",
        "https://idp.example.com",
        "--oidc-client-id",
        "hub",
        "--oidc-client-secret",
        AGENT_KEY,
      ],
      { K: "k", T: "t" },
      /--oidc-client-secret takes a reference/,
    ],
  ];
  for (const [name, argv, env, message] of cases) {
    test(name, async () => {
      const io = fakeIo(env);
      assert.equal(await hubMain(argv, io), 2);
      assert.match(io.err, message);
      assert.equal(io.out, "");
      assert.ok(!io.err.includes(AGENT_KEY), "the literal key is not echoed");
    });
  }

  test("with --oidc-issuer the banner names the provider and the redirect URI to register there, never the secret", async () => {
    const io = fakeIo({ K: "k", T: "t", S: "idp-client-secret-value" });
    const flags = [
      "--tunnel-id",
      TUNNEL,
      "--agent-key",
      "env:K",
      "--client-token",
      "env:T",
      "--oidc-issuer",
      "https://login.example.com/",
      "--oidc-client-id",
      "airlock-hub",
      "--oidc-client-secret",
      "env:S",
    ];
    const command = await readHubCommand(parseFlags("hub", flags, HUB_FLAGS), io);
    assert.deepEqual(command.oidc, {
      issuer: "https://login.example.com/",
      clientId: "airlock-hub",
      clientSecret: "idp-client-secret-value",
    });
    const banner = hubBanner(new URL("http://127.0.0.1:8787/"), command);
    assert.match(
      banner,
      /register this redirect URI for client airlock-hub at the provider: http:\/\/127\.0\.0\.1:8787\/oauth\/callback/,
    );
    assert.ok(!banner.includes("idp-client-secret-value"));
  });

  test("with --oidc-issuer no --client-token is needed: people sign in, and the banner says so", async () => {
    const io = fakeIo({ K: "k" });
    const flags = ["--tunnel-id", TUNNEL, "--agent-key", "env:K", "--oidc-issuer", "https://login.example.com/"];
    const command = await readHubCommand(
      parseFlags("hub", [...flags, "--oidc-client-id", "airlock-hub"], HUB_FLAGS),
      io,
    );
    assert.equal(command.clientToken, undefined);
    assert.match(
      hubBanner(new URL("http://127.0.0.1:8787/"), command),
      /clients sign in \(OAuth\); there is no static client token/,
    );
  });

  test("--help lists every flag", async () => {
    const io = fakeIo();
    assert.equal(await hubMain(["--help"], io), 0);
    for (const flag of [
      "--listen",
      "--tunnel-id",
      "--agent-key",
      "--client-token",
      "--state-dir",
      "--url-file",
      "--pass-client-authorization",
    ]) {
      assert.ok(io.out.includes(flag), flag);
    }
  });
});

describe("airlock hub: a real process", { concurrency: false }, () => {
  let dir: string;
  let hub: ChildProcess;
  let stdout = "";
  let stderr = "";
  let base: string;
  let agent: AgentProcess | undefined;
  let exited: Promise<number | null>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "airlock-hub-cli-"));
    writeFileSync(join(dir, "client-token"), `${CLIENT_TOKEN}\n`);
    const [cmd, ...args] = airlockCommand("node", [
      "hub",
      "--listen",
      "127.0.0.1:0",
      "--tunnel-id",
      TUNNEL,
      "--agent-key",
      "env:HUB_CLI_AGENT_KEY",
      "--client-token",
      `file:${join(dir, "client-token")}`,
      "--state-dir",
      join(dir, "state"),
      "--url-file",
      join(dir, "hub.url"),
    ]);
    hub = spawn(cmd!, args, {
      cwd: REPO,
      env: { ...process.env, HUB_CLI_AGENT_KEY: AGENT_KEY },
      stdio: ["ignore", "pipe", "pipe"],
    });
    hub.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    hub.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    exited = new Promise((resolve) => hub.once("exit", (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (!stdout.includes("Stop with Ctrl-C")) {
      if (hub.exitCode !== null) throw new Error(`airlock hub exited with ${hub.exitCode}:\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`airlock hub did not start within 30 s:\n${stdout}\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    base = readFileSync(join(dir, "hub.url"), "utf8").trim();
  });

  after(async () => {
    await agent?.stop("SIGTERM");
    if (hub.exitCode === null && hub.signalCode === null) hub.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });

  test("prints the hub URL, the MCP URL and how to start an agent, and never a secret", () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(stdout.includes(`Airlock hub listening on ${base}`), stdout);
    assert.ok(stdout.includes(`MCP URL   ${base}/v1/mcp/${TUNNEL}`), stdout);
    assert.ok(stdout.includes(`--control-plane.base-url ${base}`), stdout);
    assert.ok(stdout.includes("--control-plane.api-key env:HUB_CLI_AGENT_KEY"), stdout);
    for (const secret of [AGENT_KEY, CLIENT_TOKEN])
      assert.ok(!stdout.includes(secret) && !stderr.includes(secret), "no secret printed");
  });

  test("agents authenticate with the key, clients with the token from the file", async () => {
    const meta = await fetch(`${base}/v1/tunnels/${TUNNEL}`, { headers: { Authorization: `Bearer ${AGENT_KEY}` } });
    assert.equal(meta.status, 200);
    assert.equal(((await meta.json()) as { id: string }).id, TUNNEL);
    const wrong = await fetch(`${base}/v1/tunnels/${TUNNEL}`, { headers: { Authorization: `Bearer ${CLIENT_TOKEN}` } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    // No agent yet: the token is accepted and the hub fails fast.
    const ping = { jsonrpc: "2.0", id: 1, method: "ping" };
    const noAgent = await fetch(`${base}/v1/mcp/${TUNNEL}`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${CLIENT_TOKEN}`,
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
      },
      body: JSON.stringify(ping),
    });
    assert.equal(noAgent.status, 503);
    assert.equal(((await noAgent.json()) as { error: { code: string } }).error.code, "tunnel_client_not_connected");
  });

  test("an agent started as the banner says serves an MCP client through the hub", async () => {
    agent = await startHubAgent(new URL(base), TUNNEL, ["--mcp.command", everythingStdioCommand().join(" ")], {
      key: AGENT_KEY,
    });
    const { client } = await connectClient(new URL(`${base}/v1/mcp/${TUNNEL}`), { token: CLIENT_TOKEN });
    try {
      const echo = await client.callTool({ name: "echo", arguments: { message: "via airlock hub" } });
      assert.deepEqual(echo.content, [{ type: "text", text: "Echo: via airlock hub" }]);
    } finally {
      await client.close();
    }
  });

  test("SIGTERM: exits 0, removes the URL file, keeps the state directory", async () => {
    await agent?.stop("SIGTERM");
    agent = undefined;
    hub.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
    assert.match(stdout, /SIGTERM received: stopping the hub/);
    assert.equal(existsSync(join(dir, "hub.url")), false);
    assert.equal(existsSync(join(dir, "state", "durable-objects")), true);
  });
});
