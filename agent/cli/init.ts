/**
 * `airlock init`: write a profile from a built-in sample, validated by the same loader
 * `run` uses, into the profile directory (`$XDG_CONFIG_HOME/airlock/profiles` or
 * `--profile-dir`). It never overwrites without `--force`, stores the API key only as an
 * `env:`/`file:` reference, and prints the exact commands to run next.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { loadConfig } from "../config/load.ts";
import { planConfigSource, profileDirs } from "../config/profiles.ts";
import { splitCommand } from "../config/routes.ts";
import { findProgram, shellWord } from "../doctor/command.ts";
import { findSample, readSample, renderSample, SampleError, SAMPLES } from "../samples/catalog.ts";
import { defineCommand, UsageError } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

const FLAGS: Record<string, FlagSpec> = {
  sample: {
    kind: "string",
    value: "NAME",
    help: "sample to start from (default: sample_mcp_stdio_local with --mcp-command, else sample_mcp_with_dcr)",
  },
  profile: { kind: "string", value: "NAME", help: "profile name to create (default: the sample's name)" },
  "profile-dir": {
    kind: "string",
    value: "DIR",
    help: "profile directory (default $XDG_CONFIG_HOME/airlock/profiles)",
  },
  "tunnel-id": { kind: "string", value: "ID", help: "tunnel id from the tunnel's settings (required)" },
  "mcp-command": { kind: "string", value: "CMD", help: "stdio MCP server command line" },
  "mcp-server-url": { kind: "string", value: "URL", help: "Streamable HTTP MCP server URL" },
  "control-plane-base-url": {
    kind: "string",
    value: "URL",
    help: "control-plane host root (default: the sample's, https://api.openai.com)",
  },
  "control-plane-url-path": { kind: "string", value: "PATH", help: "path prefix before /v1 (enterprise gateways)" },
  "control-plane-api-key-ref": {
    kind: "string",
    value: "REF",
    help: "where the key is read from at run time: env:NAME or file:/path (default env:CONTROL_PLANE_API_KEY)",
  },
  "health-listen-addr": {
    kind: "string",
    value: "ADDR",
    help: "health/admin listener (default 127.0.0.1:8080; 127.0.0.1:0 picks a free port)",
  },
  "open-web-ui": { kind: "bool", help: "open the admin UI in a browser when `run` starts" },
  force: { kind: "bool", help: "replace an existing profile" },
};

const DESCRIPTION = `Writes a profile from a built-in sample (${SAMPLES.map((s) => s.name).join(", ")}).
Secrets are never written: the API key is a reference read when the agent starts.`;

/** Values that only have to be well-formed for validation: unset `env:` references and unreadable `file:` ones. */
const PLACEHOLDER = "http://airlock-init-placeholder.invalid/";
const PLACEHOLDER_KEY = "airlock-init-placeholder-key";

export const main = defineCommand({
  name: "init",
  synopsis:
    "airlock init --tunnel-id ID (--mcp-command CMD | --mcp-server-url URL) [--sample NAME] [--profile NAME] [--force]",
  description: DESCRIPTION,
  flags: FLAGS,
  run: init,
});

