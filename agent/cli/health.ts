/**
 * `airlock health (--url-file F | --port N | --url URL) [--json]`: tunnel-client's `health`.
 * Probes a running agent's `/healthz` and `/readyz`; optionally cross-checks its PID
 * (`--pid`, `--pid-file`) and requires one answered control-plane poll
 * (`--require-control-plane-poll`, read from `commands_poll_last_successful_timestamp_seconds`
 * on `/metrics`). Exit 0 when every check passed, 2 when one did not (tunnel-client's code),
 * 1 for a usage error. Suitable as a Kubernetes `exec` probe, so the health listener can
 * stay on loopback inside the pod. Airlock adds `--live` (only `/healthz`, for liveness
 * probes) and `--strict` (Airlock's readiness: `/readyz?strict=1`, control plane included).
 */
import process from "node:process";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { createHttpClient } from "../runtime/http-client.ts";
import { unixSocketOf } from "../runtime/serve.ts";
import { defineCommand, timeoutFlag, UsageError } from "./options.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

const FLAGS: Record<string, FlagSpec> = {
  "url-file": { kind: "string", value: "FILE", help: "file the agent wrote its base URL to (health.url_file)" },
  port: { kind: "string", value: "N", help: "the agent's health port on 127.0.0.1" },
  url: { kind: "string", value: "URL", help: "the agent's base URL (or its /healthz or /readyz URL)" },
  pid: { kind: "string", value: "PID", help: "also require this process to be running" },
  "pid-file": {
    kind: "string",
    value: "FILE",
    help: "also require the process whose PID this file holds (process.pid_file) to be running",
  },
  "require-control-plane-poll": {
    kind: "bool",
    help: "also require one answered control-plane poll (commands_poll_last_successful_timestamp_seconds > 0)",
  },
  strict: {
    kind: "bool",
    help: "Airlock's readiness: /readyz?strict=1 (a poll answered recently and the key accepted, besides the backends)",
  },
  live: {
    kind: "bool",
    help: "only /healthz (the process is alive): for liveness probes, a control-plane or backend outage never fails it",
  },
  timeout: { kind: "string", value: "DURATION", help: "give up on each request after this long (default 5s)" },
  json: { kind: "bool", help: "print tunnel-client's JSON report" },
};

const DESCRIPTION =
  "Probes /healthz and /readyz of a running agent, as tunnel-client's `health`. Exit status: 0 ok, 2 a check failed (not live, not ready, unreachable, process gone, no poll), 1 usage error.";

/** One endpoint, as tunnel-client reports it. */
export interface EndpointProbe {
  url?: string;
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
}

/** tunnel-client's `health --json` document. */
export interface HealthReport {
  locator: {
    kind: "url" | "url_file" | "port";
    url?: string;
    url_file?: string;
    port?: number;
    resolved_base_url?: string;
    error?: string;
  };
  process?: { pid?: number; pid_file?: string; running: boolean; error?: string };
  base_url?: string;
  ui_url?: string;
  healthz: EndpointProbe;
  readyz: EndpointProbe;
  control_plane_poll?: { url?: string; value?: number; ok: boolean; error?: string };
  result: "ok" | "fail";
}

