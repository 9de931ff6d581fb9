/**
 * The demo MCP stub's defaults, apart from the stub itself so that help texts can show them
 * without loading the MCP SDK's server (see `agent/cli/embedded-stub.ts`).
 */
export const MCP_STUB_DEFAULTS = { listenAddr: "127.0.0.1:0", serverName: "mcp-stub", serverVersion: "0.1.0" } as const;
