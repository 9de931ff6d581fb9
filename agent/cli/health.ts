/**
 * `airlock health --url-file F | --port N | --url URL [--json]`: ask a running agent's
 * `/readyz` whether it is ready. Exit 0 only when it is; 1 when it is not ready or cannot be
 * reached; 2 for a usage error. Suitable as a Kubernetes `exec` probe, so the health
 * listener can stay on loopback inside the pod.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { defineCommand, timeoutFlag, UsageError } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

const FLAGS: Record<string, FlagSpec> = {
  "url-file": { kind: "string", value: "FILE", help: "file the agent wrote its base URL to (health.url_file)" },
  port: { kind: "string", value: "N", help: "the agent's health port on 127.0.0.1" },
  url: { kind: "string", value: "URL", help: "the agent's base URL (or its /readyz URL)" },
  timeout: { kind: "string", value: "DURATION", help: "give up after this long (default 5s)" },
  live: { kind: "bool", help: "probe /healthz (the process is alive) instead of /readyz: for liveness probes" },
  json: { kind: "bool", help: "print the result as JSON" },
};

const DESCRIPTION = "Probes /readyz (or with --live, /healthz) of a running agent. Exit status: 0 ready (alive), 1 not ready or unreachable, 2 usage error.";

export interface HealthResult {
  url: string;
  /** The probed path answered 200: ready (alive, with `--live`). */
  ready: boolean;
  /** HTTP status of the probed path, when it answered. */
  status?: number;
  /** Why not ready (from /readyz), or why it could not be asked. */
  reasons: string[];
  uiUrl?: string;
}

/** Probe `<base>/readyz` (or `/healthz`); never throws. */
export async function probeReadiness(base: string, timeoutMs: number, options: { path?: "/readyz" | "/healthz"; fetch?: typeof fetch } = {}): Promise<HealthResult> {
  const path = options.path ?? "/readyz";
  const doFetch = options.fetch ?? fetch;
  const url = `${base.replace(/\/+$/, "")}${path}`;
  try {
    const response = await doFetch(url, { headers: { Accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let reasons: string[] = [];
    try {
      const body = JSON.parse(text) as { reasons?: unknown };
      if (Array.isArray(body.reasons)) reasons = body.reasons.map(String);
    } catch {
      if (text.trim()) reasons = [text.trim().slice(0, 500)];
    }
    const ready = response.status === 200;
    if (!ready && reasons.length === 0) reasons = [`${path} answered HTTP ${response.status}`];
    return { url, ready, status: response.status, reasons, uiUrl: `${base.replace(/\/+$/, "")}/ui` };
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    const detail = timedOut ? `no answer within ${timeoutMs} ms` : describe(error);
    return { url, ready: false, reasons: [`cannot reach the agent at ${url}: ${detail}; is \`airlock run\` running with this health address?`] };
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : "";
  return cause ? `${error.message} (${cause})` : error.message;
}

export const main = defineCommand({
  name: "health",
  synopsis: "airlock health (--url-file FILE | --port N | --url URL) [--live] [--json] [--timeout DURATION]",
  description: DESCRIPTION,
  flags: FLAGS,
  run: health,
});

async function health(flags: ParsedFlags, io: CliIo): Promise<number> {
  if (flags.positionals.length) throw new UsageError(`unexpected argument "${flags.positionals[0]}"`);
  const chosen = ["url-file", "port", "url"].filter((name) => flags.strings.has(name));
  if (chosen.length !== 1) throw new UsageError("choose exactly one of --url-file FILE, --port N or --url URL");
  const timeoutMs = timeoutFlag(flags, 5000);
  const located = await locate(chosen[0]!, flags.strings.get(chosen[0]!)!, io.cwd);
  const live = flags.bools.has("live");
  const result: HealthResult = "base" in located ? await probeReadiness(located.base, timeoutMs, { path: live ? "/healthz" : "/readyz" }) : { url: located.file, ready: false, reasons: [located.missing] };
  if (flags.bools.has("json")) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
  else if (result.ready) io.stdout(`${live ? "LIVE " : "READY"}  ${result.url}\nUI     ${result.uiUrl}\n`);
  else io.stdout(`${live ? "NOT LIVE" : "NOT READY"}  ${result.url}${result.status ? ` (HTTP ${result.status})` : ""}\n${result.reasons.map((r) => `  - ${r}`).join("\n")}\n`);
  return result.ready ? 0 : 1;
}

type Located = { base: string } | { file: string; missing: string };

/** The agent's base URL from the chosen locator. */
async function locate(kind: string, value: string, cwd: string): Promise<Located> {
  if (kind === "port") {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) throw new UsageError(`--port ${value} is not a port (1-65535)`);
    return { base: `http://127.0.0.1:${value}` };
  }
  let text = value;
  if (kind === "url-file") {
    const path = resolve(cwd, value);
    try {
      text = (await readFile(path, "utf8")).trim();
    } catch (error) {
      const code = (error as { code?: string }).code;
      // A missing file usually means the agent is not (yet) running: not ready, not a usage error.
      if (code === "ENOENT") return { file: path, missing: `${path} does not exist: the agent is not running, or not listening yet (it writes health.url_file once it listens)` };
      throw new UsageError(`cannot read ${path}${code ? ` (${code})` : ""}`);
    }
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`"${text}" is not a URL${kind === "url-file" ? ` (read from ${value})` : ""}`);
  }
  return { base: `${url.origin}${url.pathname.replace(/\/(readyz|healthz|ui)\/?$/, "")}`.replace(/\/+$/, "") };
}