async function init(flags: ParsedFlags, io: CliIo): Promise<number> {
  if (flags.positionals.length)
    throw new UsageError(`unexpected argument "${flags.positionals[0]}"; flags are written --name value`);
  const get = (name: string) => flags.strings.get(name);
  const tunnelId = get("tunnel-id");
  if (!tunnelId) {
    throw new UsageError(
      "--tunnel-id is required: copy the id (tunnel_ + 32 characters) from the tunnel's settings page, e.g. --tunnel-id tunnel_0123456789abcdef0123456789abcdef",
    );
  }
  const mcpCommand = get("mcp-command");
  const mcpServerUrl = get("mcp-server-url");
  const sampleName =
    get("sample") ??
    (mcpCommand !== undefined && mcpServerUrl === undefined ? "sample_mcp_stdio_local" : "sample_mcp_with_dcr");
  const sample = findSample(sampleName);
  if (!sample)
    throw new SampleError(`unknown sample "${sampleName}"; choose one of ${SAMPLES.map((s) => s.name).join(", ")}`);
  const profile = get("profile") ?? sample.name;

  // The profile's path by the rules `run --profile` reads it with (name check included).
  const sourceInputs = {
    flags: { profile, ...(get("profile-dir") !== undefined ? { "profile-dir": get("profile-dir")! } : {}) },
    env: io.env,
    cwd: io.cwd,
    ...(io.homeDir !== undefined ? { homeDir: io.homeDir } : {}),
  };
  const plan = planConfigSource(sourceInputs);
  const path = plan!.candidates[0]!;
  const dir = profileDirs(sourceInputs)[0]!;

  const text = renderSample(sample, await readSample(sample.name), {
    tunnelId,
    ...(mcpCommand !== undefined ? { mcpCommand } : {}),
    ...(mcpServerUrl !== undefined ? { mcpServerUrl } : {}),
    ...(get("control-plane-base-url") !== undefined ? { baseUrl: get("control-plane-base-url")! } : {}),
    ...(get("control-plane-url-path") !== undefined ? { urlPath: get("control-plane-url-path")! } : {}),
    ...(get("control-plane-api-key-ref") !== undefined ? { apiKeyRef: get("control-plane-api-key-ref")! } : {}),
    ...(get("health-listen-addr") !== undefined ? { listenAddr: get("health-listen-addr")! } : {}),
    ...(flags.bools.has("open-web-ui") ? { openBrowser: true } : {}),
  });
  const missingEnv = await validateProfileText(text, path, io);

  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFile(path, text, { flag: flags.bools.has("force") ? "w" : "wx", mode: 0o600 });
  } catch (error) {
    if ((error as { code?: string }).code === "EEXIST") {
      throw new UsageError(
        `profile "${profile}" already exists at ${path}; pass --force to replace it, or choose another --profile`,
      );
    }
    throw error;
  }

  const notes: string[] = [];
  if (mcpCommand !== undefined) {
    const program = splitCommand(mcpCommand, "--mcp-command")[0] ?? "";
    const lookup = await findProgram(program, { path: io.env.PATH, cwd: io.cwd });
    if (!lookup.found) notes.push(`note: ${lookup.reason}; install it before \`airlock run\` (doctor checks this too)`);
  }
  const select = [
    "--profile",
    profile,
    ...(get("profile-dir") !== undefined ? ["--profile-dir", get("profile-dir")!] : []),
  ]
    .map(shellWord)
    .join(" ");
  const listen = get("health-listen-addr") ?? "127.0.0.1:8080";
  const port = /:(\d+)$/.exec(listen)?.[1];
  io.stdout(
    [
      `Created profile ${profile} at ${path} (from ${sample.name}).`,
      ...notes,
      "",
      "Next:",
      ...missingEnv.map((name) => `  export ${name}=…        # not set in this shell; the profile reads it at start`),
      `  airlock doctor ${select} --explain`,
      `  airlock run ${select}`,
      port && port !== "0"
        ? `  then open http://127.0.0.1:${port}/ui (or: airlock health --port ${port})`
        : "  then: airlock health --url-file FILE (set health.url_file in the profile)",
      "",
    ].join("\n"),
  );
  return 0;
}

/**
 * Load the rendered profile exactly as `run --config` would, but against the file alone:
 * the shell's own CONTROL_PLANE_* or MCP_* variables must not mask a mistake in it, and
 * references the operator will only provide later are filled with placeholders. Returns
 * the referenced environment variables that are not set in this shell.
 */
export async function validateProfileText(text: string, path: string, io: CliIo): Promise<string[]> {
  const parsed: unknown = parseDocument(text).toJS();
  const referenced = new Set<string>();
  collectEnvReferences(parsed, referenced);
  const env: Record<string, string> = {};
  for (const name of referenced) env[name] = PLACEHOLDER;
  // The key's placeholder must look like a key (OpenAI keys are checked for their shape).
  const keyRef = /^\s*(env|file):\s*(.+?)\s*$/i.exec(
    String((parsed as { control_plane?: { api_key?: unknown } } | null)?.control_plane?.api_key ?? ""),
  );
  if (keyRef?.[1]?.toLowerCase() === "env") env[keyRef[2]!] = PLACEHOLDER_KEY;
  const keyFile = keyRef?.[1]?.toLowerCase() === "file" ? keyRef[2]! : undefined;
  const keyFiles = keyFile === undefined ? [] : [keyFile, resolve(io.cwd, keyFile), resolve(dirname(path), keyFile)];
  await loadConfig({
    argv: ["--config", path],
    env,
    cwd: io.cwd,
    readFile: async (file) => (file === path ? text : keyFiles.includes(file) ? PLACEHOLDER_KEY : PLACEHOLDER),
    ...(io.homeDir !== undefined ? { homeDir: io.homeDir } : {}),
  });
  return [...referenced].filter((name) => !io.env[name]?.trim());
}

function collectEnvReferences(node: unknown, out: Set<string>): void {
  if (typeof node === "string") {
    const match = /^\s*env:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$/i.exec(node);
    if (match) out.add(match[1]!);
  } else if (Array.isArray(node)) {
    for (const item of node) collectEnvReferences(item, out);
  } else if (node && typeof node === "object") {
    for (const value of Object.values(node)) collectEnvReferences(value, out);
  }
}
