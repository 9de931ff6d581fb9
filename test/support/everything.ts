/**
 * Real MCP servers for backend tests: `@modelcontextprotocol/server-everything` from npm
 * (stdio command, or Streamable HTTP on 127.0.0.1 with a kernel-chosen port), the SDK-built
 * fixture server in `test/fixtures/`, and a helper that turns a JSON-RPC message into an
 * {@link McpExchange} whose notifies are collected.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { McpExchange } from "../../agent/backends/types.ts";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EVERYTHING_BIN = fileURLToPath(new URL("../../node_modules/.bin/mcp-server-everything", import.meta.url));
const EVERYTHING_MAIN = fileURLToPath(
  new URL("../../node_modules/@modelcontextprotocol/server-everything/dist/index.js", import.meta.url),
);
const LOOPBACK = fileURLToPath(new URL("../fixtures/loopback-listen.ts", import.meta.url));
const FIXTURE = fileURLToPath(new URL("../fixtures/mcp-fixture-server.ts", import.meta.url));
const MODERN_FIXTURE = fileURLToPath(new URL("../fixtures/modern-server.ts", import.meta.url));

/** argv that runs server-everything over stdio (its first argument picks the transport). */
export function everythingStdioCommand(): string[] {
  return [EVERYTHING_BIN, "stdio"];
}

/** argv that runs the SDK fixture server (`test/fixtures/mcp-fixture-server.ts`) under Node. */
export function fixtureServerCommand(...flags: string[]): string[] {
  return ["node", "--import", "tsx", FIXTURE, ...flags];
}

export interface RunningServer {
  url: string;
  pid: number;
  close(): Promise<void>;
}

/**
 * Start server-everything's Streamable HTTP transport. It only reads `PORT` and binds every
 * interface, so a preload pins it to 127.0.0.1 and reports the port the kernel chose.
 */
export function startEverythingHttp(): Promise<RunningServer> {
  return startListeningServer(
    "server-everything",
    ["--import", "tsx", "--import", LOOPBACK, EVERYTHING_MAIN, "streamableHttp"],
    { PORT: "0" },
  );
}

/** The SDK v2 fixture server (`test/fixtures/modern-server.ts`) over Streamable HTTP; `modernOnly` refuses 2025-era clients. */
export function startModernHttp(modernOnly: boolean): Promise<RunningServer> {
  return startListeningServer(
    "the modern fixture server",
    ["--import", "tsx", MODERN_FIXTURE, "http", ...(modernOnly ? ["--modern-only"] : [])],
    {},
  );
}

/** argv that runs the SDK v2 fixture server over stdio. */
export function modernStdioCommand(modernOnly: boolean): string[] {
  return ["node", "--import", "tsx", MODERN_FIXTURE, "stdio", ...(modernOnly ? ["--modern-only"] : [])];
}

/** A Node server that announces `AIRLOCK_FIXTURE_LISTENING <port>` on stderr, serving MCP at `/mcp`. */
async function startListeningServer(what: string, args: string[], env: Record<string, string>): Promise<RunningServer> {
  const child = spawn("node", args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${what} did not listen within 15 s:\n${stderr}`));
    }, 15_000);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      stderr += chunk;
      const match = /AIRLOCK_FIXTURE_LISTENING (\d+)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before listening:\n${stderr}`));
    });
  });
  child.stderr!.resume();
  return { url: `http://127.0.0.1:${port}/mcp`, pid: child.pid!, close: () => stopChild(child) };
}

/** SIGTERM, then SIGKILL after a grace; resolves once the process is gone. */
export function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** True while a process with this pid exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

export interface CollectedExchange extends McpExchange {
  notified: JsonRpcMessage[];
  notifiedHeaders: HeaderMap[];
}

/** An exchange for `message` whose notifies are recorded in order. */
export function exchangeOf(
  message: JsonRpcMessage,
  options: { headers?: HeaderMap; signal?: AbortSignal } = {},
): CollectedExchange {
  const notified: JsonRpcMessage[] = [];
  const notifiedHeaders: HeaderMap[] = [];
  return {
    message,
    headers: options.headers ?? {},
    signal: options.signal ?? new AbortController().signal,
    notified,
    notifiedHeaders,
    notify(msg, headers) {
      notified.push(msg);
      notifiedHeaders.push(headers);
    },
  };
}

/** The JSON-RPC messages of the MCP handshake and common calls. */
export const rpc = {
  initialize: (id: number | string = 1): JsonRpcMessage => ({
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "airlock-test", version: "0.0.0" } },
  }),
  initialized: (): JsonRpcMessage => ({ jsonrpc: "2.0", method: "notifications/initialized" }),
  toolsList: (id: number | string): JsonRpcMessage => ({ jsonrpc: "2.0", id, method: "tools/list", params: {} }),
  call: (
    id: number | string,
    name: string,
    args: Record<string, unknown> = {},
    meta?: Record<string, unknown>,
  ): JsonRpcMessage => ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
  }),
};

/** The first text content of a `tools/call` result. */
export function resultText(message: JsonRpcMessage): string | undefined {
  const result = message.result as { content?: Array<{ type: string; text?: string }> } | undefined;
  return result?.content?.find((c) => c.type === "text")?.text;
}
