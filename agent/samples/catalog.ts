/**
 * The built-in profile samples: one YAML file each beside this module, valid as it stands
 * (with example values), and rendered into a real profile by `airlock init` through the
 * `yaml` document API so the sample's comments survive. The first four carry
 * tunnel-client's names so its docs and habits keep working; the last two are Airlock's.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { isMap, isScalar, isSeq, parseDocument, Scalar } from "yaml";
import type { Document, YAMLMap } from "yaml";
import { TUNNEL_ID_PATTERN } from "../../shared/protocol/index.ts";

/** Which MCP target a sample takes from `--mcp-command` / `--mcp-server-url`. */
export type SampleTarget = "command" | "url" | "either";

export interface SampleInfo {
  name: string;
  summary: string;
  useWhen: string;
  target: SampleTarget;
  /** Environment variables the sample references besides the API key (set them before `run`). */
  env: string[];
}

export const SAMPLES: readonly SampleInfo[] = [
  {
    name: "sample_mcp_stdio_local",
    summary: "a local stdio MCP server started and supervised by Airlock",
    useWhen: "you have an MCP server you start as a command and want the shortest path to a healthy tunnel",
    target: "command",
    env: [],
  },
  {
    name: "sample_mcp_remote_no_auth",
    summary: "a Streamable HTTP MCP server without OAuth",
    useWhen: "the server is reachable over HTTP(S) from this host and does not use OAuth metadata",
    target: "url",
    env: [],
  },
  {
    name: "sample_mcp_with_dcr",
    summary: "an MCP server doing its own OAuth (protected-resource metadata, dynamic client registration)",
    useWhen: "the server authenticates users itself; the tunnel forwards the client's Authorization header",
    target: "either",
    env: [],
  },
  {
    name: "sample_mcp_enterprise_proxy",
    summary: "egress through a corporate proxy with a private root CA",
    useWhen: "outbound HTTPS must go through a proxy or TLS is intercepted by a private PKI",
    target: "either",
    env: ["HTTPS_PROXY", "ENTERPRISE_CA_BUNDLE"],
  },
  {
    name: "sample_routing_table",
    summary: "several MCP servers behind one tunnel (Airlock's routing table)",
    useWhen: "one tunnel should expose tools from several servers, namespaced as <backend>__<tool>",
    target: "either",
    env: ["WIKI_TOKEN"],
  },
  {
    name: "sample_self_hosted_hub",
    summary: "poll your own Airlock hub instead of OpenAI's endpoint",
    useWhen: "any MCP client should reach the server through a hub you run (wrangler deploy, or locally)",
    target: "either",
    env: [],
  },
];

/** A sample that does not exist, or values it cannot take: the operator must change the command line. */
export class SampleError extends Error {
  override name = "SampleError";
}

export function findSample(name: string): SampleInfo | undefined {
  return SAMPLES.find((sample) => sample.name === name.trim());
}

/** Where a sample's file lives (beside this module). */
export function samplePath(name: string): string {
  return fileURLToPath(new URL(`./${name}.yaml`, import.meta.url));
}

declare global {
  /** The samples' texts by name, defined only inside a single-file executable (scripts/build.mjs), which has no files beside it. */
  var AIRLOCK_EMBEDDED_SAMPLES: Record<string, string> | undefined;
}

/** The sample's YAML as shipped, comments and example values included. */
export async function readSample(name: string): Promise<string> {
  const info = findSample(name);
  if (!info) throw new SampleError(unknownSample(name));
  const embedded = globalThis.AIRLOCK_EMBEDDED_SAMPLES?.[info.name];
  return embedded ?? readFile(samplePath(info.name), "utf8");
}

function unknownSample(name: string): string {
  return `unknown sample "${name}"; the samples are ${SAMPLES.map((s) => s.name).join(", ")} (airlock profiles samples list)`;
}

/** The values `airlock init` writes into a sample. Absent optional values keep the sample's own. */
export interface SampleValues {
  tunnelId: string;
  mcpCommand?: string;
  mcpServerUrl?: string;
  baseUrl?: string;
  urlPath?: string;
  /** `env:NAME` or `file:/path`; literal keys are refused. */
  apiKeyRef?: string;
  listenAddr?: string;
  openBrowser?: boolean;
}

/**
 * Fill `values` into the sample text. Throws {@link SampleError} naming the flag when a value
 * cannot be used. The result still has to pass `loadConfig`; `init` checks that.
 */
