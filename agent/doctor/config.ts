/**
 * Doctor's configuration checks: which file (if any) configures the run, whether it and the
 * flags/environment validate, the tunnel id, the API key and the main MCP binding. The
 * loader runs in lenient mode so a bad tunnel id or a missing key is one FAIL among the
 * other results, not the end of the report.
 */
import { readFile as fsReadFile } from "node:fs/promises";
import { parseDocument } from "yaml";
import { ConfigError } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import { planConfigSource } from "../config/profiles.ts";
import { referenceKind } from "../config/secrets.ts";
import type { ConfigSourcePlan } from "../config/profiles.ts";
import type { BackendConfig, LoadedConfig } from "../config/types.ts";
import { check } from "./types.ts";
import type { Check } from "./types.ts";

export interface ConfigCheckInput {
  /** The run flags (`--profile x`, `--control-plane.tunnel-id …`), doctor's own flags removed. */
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  homeDir?: string;
  readFile?: (path: string) => Promise<string>;
}

export interface ConfigCheckResult {
  checks: Check[];
  /** Absent when the configuration could not be loaded at all. */
  loaded?: LoadedConfig;
  /** Set when the tunnel id and the API key are usable, i.e. the control plane can be asked. */
  credentialsOk: boolean;
  /** The `airlock run …` arguments that select the same configuration. */
  runArgs: string[];
}

const WHY = {
  source:
    "Airlock reads one YAML file (--config, --profile or --profile-file) under the flags and environment; doctor checks the same one `run` would use.",
  schema: "Unknown keys, wrong types and invalid values stop `airlock run` before it connects.",
  tunnelId:
    "The tunnel id names the tunnel the agent polls; the control plane refuses ids that are malformed or belong to someone else.",
  apiKey:
    "The runtime API key authenticates every poll and response. Keep it out of files and process lists: reference it as env:NAME or file:/path.",
  target:
    "Every polled command is forwarded to the MCP server bound to its channel; `main` must have one unless control_plane.poll_channels says otherwise.",
};

const SOURCE_FIX = [
  "pass --profile NAME (created with `airlock init`), --profile-file FILE or --config FILE, or configure through flags and environment only",
  "list the profiles Airlock can see: airlock profiles list",
];

export async function checkConfig(input: ConfigCheckInput): Promise<ConfigCheckResult> {
  const checks: Check[] = [];
  let plan: ConfigSourcePlan | undefined;
  const flags = sourceFlags(input.argv);
  const runArgs = () => runArgsFor(plan, flags);
  try {
    plan = planConfigSource({
      flags,
      env: input.env,
      cwd: input.cwd,
      ...(input.homeDir !== undefined ? { homeDir: input.homeDir } : {}),
    });
  } catch (error) {
    checks.push(check("config_source", "FAIL", message(error), WHY.source, SOURCE_FIX));
    return { checks, credentialsOk: false, runArgs: [] };
  }

  let loaded: LoadedConfig;
  try {
    loaded = await loadConfig({ ...input, lenient: true });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    checks.push(...loadFailureChecks(error, plan));
    return { checks, credentialsOk: false, runArgs: runArgs() };
  }

  const file = loaded.config.file;
  checks.push(
    check(
      "config_source",
      "PASS",
      file ? describeSource(plan, file.path) : "flags and environment only (no config file)",
      WHY.source,
    ),
  );
  checks.push(
    loaded.warnings.length
      ? check(
          "config_validation",
          "WARN",
          `valid, with ${loaded.warnings.length} warning(s): ${loaded.warnings.join("; ")}`,
          WHY.schema,
          ["remove or correct the settings named above; `run` starts anyway"],
        )
      : check("config_validation", "PASS", "valid", WHY.schema),
  );

  const deferred = loaded.deferred ?? [];
  const issue = (path: string) => deferred.find((d) => d.path === path || d.path.startsWith(`${path} `));

  const tunnelIssue = issue("control_plane.tunnel_id");
  checks.push(
    tunnelIssue
      ? check("tunnel_id", "FAIL", tunnelIssue.message, WHY.tunnelId, [
          "copy the id from the tunnel's settings page: it is tunnel_ followed by 32 lowercase letters or digits",
          "set it in the profile (control_plane.tunnel_id), with --control-plane.tunnel-id or CONTROL_PLANE_TUNNEL_ID",
        ])
      : check(
          "tunnel_id",
          "PASS",
          `${loaded.config.controlPlane.tunnelId}${sourceNote(loaded, "control_plane.tunnel_id")}`,
          WHY.tunnelId,
        ),
  );

  const keyIssue = issue("control_plane.api_key");
  if (keyIssue) {
    checks.push(
      check("control_plane_api_key", "FAIL", keyIssue.message, WHY.apiKey, [
        "export CONTROL_PLANE_API_KEY=… (a runtime API key with tunnel use permission), or point control_plane.api_key at env:NAME / file:/path",
        "rerun: airlock doctor",
      ]),
    );
  } else {
    checks.push(await apiKeyCheck(loaded, input.readFile));
  }

  checks.push(targetCheck(loaded, issue("mcp")));
  return { checks, loaded, credentialsOk: !tunnelIssue && !keyIssue, runArgs: runArgs() };
}

