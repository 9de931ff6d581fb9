/**
 * `airlock run`: the tunnel agent. Reads tunnel-client's flags, environment and profiles,
 * serves until SIGINT/SIGTERM, then drains in-flight work and exits 0.
 */
import process from "node:process";
import { createWriteStream, type WriteStream } from "node:fs";
import { spawn } from "node:child_process";
import { rename, rm, writeFile } from "node:fs/promises";
import { childEnvironment, DESKTOP_SESSION_VARIABLES } from "../backends/child-env.ts";
import { createLogger, type Logger } from "../../shared/log.ts";
import type { LoadedConfig } from "../config/types.ts";
import { VERSION } from "../version.ts";
import { EMBEDDED_STUB_HELP, withEmbeddedStub } from "./embedded-stub.ts";
import type { McpStub } from "../demo/mcp-stub.ts";
import { loadConfig } from "../config/load.ts";
import { ConfigError } from "../config/errors.ts";

/**
 * `run` exits as tunnel-client does, so supervisors and scripts see the same codes: 1 for a
 * configuration or start failure (tunnel-client's `configure …`/`start …` errors), 0 after a
 * clean stop. Airlock's other commands keep 2 for usage and config errors (docs/migrating.md).
 */
const EXIT_RUN_FAILED = 1;
import { flagUsage } from "../config/flags.ts";
import { startAgent, type AgentHandle } from "../agent.ts";
import { META_NOT_FETCHED } from "../control-plane/metadata-fetch.ts";
import { mountAdminUi } from "../ops/ui.tsx";
import { createUiCredential, type UiCredential } from "../ops/ui-auth.ts";
import { createLogTail, createRecentCalls } from "../ops/recent.ts";
import { discoveryTarget } from "../oauth/discovery.ts";
import { wellKnownResourceUrls } from "../oauth/resource-metadata.ts";

/**
 * Open `log.file` for appending before anything runs, so a bad path is a config error.
 * A write error later (disk full, file removed) must not kill the daemon: logging falls
 * back to the console, with one line on stderr saying why.
 */
async function openLogFile(path: string): Promise<WriteStream> {
  // 0600 as tunnel-client: logs name tunnels, hosts and errors other users need not read.
  const stream = createWriteStream(path, { flags: "a", mode: 0o600 });
  await new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", reject);
  });
  stream.on("error", (error) => {
    process.stderr.write(
      `airlock: writing log.file ${path} failed (${(error as { code?: string }).code ?? error.message}); logging to the console (stdout, or stderr without a format) from now on\n`,
    );
    stream.destroy();
  });
  return stream;
}

/** `--open-web-ui`: hand the URL to the desktop's opener; a headless host just logs why not. */
function openBrowser(url: string, log: { warn(msg: string, fields?: Record<string, unknown>): void }) {
  const opener = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
  try {
    // The browser is a child too: it gets the desktop session, not the agent's credentials.
    const env = childEnvironment(process.env, [], DESKTOP_SESSION_VARIABLES);
    const child = spawn(opener, [url], { stdio: "ignore", detached: true, env });
    child.on("error", (error) => log.warn(`could not open a browser (${opener}); open ${url} yourself`, { error }));
    child.unref();
  } catch (error) {
    log.warn(`could not open a browser (${opener}); open ${url} yourself`, { error });
  }
}

/**
 * Tell the operator how to reach the admin UI: the token once on stderr (never through the
 * logger, so never in log.file, the UI's log tail or a support bundle), and a one-time
 * sign-in link in the log. Once logged, the link's code is scrubbed from what the UI and
 * the support bundle show. Returns the link (for --open-web-ui).
 */
async function announceAdminUi(
  opsUrl: string,
  credential: UiCredential,
  loaded: { secrets: string[]; config: { adminUi: { allowRemote: boolean } } },
  log: { info(msg: string): void },
): Promise<string> {
  process.stderr.write(
    `airlock: admin UI token: ${credential.token} (scripts send "Authorization: Bearer <token>"; browsers sign in at ${opsUrl}/ui/login)\n`,
  );
  const code = await credential.issueLoginCode();
  const signIn = `${opsUrl}/ui/login?code=${code}`;
  log.info(
    `admin UI at ${opsUrl}/ui${loaded.config.adminUi.allowRemote ? "" : " (loopback only)"}; sign in once with ${signIn}`,
  );
  loaded.secrets.push(code);
  return signIn;
}

/** tunnel-client's `oauth_discovery_urls`: the well-known metadata URLs discovery tries, numbered by priority. */
function oauthDiscoveryUrls(config: LoadedConfig["config"]): string[] {
  const main = discoveryTarget(config);
  return main ? wellKnownResourceUrls(new URL(main.url)).map(({ url }, index) => `${index + 1}:${url.href}`) : [];
}

/**
 * The startup lines operators' scripts wait for, worded as tunnel-client's. Like tunnel-client,
 * the started line waits up to 2 s for the tunnel's metadata (fetched in the background) to name it.
 */
