/**
 * `airlock demo` as a user runs it (`npm run demo` is `node --import tsx agent/main.ts demo`):
 * the transcript shows every step going through hub → agent → server-everything with timings
 * and streamed progress, ends with the URL and token for the user's own client, and exits 0.
 * With `--keep` the printed URL and token work for another client until SIGINT. With `--login`
 * the client signs in through the built-in test IdP first, and the calls are the demo user's.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { airlockCommand, REPO } from "../support/agent-process.ts";
import { processAlive } from "../support/everything.ts";
import { connectClient } from "../support/hub-stack.ts";

interface Run {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function runDemo(args: string[] = []): Run {
  const [cmd, ...argv] = airlockCommand("node", ["demo", ...args]);
  const child = spawn(cmd!, argv, {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Direct children of a process (Linux `ps`). */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
      .split("\n")
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

/** Alive and not a zombie (an orphaned zombie waits for a PID 1 that may never reap it in a container). */
function running(pid: number): boolean {
  if (!processAlive(pid)) return false;
  try {
    return !execFileSync("ps", ["-o", "stat=", "-p", String(pid)], { encoding: "utf8" })
      .trim()
      .startsWith("Z");
  } catch {
    return false;
  }
}

describe("airlock demo", { concurrency: false }, () => {
  test("runs the whole loop, prints a timed transcript and the URL and token, exits 0 well under a minute", async () => {
    const started = Date.now();
    const run = runDemo();
    const timer = setTimeout(() => run.child.kill("SIGKILL"), 50_000);
    const code = await run.exited;
    clearTimeout(timer);
    const out = run.output();
    assert.equal(code, 0, out);
    assert.ok(Date.now() - started < 50_000);

    const url = /MCP URL\s+(http:\/\/127\.0\.0\.1:\d+\/v1\/mcp\/tunnel_[a-z0-9]{32})/.exec(out)?.[1];
    assert.ok(url, out);
    const token = /client token\s+(\S+)/.exec(out)?.[1];
    assert.ok(token && token.length >= 20, out);
    assert.ok(out.includes(`npx mcp-remote ${url} --header "Authorization: Bearer ${token}"`), out);
    assert.match(out, /Responses API .*"server_url": "<public hub>\/v1\/mcp\/tunnel_/);
    assert.match(out, /cannot reach 127\.0\.0\.1: deploy the hub Worker/);

    // Every step in order, each with its timing and outcome.
    const steps = [
      [/initialize\n\s+\d+ ms\s+→ mcp-servers\/everything [\d.]+, session stdio-[0-9a-f-]{36}/],
      [/tools\/list\n\s+\d+ ms\s+→ \d+ tools: echo, /],
      [/tools\/call echo\n\s+\d+ ms\s+→ "Echo: hello through the Airlock hub"/],
      [/tools\/call get-sum 2 \+ 3\n\s+\d+ ms\s+→ "The sum of 2 and 3 is 5\."/],
      [
        /trigger-long-running-operation[^\n]*\n\s+progress 1\/4 +at \d+ ms\n\s+progress 2\/4 +at \d+ ms\n\s+progress 3\/4 +at \d+ ms\n\s+progress 4\/4 +at \d+ ms\n\s+\d+ ms\s+→ "Long running operation completed/,
      ],
      [
        /tools\/call get-env \(the demo policy refuses it\)\n\s+\d+ ms\s+→ refused: "Refused by policy \(rules\[0\] \(no-env\)\)/,
      ],
      [
        /audit log: export the hash chain and verify it\n[^\n]*airlock audit verify [^\n]*\n\s+\d+ ms\s+→ \d+ records \(1 refused\), chain verified up to [0-9a-f]{16}/,
      ],
    ];
    let from = 0;
    for (const [pattern] of steps) {
      const match = pattern!.exec(out.slice(from));
      assert.ok(match, `expected ${pattern} after offset ${from} in:\n${out}`);
      from += match.index + match[0].length;
    }
    assert.match(
      out,
      /7 steps in \d+ ms, every one through hub → agent → stdio and back but the refused call, which the hub's policy stopped/,
    );
    assert.doesNotMatch(out, /Press Ctrl-C/);
  });

  test("--login: signs in through the test IdP (401 → discovery → registration → consent → login → token), calls as the demo user", async () => {
    const run = runDemo(["--login"]);
    const timer = setTimeout(() => run.child.kill("SIGKILL"), 50_000);
    const code = await run.exited;
    clearTimeout(timer);
    const out = run.output();
    assert.equal(code, 0, out);

    const idp = /IdP\s+(http:\/\/127\.0\.0\.1:\d+)\s+built-in test OpenID provider/.exec(out)?.[1];
    const hub = /hub\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    assert.ok(idp && hub && idp !== hub, out);
    const steps = [
      /sign in as demo \(OAuth through the hub and the test IdP\), then initialize\n/,
      /401 from \/v1\/mcp\/tunnel_[0-9a-f]{32}: Bearer resource_metadata=/,
      /discovery: \/\.well-known\/oauth-protected-resource\/v1\/mcp\/tunnel_[0-9a-f]{32} → HTTP 200/,
      /discovery: \/\.well-known\/oauth-authorization-server → HTTP 200/,
      /registration: the hub issued client_id (\S+)/,
      /authorize: http:\/\/127\.0\.0\.1:\d+\/authorize with PKCE and resource=http:\/\/127\.0\.0\.1:\d+\/v1\/mcp\/tunnel_/,
      new RegExp(`hub consent: ${hub}/authorize approved`),
      new RegExp(`IdP login: ${idp}/\\S+ as demo`),
      new RegExp(`IdP consent: ${idp}/\\S+ granted`),
      /callback: \S+ got an authorization code/,
      /token: bearer access token for \d+ s, scope mcp/i,
      /\d+ ms\s+→ mcp-servers\/everything [\d.]+, session stdio-[0-9a-f-]{36} as demo\n/,
      /tools\/call get-sum 2 \+ 3\n\s+\d+ ms\s+→ "The sum of 2 and 3 is 5\."/,
      /\d+ records name the signed-in caller: subject demo, Demo User, groups demo, client (\S+)/,
      /\d+ ms\s+→ \d+ records \(1 refused\), chain verified/,
    ];
    let from = 0;
    const found: RegExpExecArray[] = [];
    for (const pattern of steps) {
      const match = pattern.exec(out.slice(from));
      assert.ok(match, `expected ${pattern} after offset ${from} in:\n${out}`);
      found.push(match);
      from += match.index + match[0].length;
    }
    // The audit records name the client the hub registered during this sign-in.
    assert.equal(found[13]![1], found[4]![1], out);
  });

  test("--keep: the printed URL and token serve another MCP client until SIGINT; then everything stops and it exits 0", async () => {
    const run = runDemo(["--keep"]);
    try {
      const deadline = Date.now() + 50_000;
      while (!run.output().includes("Press Ctrl-C to stop.")) {
        if (run.child.exitCode !== null) assert.fail(`demo exited early:\n${run.output()}`);
        if (Date.now() > deadline) assert.fail(`demo did not get ready:\n${run.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const out = run.output();
      const url = /MCP URL\s+(\S+)/.exec(out)![1]!;
      const token = /client token\s+(\S+)/.exec(out)![1]!;
      const { client } = await connectClient(new URL(url), { token });
      const sum = await client.callTool({ name: "get-sum", arguments: { a: 40, b: 2 } });
      assert.match(JSON.stringify(sum.content), /The sum of 40 and 2 is 42/);
      await client.close();

      const children = childrenOf(run.child.pid!);
      assert.ok(children.length >= 2, "workerd and server-everything run as children");
      run.child.kill("SIGINT");
      assert.equal(await run.exited, 0, run.output());
      assert.match(run.output(), /SIGINT received: stopping agent and hub/);
      for (const pid of children) assert.equal(running(pid), false, `child ${pid} is gone`);
    } finally {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
    }
  });
});
