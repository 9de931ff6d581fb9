/**
 * `airlock demo [--login] [--keep] [--verbose] [--port N]`: the whole loop on one machine. Starts a
 * local hub, an agent in this process and server-everything over stdio behind it; then an
 * MCP SDK client goes through the hub's MCP URL and runs {@link DEMO_STEPS}, printing each
 * step with its timing. With `--login` the hub has OAuth on through a built-in test OpenID
 * provider, and the client signs in as its demo user first, printing each step of the sign-in. Ends with the URL and a token for the user's own client; `--keep`
 * leaves everything running until Ctrl-C. Exit 0 when every step worked, 1 otherwise.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createLogger } from "../../shared/log.ts";
import { VERSION } from "../version.ts";
import { connectWithOAuth, HeadlessOAuthProvider } from "../demo/oauth-login.ts";
import { startDemoStack, type DemoStack } from "../demo/stack.ts";
import { DEMO_STEPS, type DemoContext, type DemoStep } from "../demo/steps.ts";
import { controlPlaneBase, untilSignal } from "./hub.ts";
import { helpText, parseFlags, processIo, UsageError, withUsageErrors } from "./options.ts";
import type { CliIo, FlagSpec } from "./options.ts";

const FLAGS: Record<string, FlagSpec> = {
  keep: {
    kind: "bool",
    help: "keep hub, agent and backend running after the demo until Ctrl-C, for your own MCP client",
  },
  verbose: { kind: "bool", help: "show the agent's and the hub's logs (stderr)" },
  port: { kind: "string", value: "N", help: "hub port on 127.0.0.1 (default: any free port)" },
  login: {
    kind: "bool",
    help: "turn OAuth on with a built-in test OpenID provider; the client signs in as its demo user (needs a checkout: oidc-provider is a devDependency)",
  },
};

const DESCRIPTION = [
  "Runs the whole Airlock loop on this machine: a local hub (the Worker in workerd), an agent,",
  "and server-everything over stdio as the private MCP server; an MCP client then calls tools",
  "through the hub's MCP URL. Nothing leaves the machine.",
].join("\n");

export function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  return withUsageErrors("demo", io, () => demo(argv, io));
}

function ms(value: number): string {
  return `${Math.round(value)} ms`.padStart(8);
}

async function demo(argv: string[], io: CliIo): Promise<number> {
  const flags = parseFlags("demo", argv, FLAGS);
  if (flags.help) {
    io.stdout(helpText("airlock demo [--login] [--keep] [--verbose] [--port N]", DESCRIPTION, FLAGS));
    return 0;
  }
  if (flags.positionals.length) throw new UsageError(`unexpected argument "${flags.positionals[0]}"`);
  const portText = flags.strings.get("port") ?? "0";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--port ${portText} is not a port (0-65535)`);
  const verbose = flags.bools.has("verbose");
  const keep = flags.bools.has("keep");
  const login = flags.bools.has("login");

  io.stdout(`Airlock ${VERSION} demo: MCP client → hub → agent → private MCP server, all on this machine\n\n`);
  const log = verbose
    ? createLogger({ level: "info", format: "text", sink: (line) => io.stderr(`${line}\n`) })
    : undefined;
  let stack: DemoStack;
  try {
    stack = await startDemoStack({ port, login, ...(log ? { log, hubLogLevel: "info" as const } : {}) });
  } catch (error) {
    io.stderr(`airlock demo: could not start: ${(error as Error).message}\n`);
    return 1;
  }
  io.stdout(
    `${[
      `  hub      ${controlPlaneBase(stack.hub.url)}   the hub Worker in workerd, up in ${Math.round(stack.startup.hubMs)} ms`,
      `  agent    ${stack.agent.instanceId}   in this process, polling the hub, up in ${Math.round(stack.startup.agentMs)} ms`,
      "  backend  server-everything over stdio, reachable only through the agent",
      `  client   MCP SDK Client (Streamable HTTP) → ${stack.mcpUrl.href}`,
      ...(stack.login
        ? [
            `  IdP      ${stack.login.issuer}   built-in test OpenID provider (oidc-provider), user "${stack.login.user.login}"`,
          ]
        : []),
      "",
    ].join("\n")}\n`,
  );

  let ok = false;
  try {
    ok = await runSteps(stack, io);
  } finally {
    if (!keep || !ok) {
      await stack.close();
    }
  }
  io.stdout(closingNote(stack, keep && ok));
  if (!ok) return 1;
  if (keep) {
    const signal = await untilSignal();
    io.stdout(`\n${signal} received: stopping agent and hub\n`);
    await stack.close();
  }
  return 0;
}

/** The first step: connect with the demo's client token, or sign in through the test IdP with `--login`. */
function connectStep(stack: DemoStack, connected: (client: Client) => void): DemoStep {
  const login = stack.login;
  return {
    title: login
      ? `sign in as ${login.user.login} (OAuth through the hub and the test IdP), then initialize`
      : "initialize",
    async run({ detail }) {
      let client: Client;
      if (login) {
        const provider = new HeadlessOAuthProvider(login.user.login, undefined, detail);
        client = await connectWithOAuth(stack.mcpUrl, provider, "airlock-demo");
      } else {
        const transport = new StreamableHTTPClientTransport(stack.mcpUrl, {
          requestInit: { headers: { Authorization: `Bearer ${stack.clientToken}` } },
        });
        client = new Client({ name: "airlock-demo", version: VERSION });
        await client.connect(transport);
      }
      connected(client);
      const server = client.getServerVersion();
      const session = client.transport?.sessionId ?? "(none)";
      const who = login ? ` as ${login.user.login}` : "";
      return `${server?.name ?? "?"} ${server?.version ?? ""}, session ${session}${who}`;
    },
  };
}