export function renderSample(info: SampleInfo, text: string, values: SampleValues): string {
  const tunnelId = values.tunnelId.trim();
  if (!TUNNEL_ID_PATTERN.test(tunnelId)) {
    throw new SampleError(
      `--tunnel-id "${tunnelId}" is not a tunnel id: copy it from the tunnel's settings (tunnel_ followed by 32 lowercase letters or digits)`,
    );
  }
  const command = values.mcpCommand?.trim() || undefined;
  const url = values.mcpServerUrl?.trim() || undefined;
  checkTarget(info, command, url);
  if (url !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      /* reported below */
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol))
      throw new SampleError(`--mcp-server-url "${url}" is not an http(s) URL; write e.g. http://127.0.0.1:3001/mcp`);
  }
  const apiKeyRef = values.apiKeyRef?.trim();
  if (apiKeyRef !== undefined && !/^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S.*)$/i.test(apiKeyRef)) {
    throw new SampleError(
      "--control-plane-api-key-ref takes a reference, env:NAME or file:/path; a profile never stores the key itself",
    );
  }

  const doc = parseDocument(text);
  setScalar(doc, ["control_plane", "tunnel_id"], tunnelId);
  if (values.baseUrl?.trim()) setScalar(doc, ["control_plane", "base_url"], values.baseUrl.trim());
  if (values.urlPath?.trim()) setScalar(doc, ["control_plane", "url_path"], values.urlPath.trim());
  if (apiKeyRef) setScalar(doc, ["control_plane", "api_key"], apiKeyRef);
  if (values.listenAddr?.trim()) setScalar(doc, ["health", "listen_addr"], values.listenAddr.trim());
  if (values.openBrowser !== undefined) setScalar(doc, ["admin_ui", "open_browser"], values.openBrowser);
  setTarget(doc, command, url);
  return doc.toString({ lineWidth: 0 });
}

function checkTarget(info: SampleInfo, command: string | undefined, url: string | undefined): void {
  if (command !== undefined && url !== undefined)
    throw new SampleError("give either --mcp-command or --mcp-server-url, not both");
  if (info.target === "command" && command === undefined) {
    throw new SampleError(
      `${info.name} runs a local command: pass --mcp-command "…"${url ? " (for an HTTP server use sample_mcp_remote_no_auth or sample_mcp_with_dcr)" : ""}`,
    );
  }
  if (info.target === "url" && url === undefined) {
    throw new SampleError(
      `${info.name} forwards to an HTTP server: pass --mcp-server-url URL${command ? " (for a command use sample_mcp_stdio_local)" : ""}`,
    );
  }
  if (command === undefined && url === undefined)
    throw new SampleError(`${info.name} needs the MCP server: pass --mcp-command "…" or --mcp-server-url URL`);
}

/** Replace a scalar in place so its quoting (and any comment on it) stays; create it when missing. */
function setScalar(doc: Document, path: Array<string | number>, value: string | boolean): void {
  const node = doc.getIn(path, true);
  if (isScalar(node)) {
    node.value = value;
    return;
  }
  const scalar = new Scalar(value);
  if (typeof value === "string") scalar.type = Scalar.QUOTE_DOUBLE;
  doc.setIn(path, scalar);
}

/** Point the main MCP binding at the command or URL: the first route backend, or `mcp.commands` / `mcp.server_urls`. */
function setTarget(doc: Document, command: string | undefined, url: string | undefined): void {
  const routes = doc.get("routes", true);
  if (isSeq(routes)) {
    const backend = doc.getIn(["routes", 0, "backends", 0], true);
    if (!isMap(backend)) throw new SampleError("the sample's first route has no backend to fill in");
    const map = backend as YAMLMap;
    for (const key of command !== undefined
      ? ["url", "headers", "ca_file", "unix_socket", "http_proxy", "client_cert", "client_key"]
      : ["command", "env", "cwd"])
      map.delete(key);
    setScalar(doc, ["routes", 0, "backends", 0, command !== undefined ? "command" : "url"], (command ?? url)!);
    return;
  }
  const [keep, drop, field] =
    command !== undefined ? ["commands", "server_urls", "command"] : ["server_urls", "commands", "url"];
  doc.deleteIn(["mcp", drop]);
  if (isSeq(doc.getIn(["mcp", keep], true))) {
    setScalar(doc, ["mcp", keep, 0, field], (command ?? url)!);
  } else {
    const entry = doc.createNode({ channel: "main", [field]: command ?? url });
    doc.setIn(["mcp", keep], doc.createNode([entry]));
  }
}