/** GET one path; never throws. */
export async function probeEndpoint(
  base: string,
  path: string,
  timeoutMs: number,
  doFetch: typeof fetch = fetch,
): Promise<EndpointProbe & { text?: string }> {
  const url = `${base}${path}`;
  try {
    const response = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    return { url, ok: response.status === 200, status: response.status, body: text.trim().slice(0, 500), text };
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    const detail = timedOut ? `no answer within ${timeoutMs} ms` : describe(error);
    return {
      url,
      ok: false,
      error: `cannot reach the agent: ${detail}; is \`airlock run\` running with this health address?`,
    };
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : "";
  return cause ? `${error.message} (${cause})` : error.message;
}

/** The value of an unlabelled sample in Prometheus text, if present. */
export function metricValue(text: string, name: string): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name} `) && !line.startsWith(`${name}{`)) continue;
    const value = Number(line.trim().split(/\s+/).at(-1));
    if (Number.isFinite(value)) return value;
  }
  return undefined;
}

export const main = defineCommand({
  name: "health",
  synopsis:
    "airlock health (--url-file FILE | --port N | --url URL) [--pid PID | --pid-file FILE] [--require-control-plane-poll] [--strict | --live] [--json] [--timeout DURATION]",
  description: DESCRIPTION,
  flags: FLAGS,
  run: health,
  usageExit: 1,
});

async function health(flags: ParsedFlags, io: CliIo): Promise<number> {
  if (flags.positionals.length) throw new UsageError(`unexpected argument "${flags.positionals[0]}"`);
  const chosen = ["url-file", "port", "url"].filter((name) => flags.strings.has(name));
  if (chosen.length !== 1) throw new UsageError("choose exactly one of --url-file FILE, --port N or --url URL");
  if (flags.strings.has("pid") && flags.strings.has("pid-file"))
    throw new UsageError("choose at most one of --pid or --pid-file");
  if (flags.bools.has("live") && flags.bools.has("strict"))
    throw new UsageError("--live and --strict ask different questions; choose one");
  const timeoutMs = timeoutFlag(flags, 5000);
  const report = await inspect(chosen[0]! as "url-file" | "port" | "url", flags, io.cwd, timeoutMs);
  if (flags.bools.has("json")) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else io.stdout(printReport(report));
  return report.result === "ok" ? 0 : 2;
}

async function inspect(
  kind: "url-file" | "port" | "url",
  flags: ParsedFlags,
  cwd: string,
  timeoutMs: number,
): Promise<HealthReport> {
  const locator = await locate(kind, flags.strings.get(kind)!, cwd);
  const skipped = (why: string): EndpointProbe => ({ ok: false, error: why });
  const report: HealthReport = {
    locator,
    healthz: skipped(locator.error ?? "not probed"),
    readyz: skipped(locator.error ?? "not probed"),
    result: "fail",
  };
  const base = locator.resolved_base_url;
  if (base !== undefined && locator.error === undefined) {
    report.base_url = base;
    report.ui_url = `${base}/ui`;
    // An agent serving on a Unix socket (health.unix_socket) publishes http+unix://…: requests go through the socket.
    const socket = unixSocketOf(base);
    const client = socket ? createHttpClient({ unixSocket: socket }) : undefined;
    const target = client ? "http://localhost" : base;
    const doFetch = (client?.fetch ?? fetch) as typeof fetch;
    const strip = ({ text: _text, ...probe }: EndpointProbe & { text?: string }): EndpointProbe => probe;
    report.healthz = strip(await probeEndpoint(target, "/healthz", timeoutMs, doFetch));
    // --live answers the liveness question only: readiness is not asked, so it cannot fail the probe.
    report.readyz = flags.bools.has("live")
      ? { ok: true, body: "not checked (--live)" }
      : strip(
          await probeEndpoint(target, flags.bools.has("strict") ? "/readyz?strict=1" : "/readyz", timeoutMs, doFetch),
        );
    if (flags.bools.has("require-control-plane-poll"))
      report.control_plane_poll = await controlPlanePoll(target, timeoutMs, doFetch);
    await client?.close();
  }
  if (flags.strings.has("pid") || flags.strings.has("pid-file")) report.process = await processCheck(flags, cwd);
  const ok =
    locator.error === undefined &&
    report.healthz.ok &&
    report.readyz.ok &&
    (report.process === undefined || (report.process.running && report.process.error === undefined)) &&
    (report.control_plane_poll === undefined || report.control_plane_poll.ok);
  report.result = ok ? "ok" : "fail";
  return report;
}

async function controlPlanePoll(
  base: string,
  timeoutMs: number,
  doFetch: typeof fetch,
): Promise<NonNullable<HealthReport["control_plane_poll"]>> {
  const scraped = await probeEndpoint(base, "/metrics", timeoutMs, doFetch);
  if (!scraped.ok) return { url: scraped.url, ok: false, error: scraped.error ?? `HTTP ${scraped.status}` };
  const value = metricValue(scraped.text ?? "", "commands_poll_last_successful_timestamp_seconds");
  if (value === undefined)
    return { url: scraped.url, ok: false, error: "missing commands_poll_last_successful_timestamp_seconds metric" };
  return value > 0
    ? { url: scraped.url, value, ok: true }
    : { url: scraped.url, ok: false, error: "no successful control-plane poll observed" };
}

async function processCheck(flags: ParsedFlags, cwd: string): Promise<NonNullable<HealthReport["process"]>> {
  let text = flags.strings.get("pid");
  let pidFile: string | undefined;
  if (text === undefined) {
    pidFile = resolve(cwd, flags.strings.get("pid-file")!);
    try {
      text = (await readFile(pidFile, "utf8")).trim();
    } catch (error) {
      return {
        pid_file: pidFile,
        running: false,
        error: `read ${pidFile}: ${(error as { code?: string }).code ?? String(error)}`,
      };
    }
  }
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) {
    if (pidFile === undefined) throw new UsageError(`--pid ${text} is not a process id`);
    return { pid_file: pidFile, running: false, error: `parse ${pidFile} as pid: ${JSON.stringify(text)}` };
  }
  return { pid, ...(pidFile ? { pid_file: pidFile } : {}), running: isRunning(pid) };
}

/** Signal 0 asks the kernel whether the process exists; EPERM means it does (another user's). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** tunnel-client's text layout: one line per check, then `Result: OK|FAIL`. */
function printReport(report: HealthReport): string {
  const { locator } = report;
  const where =
    locator.kind === "url"
      ? `url=${locator.url}`
      : locator.kind === "url_file"
        ? `url_file=${locator.url_file}`
        : `port=${locator.port}`;
  const lines = [`Locator: ${where}`];
  if (locator.error) lines.push(`Locator error: ${locator.error}`);
  if (report.base_url) lines.push(`Base URL: ${report.base_url}`);
  if (report.ui_url) lines.push(`UI URL: ${report.ui_url}`);
  const endpoint = (label: string, probe: EndpointProbe) => {
    const parts = [
      probe.ok ? "PASS" : "FAIL",
      probe.url,
      probe.status ? `HTTP ${probe.status}` : undefined,
      probe.error ?? probe.body,
    ];
    lines.push(`${label}: ${parts.filter((part) => part !== undefined && part !== "").join(" | ")}`);
  };
  endpoint("Healthz", report.healthz);
  endpoint("Readyz", report.readyz);
  if (report.control_plane_poll)
    endpoint("Control-plane poll", { ...report.control_plane_poll, body: report.control_plane_poll.value?.toString() });
  if (report.process) {
    const p = report.process;
    lines.push(
      `Process: ${[p.running && !p.error ? "PASS" : "FAIL", p.pid ? `pid=${p.pid}` : undefined, p.pid_file ? `pid_file=${p.pid_file}` : undefined, p.error].filter(Boolean).join(" | ")}`,
    );
  }
  lines.push(`Result: ${report.result.toUpperCase()}`);
  return `${lines.join("\n")}\n`;
}

/** The agent's base URL from the chosen locator; a missing url file is a failed check, not a usage error. */
async function locate(kind: "url-file" | "port" | "url", value: string, cwd: string): Promise<HealthReport["locator"]> {
  if (kind === "port") {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535)
      throw new UsageError(`--port ${value} is not a port (1-65535)`);
    return { kind: "port", port: Number(value), resolved_base_url: `http://127.0.0.1:${value}` };
  }
  let text = value;
  const locator: HealthReport["locator"] =
    kind === "url" ? { kind: "url", url: value } : { kind: "url_file", url_file: resolve(cwd, value) };
  if (kind === "url-file") {
    try {
      text = (await readFile(locator.url_file!, "utf8")).trim();
    } catch (error) {
      const code = (error as { code?: string }).code;
      const why =
        code === "ENOENT"
          ? "does not exist: the agent is not running, or not listening yet (it writes health.url_file once it listens)"
          : `cannot be read (${code ?? String(error)})`;
      return { ...locator, error: `${locator.url_file} ${why}` };
    }
  }
  if (unixSocketOf(text)) return { ...locator, resolved_base_url: text.replace(/\/+$/, "") };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    if (kind === "url") throw new UsageError(`"${text}" is not a URL`);
    return { ...locator, error: `${locator.url_file} did not contain a health URL` };
  }
  return {
    ...locator,
    resolved_base_url: `${url.origin}${url.pathname.replace(/\/(readyz|healthz|ui)\/?$/, "")}`.replace(/\/+$/, ""),
  };
}