/** Connect, run every step, print the transcript; false when a step failed (the error is printed). */
async function runSteps(stack: DemoStack, io: CliIo): Promise<boolean> {
  let client: Client | undefined;
  const connect = connectStep(stack, (connected) => {
    client = connected;
  });
  const total = performance.now();
  try {
    for (const step of [connect, ...DEMO_STEPS]) {
      const started = performance.now();
      const context: DemoContext = {
        // Only the connect step runs before there is a client, and it does not read this one.
        client: client as Client,
        mcpUrl: stack.mcpUrl,
        auditUrl: stack.auditUrl,
        auditorToken: stack.auditorToken,
        detail: (line) => io.stdout(`             ${line}\n`),
        elapsed: () => performance.now() - started,
      };
      io.stdout(`  ${step.title}\n`);
      try {
        const outcome = await step.run(context);
        io.stdout(`  ${ms(context.elapsed())}   → ${outcome}\n`);
      } catch (error) {
        io.stdout(`  ${ms(context.elapsed())}   ✗ ${(error as Error).message}\n`);
        io.stderr(`airlock demo: step "${step.title}" failed: ${(error as Error).message}\n`);
        return false;
      }
    }
    io.stdout(
      `\n  ${DEMO_STEPS.length + 1} steps in ${Math.round(performance.now() - total)} ms, every one through hub → agent → stdio and back but the refused call, which the hub's policy stopped.\n`,
    );
    return true;
  } finally {
    // Ends the MCP session (DELETE); the hub answers it for stdio sessions itself.
    await client?.close().catch(() => {});
  }
}

/** Where to point your own client; the token is printed because the demo made it up for this run. */
function closingNote(stack: DemoStack, running: boolean): string {
  const url = stack.mcpUrl.href;
  const token = stack.clientToken;
  const lines = [
    "",
    running
      ? "Still running. Point your own MCP client at it:"
      : "Point your own MCP client at it (run `npm run demo -- --keep` to keep it up):",
    `  MCP URL         ${url}`,
    `  client token    ${token}   (send as Authorization: Bearer …; made up for this run)`,
    `  audit log       ${stack.auditUrl.href}   (auditor token ${stack.auditorToken})`,
    "",
    `  MCP Inspector   npx @modelcontextprotocol/inspector  → transport Streamable HTTP, URL above,`,
    "                  header Authorization: Bearer <client token>",
    `  Claude Desktop  npx mcp-remote ${url} --header "Authorization: Bearer ${token}"`,
    "                  (as the command of an mcpServers entry in claude_desktop_config.json)",
    `  Responses API   tools: [{"type": "mcp", "server_label": "airlock", "server_url": "<public hub>/v1/mcp/${stack.tunnelId}",`,
    `                           "headers": {"Authorization": "Bearer <client token>"}}]`,
    "                  A hosted API cannot reach 127.0.0.1: deploy the hub Worker (wrangler deploy, see docs/hub.md)",
    "                  and use its public URL.",
    "",
  ];
  if (running) lines.push("Press Ctrl-C to stop.", "");
  return `${lines.join("\n")}\n`;
}
