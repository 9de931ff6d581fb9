/**
 * A small MCP server for first runs, as tunnel-client's `dev mcp-stub` and
 * `run --embedded-mcp-stub`: tools `server_info`, `echo` and `uppercase` over Streamable
 * HTTP at `/mcp`, on any runtime (the SDK's web-standard transport behind Airlock's
 * serving seam). Stateless: every request gets a fresh server, so there is no session to
 * lose and nothing to clean up. tunnel-client's stub also serves demo OAuth metadata;
 * this one does not (docs/migrating.md).
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { z } from "zod";
import { parseListenAddr, serve, type ServedApp } from "../runtime/serve.ts";
import { MCP_STUB_DEFAULTS } from "./mcp-stub-defaults.ts";

export interface McpStubOptions {
  /** `host:port`; default `127.0.0.1:0` (any free port), as tunnel-client. */
  listenAddr?: string;
  serverName?: string;
  serverVersion?: string;
}

export interface McpStub {
  /** The MCP endpoint, e.g. `http://127.0.0.1:41234/mcp`. */
  url: string;
  close(): Promise<void>;
}

export { MCP_STUB_DEFAULTS } from "./mcp-stub-defaults.ts";

function stubServer(name: string, version: string): McpServer {
  const server = new McpServer({ name, version });
  const text = (value: string) => ({ content: [{ type: "text" as const, text: value }] });
  server.registerTool(
    "server_info",
    { description: "Describe the demo MCP server and show a few sample prompts to try" },
    () =>
      text(
        `${name} ${version}: a demo MCP server started by Airlock for a first run. Try: "echo hello through the tunnel", "uppercase this sentence".`,
      ),
  );
  server.registerTool(
    "echo",
    { description: "Echo a string back to the caller", inputSchema: { text: z.string() } },
    ({ text: value }) => text(value),
  );
  server.registerTool(
    "uppercase",
    { description: "Return an uppercased copy of the provided input string", inputSchema: { text: z.string() } },
    ({ text: value }) => text(value.toUpperCase()),
  );
  return server;
}

/** Start the stub; resolves once it listens. */
export async function startMcpStub(options: McpStubOptions = {}): Promise<McpStub> {
  const name = options.serverName ?? MCP_STUB_DEFAULTS.serverName;
  const version = options.serverVersion ?? MCP_STUB_DEFAULTS.serverVersion;
  const { hostname, port } = parseListenAddr(options.listenAddr ?? MCP_STUB_DEFAULTS.listenAddr);
  const served: ServedApp = await serve(
    async (request) => {
      if (new URL(request.url).pathname !== "/mcp")
        return new Response("not found; the MCP endpoint is /mcp\n", { status: 404 });
      const server = stubServer(name, version);
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      await server.connect(transport);
      try {
        return await transport.handleRequest(request);
      } finally {
        await server.close();
      }
    },
    { hostname, port },
  );
  return { url: `${served.url}/mcp`, close: () => served.close() };
}