async function announce(log: Logger, agent: AgentHandle, config: LoadedConfig["config"]) {
  const opsUrl = agent.opsUrl;
  const health = log.child({ component: "health" });
  if (config.health.urlFile)
    health.info(`🩺 HEALTH URL: ${opsUrl} (written to ${config.health.urlFile})`, {
      url: opsUrl,
      path: config.health.urlFile,
    });
  health.info("health server listening", { addr: config.health.unixSocket ?? new URL(opsUrl).host });
  const base = config.controlPlane.baseUrl.replace(/\/+$/, "");
  const meta = await agent.tunnelMetadata(2_000);
  log.child({ component: "process" }).info("🟢 tunnel-client started (airlock)", {
    tunnel_id: config.controlPlane.tunnelId,
    tunnel_url: `${base}/v1/tunnel/${config.controlPlane.tunnelId}`,
    name: meta?.name ?? META_NOT_FETCHED,
    description: meta?.description ?? META_NOT_FETCHED,
    oauth_discovery_urls: oauthDiscoveryUrls(config),
    version: VERSION,
  });
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`usage: airlock run [flags]\n\n${flagUsage()}\n${EMBEDDED_STUB_HELP}\n`);
    return 0;
  }
  let loaded: LoadedConfig;
  let stub: McpStub | undefined;
  try {
    const embedded = await withEmbeddedStub(argv);
    stub = embedded.stub;
    loaded = await loadConfig({ argv: embedded.argv, env: process.env, cwd: process.cwd() });
  } catch (error) {
    await stub?.close();
    if (error instanceof ConfigError) {
      process.stderr.write(`airlock: ${error.message}\n`);
      return EXIT_RUN_FAILED;
    }
    throw error;
  }
  try {
    return await serveAgent(loaded);
  } finally {
    await stub?.close();
  }
}

async function serveAgent(loaded: LoadedConfig): Promise<number> {
  const { config } = loaded;
  let file: WriteStream | undefined;
  if (config.log.file) {
    try {
      file = await openLogFile(config.log.file);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      process.stderr.write(
        `airlock: log.file: ${config.log.file} cannot be written (${typeof code === "string" ? code : String(error)}); fix the path or its permissions, or leave log.file unset to log to the console\n`,
      );
      return EXIT_RUN_FAILED;
    }
  }
  // The admin UI's own credential; the token is a secret like any other, scrubbed wherever it might show.
  const credential = await createUiCredential();
  loaded.secrets.push(credential.token);
  // The admin UI keeps the last log lines and calls in memory (never payloads).
  const logs = createLogTail(config.adminUi.logBufferEvents);
  const calls = createRecentCalls();
  // tunnel-client: json and struct-text go to stdout, its default layout to stderr.
  const out = config.log.format === "default" ? process.stderr : process.stdout;
  // tunnel-client's instance id format (32 lowercase hex), on every record and every control-plane call.
  const instanceId = crypto.randomUUID().replaceAll("-", "");
  const log = createLogger(
    {
      level: config.log.level,
      format: config.log.format,
      secrets: () => loaded.secrets,
      sink: (line, record) => {
        if (file && !file.destroyed) file.write(`${line}\n`);
        else out.write(`${line}\n`);
        logs.sink(line, record);
      },
    },
    { client_instance_id: instanceId, tunnel_id: config.controlPlane.tunnelId },
  );
  for (const warning of loaded.warnings) log.warn(warning);

  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent(loaded, {
      log,
      instanceId,
      events: calls.events,
      fetchTunnelMetadata: true,
      extendOps: (app, handle) =>
        mountAdminUi(app, handle, { logger: log, calls, logs, tools: handle.tools, credential }),
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      log.error(`the agent could not start: ${error.message}`, { path: error.path });
      return EXIT_RUN_FAILED;
    }
    log.error("the agent could not start", { error });
    return EXIT_RUN_FAILED;
  }
  // Listen for signals before the pid file and the lines scripts wait for: a supervisor may stop
  // the agent as soon as it sees them, and that stop must be the clean one.
  const signalled = new Promise<string>((resolve) => {
    for (const name of ["SIGINT", "SIGTERM"] as const) process.once(name, () => resolve(name));
  });
  // tunnel-client's process.pid_file: written once serving, removed on a clean exit.
  const pidFile = config.process.pidFile;
  if (pidFile) {
    try {
      // Written whole or not at all (a temporary file renamed over it), so a script that
      // finds the file never reads it empty.
      const partial = `${pidFile}.${process.pid}.tmp`;
      await writeFile(partial, `${process.pid}\n`, { mode: 0o644 });
      await rename(partial, pidFile);
    } catch (error) {
      log.warn(`process.pid_file ${pidFile} could not be written; running without it`, { error });
    }
  }
  await announce(log, agent, config);
  const signInUrl = await announceAdminUi(agent.opsUrl, credential, loaded, log);
  if (config.adminUi.openBrowser) openBrowser(signInUrl, log);
  const signal = await signalled;
  log.info("signal received", { signal });
  await agent.stop();
  if (pidFile) await rm(pidFile, { force: true }).catch(() => {});
  file?.end();
  return 0;
}
