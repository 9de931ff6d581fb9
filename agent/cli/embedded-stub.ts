/**
 * `run --embedded-mcp-stub` (tunnel-client's first-run path): start the demo MCP server
 * ({@link startMcpStub}) in the agent's process and bind channel `main` to it, by adding
 * `--mcp.server-url <stub>/mcp` to the arguments `run` loads. The four `--embedded-mcp-*`
 * flags are taken out of argv here, so the settings table never sees them.
 */
import { ConfigError, configError } from "../config/errors.ts";
import { MCP_STUB_DEFAULTS } from "../demo/mcp-stub-defaults.ts";
import type { McpStub } from "../demo/mcp-stub.ts";

const STRING_FLAGS = {
  "embedded-mcp-listen-addr": "listenAddr",
  "embedded-mcp-server-name": "serverName",
  "embedded-mcp-server-version": "serverVersion",
} as const;

export const EMBEDDED_STUB_HELP = [
  "  --embedded-mcp-stub                     start a built-in demo MCP server (tools server_info, echo, uppercase) and bind channel main to it",
  `  --embedded-mcp-listen-addr ADDR         its listen address (default ${MCP_STUB_DEFAULTS.listenAddr})`,
  `  --embedded-mcp-server-name NAME         its server name (default ${MCP_STUB_DEFAULTS.serverName})`,
  `  --embedded-mcp-server-version VERSION   its server version (default ${MCP_STUB_DEFAULTS.serverVersion})`,
].join("\n");

interface Extracted {
  argv: string[];
  enabled: boolean;
  options: { listenAddr?: string; serverName?: string; serverVersion?: string };
}

/** Split the `--embedded-mcp-*` flags from the rest (pflag forms: `--f`, `--f=v`, `--f v`). */
export function extractEmbeddedStubFlags(argv: readonly string[]): Extracted {
  const out: Extracted = { argv: [], enabled: false, options: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      out.argv.push(...argv.slice(i));
      break;
    }
    const [name, inline] = arg.startsWith("--")
      ? [arg.slice(2).split("=")[0]!, arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : undefined]
      : ["", undefined];
    if (name === "embedded-mcp-stub") {
      if (inline !== undefined && !/^(true|false|1|0)$/i.test(inline))
        throw configError("--embedded-mcp-stub", "is a switch: write --embedded-mcp-stub or --embedded-mcp-stub=false");
      out.enabled = inline === undefined || /^(true|1)$/i.test(inline);
    } else if (name in STRING_FLAGS) {
      const value = inline ?? argv[++i];
      if (value === undefined || value.startsWith("--")) throw configError(`--${name}`, "needs a value");
      out.options[STRING_FLAGS[name as keyof typeof STRING_FLAGS]] = value;
    } else {
      out.argv.push(arg);
    }
  }
  return out;
}

const MAIN_TARGET_FLAGS = /^--(mcp\.server-url|mcp-server-url|mcp\.command|mcp-command)(=|$)/;

/**
 * When asked for, start the stub and return the argv with `main` bound to it; otherwise
 * the argv without the stub flags. A configured main target on the command line is refused,
 * as tunnel-client does: one main MCP target path.
 */
export async function withEmbeddedStub(argv: readonly string[]): Promise<{ argv: string[]; stub?: McpStub }> {
  const extracted = extractEmbeddedStubFlags(argv);
  if (!extracted.enabled) return { argv: extracted.argv };
  const clash = extracted.argv.find((arg) => MAIN_TARGET_FLAGS.test(arg));
  if (clash)
    throw configError(
      "--embedded-mcp-stub",
      `cannot be combined with ${clash.split("=")[0]}; use one main MCP target path`,
    );
  let stub: McpStub;
  try {
    // Loaded only when asked for: the stub brings the MCP SDK's server, its JSON Schema
    // validator and zod v3 (~6 MiB resident), which an ordinary `run` never uses.
    const { startMcpStub } = await import("../demo/mcp-stub.ts");
    stub = await startMcpStub(extracted.options);
  } catch (error) {
    throw error instanceof ConfigError
      ? error
      : configError("--embedded-mcp-listen-addr", `the embedded MCP stub cannot listen: ${(error as Error).message}`);
  }
  return { argv: [...extracted.argv, "--mcp.server-url", stub.url], stub };
}