/** A configuration that did not load: an unreadable source or a usage error, else a validation failure. */
function loadFailureChecks(error: ConfigError, plan: ConfigSourcePlan | undefined): Check[] {
  // The loader names the selecting flag as the path when the file itself cannot be read.
  const unreadable = plan !== undefined && error.path === plan.origin;
  if (unreadable || error.kind === "usage")
    return [
      check(
        "config_source",
        "FAIL",
        error.message,
        WHY.source,
        error.kind === "usage" ? ["fix the command line: `airlock run --help` lists every flag"] : SOURCE_FIX,
      ),
    ];
  return [
    check("config_source", "PASS", describeSource(plan), WHY.source),
    check("config_validation", "FAIL", error.message, WHY.schema, [
      plan
        ? `edit ${plan.candidates.length === 1 ? plan.candidates[0] : "the profile"} at the key path named above`
        : "fix the flag or environment variable named above",
      "compare with a built-in sample: airlock profiles samples show sample_mcp_stdio_local",
    ]),
  ];
}

/** The channels and their backends, or what to do when the main channel has none. */
function targetCheck(loaded: LoadedConfig, targetIssue: { message: string } | undefined): Check {
  if (targetIssue)
    return check("mcp_target", "FAIL", targetIssue.message, WHY.target, [
      'bind the main channel: --mcp.command "…" or --mcp.server-url URL (MCP_COMMAND / MCP_SERVER_URL), or mcp.commands / mcp.server_urls / routes in the profile',
    ]);
  const summary = loaded.config.routes
    .map((route) => `${route.channel} → ${route.backends.map((b) => describeBackend(b, route.channel)).join(", ")}`)
    .join("; ");
  return check("mcp_target", "PASS", summary || "no routes (Harpoon only)", WHY.target);
}

/** Where the API key comes from; a literal key written into a file is a WARN. */
async function apiKeyCheck(loaded: LoadedConfig, readFile?: (path: string) => Promise<string>): Promise<Check> {
  const source = loaded.sources["control_plane.api_key"];
  if (!source) return check("control_plane_api_key", "PASS", "present", WHY.apiKey);
  if (source.layer === "flag" || source.layer === "env") {
    return check("control_plane_api_key", "PASS", `present (from ${source.name})`, WHY.apiKey);
  }
  const path = source.name ?? loaded.config.file?.path ?? "the config file";
  const raw = await rawFileValue(path, ["control_plane", "api_key"], readFile);
  if (raw !== undefined && referenceKind(raw) === undefined) {
    return check("control_plane_api_key", "WARN", `a literal key is written in ${path}`, WHY.apiKey, [
      `move the key out of the file: put it in the environment (export CONTROL_PLANE_API_KEY=…) or a file only this user can read, and set control_plane.api_key to env:CONTROL_PLANE_API_KEY or file:/path`,
      "then rotate the key if the file was ever shared or committed",
    ]);
  }
  return check("control_plane_api_key", "PASS", `present (${raw?.trim() ?? "reference"} in ${path})`, WHY.apiKey);
}

async function rawFileValue(
  path: string,
  keys: string[],
  readFile?: (path: string) => Promise<string>,
): Promise<string | undefined> {
  try {
    const text = readFile ? await readFile(path) : await fsReadFile(path, "utf8");
    const value = parseDocument(text).getIn(keys);
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

function describeBackend(backend: BackendConfig, channel: string): string {
  const target = backend.transport === "stdio" ? `stdio: ${backend.command.join(" ")}` : `http: ${backend.url}`;
  return backend.name === channel ? target : `${backend.name} (${target})`;
}

function sourceNote(loaded: LoadedConfig, path: string): string {
  const source = loaded.sources[path];
  return source?.name ? ` (from ${source.name})` : "";
}

function describeSource(plan: ConfigSourcePlan | undefined, path?: string): string {
  if (!plan) return "flags and environment only (no config file)";
  const where = path ?? plan.candidates.join(" or ");
  if (plan.kind === "profile") return `profile ${plan.profileName} (${where}, chosen by ${plan.origin})`;
  return `${plan.kind === "profile-file" ? "profile file" : "config file"} ${where} (chosen by ${plan.origin})`;
}

/** The flags that select the configuration, so `next` can say `airlock run --profile x`. */
function runArgsFor(plan: ConfigSourcePlan | undefined, flags: Record<string, string>): string[] {
  if (!plan?.origin.startsWith("--")) return [];
  if (plan.kind !== "profile") return [plan.origin, plan.candidates[0]!];
  return [
    plan.origin,
    plan.profileName!,
    ...(flags["profile-dir"] !== undefined ? ["--profile-dir", flags["profile-dir"]] : []),
  ];
}

/** The source-choosing flags out of a run command line (`--profile x`, `--config=f`). */
function sourceFlags(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const names = ["config", "profile", "profile-file", "profile-dir"];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") break;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(word);
    if (!match || !names.includes(match[1]!)) continue;
    const value = match[2] ?? argv[i + 1];
    if (match[2] === undefined) i++;
    if (value !== undefined) out[match[1]!] = value;
  }
  return out;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
