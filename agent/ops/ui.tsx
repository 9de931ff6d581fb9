/**
 * The admin UI at `/ui` on the health listener: one server-rendered page (Hono JSX) whose
 * live part re-renders on the server every second, a live log tail with a level switch,
 * and a support-bundle download. No front-end build; the little script below only fetches.
 *
 * Access, in two independent layers. The network (`access.ts`): loopback peers only, unless
 * `admin_ui.allow_remote` (`--allow-remote-ui`); the connecting address comes from the
 * runtime (see {@link connectingAddress}), so the app must be served with
 * `serve(app.fetch, …)` — a wrapper that drops the second argument hides the address and
 * every request is refused. `Host` and `Origin` must always be loopback names or
 * `admin_ui.allowed_hosts` (DNS rebinding, cross-site requests). The credential
 * (`ui-auth.ts`): every page, fragment, API call and the support bundle need the UI token or
 * the session cookie its one-time link sets, because any local process (a stdio server, a
 * backend fetching a URL for a client) is a loopback peer too. State-changing calls (the
 * level switch, the sign-in form) are CSRF-checked as well.
 *
 * Secrets. Everything rendered is scrubbed of the agent's known secret values; the log
 * tail is scrubbed by the logger already; the support bundle is redacted twice
 * (`support-bundle.ts`). Calls carry names and numbers only, never payloads.
 */
import { accessRefusal, connectingAddress } from "./access.ts";
import { requireUiCredential, setSessionCookie, type UiCredential } from "./ui-auth.ts";
import { Hono } from "hono";
import type { Context } from "hono";
import { csrf } from "hono/csrf";
import type { BackendHealth, StdioChildren } from "../backends/types.ts";
import type { AgentHandle } from "../agent.ts";
import type { AgentConfig } from "../config/types.ts";
import type { LogLevel, Logger } from "../../shared/log.ts";
import { scrubSecrets } from "../../shared/log.ts";
import { RUNTIME, VERSION } from "../version.ts";
import type { Readiness } from "./app.ts";
import type { CallRecord, LogTail, RecentCalls } from "./recent.ts";
import { buildSupportBundle, redactUrl, supportBundleName } from "./support-bundle.ts";

/** What `run` gives the admin UI; every member is something it already has. */
export interface AdminUiDeps {
  /** The same readiness function `createOpsApp` gets (control-plane status and backend health). */
  readiness(): Readiness | Promise<Readiness>;
  /** The Prometheus text `/metrics` serves, for the support bundle. */
  metrics(): string | Promise<string>;
  /** The loaded configuration (shown and bundled with credentials redacted). */
  config: AgentConfig;
  /** `LoadedConfig.warnings`. */
  warnings?: readonly string[];
  /** `LoadedConfig.secrets` (or a function returning the current list). */
  secrets: () => Iterable<string>;
  /** Recent calls, fed by the dispatcher's `commandFinished` events. */
  calls: Pick<RecentCalls, "list">;
  /** Recent log records, fed as a sink of the agent's logger. */
  logs: Pick<LogTail, "since">;
  /** The agent's root logger: the UI reads and switches its level. */
  logger: Pick<Logger, "level" | "setLevel">;
  /** `X-Tunnel-Client-Instance-Id` of this process, for the overview. */
  instanceId?: string;
  /** Backend name → tool names it exposes, when known (e.g. from the routing table's catalog). */
  tools?: () => Readonly<Record<string, readonly string[]>>;
  /** The UI's own credential (`createUiCredential()`); nothing under /ui answers without it. */
  credential: UiCredential;
  /** Overrides how the connecting address is found (tests; unusual servers). */
  remoteAddress?: (c: Context) => string | undefined;
  now?: () => number;
  startedAt?: number;
}

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** The admin UI as a sub-app: `opsApp.route("/ui", createAdminUi(deps))`. */
export function createAdminUi(deps: AdminUiDeps): Hono {
  const now = deps.now ?? Date.now;
  const startedAt = deps.startedAt ?? now();
  const remoteAddress = deps.remoteAddress ?? connectingAddress;
  const ui = new Hono();
  const scrub = (text: string) => {
    const secrets = [...deps.secrets()];
    return scrubSecrets(text, [...secrets, ...secrets.map(escapeHtml)]);
  };

  const { allowRemote, allowedHosts } = deps.config.adminUi;
  ui.use("*", async (c, next) => {
    const refusal = accessRefusal(c, { allowRemote, allowedHosts, remoteAddress });
    if (refusal) {
      return c.text(
        `403 Forbidden: the Airlock admin UI refused this request; ${refusal}.\n\n` +
          "Open it on the agent's host as http://127.0.0.1:<port>/ui, or forward the port (ssh -L 8080:127.0.0.1:8080 host).\n" +
          "To serve it to other hosts on a trusted network, start the agent with --allow-remote-ui (admin_ui.allow_remote: true) " +
          "and name the host it is reached by in admin_ui.allowed_hosts (--admin-ui.allowed-host).\n",
        403,
        { "Cache-Control": "no-store" },
      );
    }
    await next();
    c.header("Cache-Control", "no-store");
    c.header("X-Frame-Options", "DENY");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Content-Type-Options", "nosniff");
  });
  ui.use("/api/*", csrf());
  mountSignIn(ui, deps.credential);
  ui.use(
    "*",
    requireUiCredential(deps.credential, (c) => `${uiBase(c)}/login`),
  );

  const page = async (c: Context) => {
    const nonce = crypto.randomUUID().replace(/-/g, "");
    const base = c.req.path.replace(/\/+$/, "");
    const html = await (
      <Page base={base} nonce={nonce} level={deps.logger.level}>
        <Live {...(await liveProps())} />
      </Page>
    ).toString();
    c.header(
      "Content-Security-Policy",
      `default-src 'self'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'`,
    );
    return c.html(scrub(`<!doctype html>${html}`));
  };
  ui.get("/", page);

  ui.get("/fragment", async (c) => c.html(scrub(await (<Live {...(await liveProps())} />).toString())));

  ui.get("/api/status", async (c) => {
    const props = await liveProps();
    return c.body(scrub(JSON.stringify({ ...props, logLevel: deps.logger.level }, null, 2)), 200, {
      "Content-Type": "application/json; charset=utf-8",
    });
  });

  ui.get("/api/logs", (c) => {
    const after = Number(c.req.query("after") ?? "0");
    const entries = deps.logs.since(Number.isFinite(after) ? after : 0);
    return c.body(scrub(JSON.stringify({ level: deps.logger.level, entries })), 200, {
      "Content-Type": "application/json; charset=utf-8",
    });
  });

  ui.post("/api/log-level", async (c) => {
    const body = (await c.req.json().catch(() => undefined)) as { level?: unknown } | undefined;
    const level = LEVELS.find((l) => l === body?.level);
    if (!level) return c.json({ error: `level must be one of ${LEVELS.join(", ")}` }, 400);
    deps.logger.setLevel(level);
    return c.json({ level });
  });

  ui.get("/support-bundle", async (c) => {
    const at = now();
    const text = buildSupportBundle({
      config: deps.config,
      ...(deps.warnings ? { warnings: deps.warnings } : {}),
      readiness: await deps.readiness(),
      calls: deps.calls.list(),
      logs: deps.logs.since(0, 100_000),
      metrics: await deps.metrics(),
      secrets: deps.secrets(),
      ...(deps.instanceId ? { instanceId: deps.instanceId } : {}),
      startedAt,
      now: at,
    });
    return c.body(text, 200, {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Disposition": `attachment; filename="${supportBundleName(at)}"`,
    });
  });

  async function liveProps(): Promise<LiveProps> {
    const readiness = await deps.readiness();
    const cp = deps.config.controlPlane;
    return {
      now: now(),
      startedAt,
      readiness,
      tunnelId: cp.tunnelId,
      controlPlaneUrl: redactUrl(`${cp.baseUrl}${cp.urlPath}`).replace(/\/$/, ""),
      configSource: deps.config.file
        ? `${deps.config.file.profileName ? `profile ${deps.config.file.profileName}, ` : ""}${deps.config.file.path}`
        : "flags and environment",
      instanceId: deps.instanceId ?? "",
      calls: deps.calls.list().slice(0, 50),
      tools: deps.tools?.() ?? {},
    };
  }

  return ui;
}

/** The UI's mount point, from a request to one of its pages (`/ui/login` → `/ui`). */
function uiBase(c: Context): string {
  return c.req.path.replace(/\/(login|fragment|support-bundle|api\/.*)?\/?$/, "");
}

/**
 * `/login`: `?code=` spends a one-time sign-in link; the form takes the printed token. Both
 * set the session cookie and send the browser to the UI. Wrong secrets get the form again.
 */
function mountSignIn(ui: Hono, credential: UiCredential): void {
  const form = (c: Context, status: 200 | 401, note: string) =>
    c.html(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Airlock admin: sign in</title></head><body>` +
        `<h1>Airlock admin</h1><p>${escapeHtml(note)}</p><form method="post" action="${escapeHtml(uiBase(c))}/login">` +
        `<label>Admin UI token <input name="token" type="password" autocomplete="off" required></label> <button>Sign in</button></form></body></html>`,
      status,
      { "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'" },
    );
  const enter = async (c: Context, secret: string | undefined) => {
    const session = secret ? await credential.signIn(secret) : undefined;
    if (!session)
      return form(
        c,
        401,
        "That sign-in link was already used or the token is wrong. Paste the admin UI token the agent printed at start.",
      );
    const base = uiBase(c);
    setSessionCookie(c, session, base);
    return c.redirect(base, 303);
  };
  ui.get("/login", (c) => {
    const code = c.req.query("code");
    return code === undefined ? form(c, 200, "Paste the admin UI token the agent printed at start.") : enter(c, code);
  });
  ui.post("/login", csrf(), async (c) => {
    const body = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    return enter(c, typeof body.token === "string" ? body.token : undefined);
  });
}

/**
 * Mount the UI on a started agent's operator app, from `startAgent`'s `extendOps` hook:
 *
 * ```ts
 * const logs = createLogTail(config.adminUi.logBufferEvents);
 * const calls = createRecentCalls();
 * const log = createLogger({ …, sink: (line, record) => { toStderr(line); logs.sink(line, record); } });
 * await startAgent(loaded, { log, events: calls.events, extendOps: (app, agent) => mountAdminUi(app, agent, { logger: log, calls, logs }) });
 * ```
 */
export function mountAdminUi(
  app: Hono,
  agent: Pick<AgentHandle, "readiness" | "loaded" | "instanceId">,
  parts: Pick<AdminUiDeps, "logger" | "calls" | "logs" | "tools" | "credential">,
): void {
  app.route(
    "/ui",
    createAdminUi({
      readiness: () => agent.readiness(),
      config: agent.loaded.config,
      warnings: agent.loaded.warnings,
      secrets: () => agent.loaded.secrets,
      metrics: async () => (await app.request("/metrics")).text(),
      instanceId: agent.instanceId,
      ...parts,
    }),
  );
}

interface LiveProps {
  now: number;
  startedAt: number;
  readiness: Readiness;
  tunnelId: string;
  controlPlaneUrl: string;
  configSource: string;
  instanceId: string;
  calls: CallRecord[];
  tools: Readonly<Record<string, readonly string[]>>;
}

/** A stdio backend's processes in words: shared, or sessions + pool. */
function stdioChildren(stdio: StdioChildren): string {
  if (stdio.shared) return `${stdio.children} (shared)`;
  return `${stdio.children} (${stdio.sessions} session${stdio.sessions === 1 ? "" : "s"})`;
}

function ago(now: number, then: number | undefined): string {
  if (then === undefined) return "never";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  return seconds < 120
    ? `${seconds}s ago`
    : seconds < 7200
      ? `${Math.round(seconds / 60)}m ago`
      : `${Math.round(seconds / 3600)}h ago`;
}

function controlPlaneState(readiness: Readiness, now: number): { label: string; tone: "ok" | "warn" | "bad" } {
  const cp = readiness.controlPlane;
  if (cp.unauthorized) return { label: "key refused (401/403)", tone: "bad" };
  if (cp.lastPollOkAt === undefined)
    return { label: cp.lastError ? "cannot connect" : "connecting", tone: cp.lastError ? "bad" : "warn" };
  if ((cp.consecutiveFailures ?? 0) > 0) return { label: "retrying", tone: "warn" };
  return now - cp.lastPollOkAt < 120_000 ? { label: "connected", tone: "ok" } : { label: "stale", tone: "warn" };
}

const STATE_TONE: Record<BackendHealth["state"], "ok" | "warn" | "bad"> = {
  up: "ok",
  starting: "warn",
  restarting: "warn",
  failed: "bad",
  stopped: "bad",
};

function Live(props: LiveProps) {
  const { readiness, now } = props;
  const cp = readiness.controlPlane;
  const state = controlPlaneState(readiness, now);
  const rows = flatten(readiness.backends);
  return (
    <div>
      <section class="card">
        <h2>
          Overview{" "}
          <span class={`badge ${readiness.ready ? "ok" : "bad"}`} id="ready" data-ready={String(readiness.ready)}>
            {readiness.ready ? "ready" : "not ready"}
          </span>
        </h2>
        {readiness.reasons.length > 0 && (
          <ul class="reasons">
            {readiness.reasons.map((r) => (
              <li>{r}</li>
            ))}
          </ul>
        )}
        <dl>
          <dt>Airlock</dt>
          <dd>
            {VERSION} on {RUNTIME.name} {RUNTIME.version}, up {ago(now, props.startedAt).replace(" ago", "")}
          </dd>
          <dt>Tunnel</dt>
          <dd>
            <code>{props.tunnelId}</code>
          </dd>
          <dt>Control plane</dt>
          <dd>
            <code>{props.controlPlaneUrl}</code>{" "}
            <span class={`badge ${state.tone}`} id="cp-state">
              {state.label}
            </span>
          </dd>
          <dt>Last successful poll</dt>
          <dd id="last-poll">{ago(now, cp.lastPollOkAt)}</dd>
          {cp.lastError && (
            <>
              <dt>Last error</dt>
              <dd class="error">
                {cp.lastError}
                {cp.consecutiveFailures ? ` (${cp.consecutiveFailures} in a row)` : ""}
              </dd>
            </>
          )}
          <dt>Configuration</dt>
          <dd>{props.configSource}</dd>
          {props.instanceId && (
            <>
              <dt>Instance</dt>
              <dd>
                <code>{props.instanceId}</code>
              </dd>
            </>
          )}
        </dl>
      </section>
      <section class="card">
        <h2>Backends</h2>
        <table id="backends">
          <thead>
            <tr>
              <th>Backend</th>
              <th>Transport</th>
              <th>State</th>
              <th>Restarts</th>
              <th>Children</th>
              <th>In flight</th>
              <th>Last error</th>
              <th>Tools</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 && (
              <tr>
                <td colspan={8}>none configured</td>
              </tr>
            )}
            {rows.map(({ health, label, depth }) => {
              const tools = props.tools[health.name];
              return (
                <tr data-backend={label} data-state={health.state}>
                  <td style={`padding-left:${0.5 + depth * 1.2}em`}>{health.name}</td>
                  <td>
                    {health.transport}
                    {health.era && (
                      <>
                        {" "}
                        · <span data-era={health.era}>{health.era === "modern" ? "MCP 2026-07-28" : "MCP 2025"}</span>
                      </>
                    )}
                  </td>
                  <td>
                    <span class={`badge ${STATE_TONE[health.state]}`}>{health.state}</span>
                  </td>
                  <td>{health.restarts}</td>
                  <td data-children={health.stdio?.children}>{health.stdio ? stdioChildren(health.stdio) : "—"}</td>
                  <td>{health.inflight}</td>
                  <td class="error">
                    {health.reason ?? health.lastError ?? ""}
                    {health.stderrTail && health.stderrTail.length > 0 && (
                      <details>
                        <summary>stderr</summary>
                        <pre>{health.stderrTail.join("\n")}</pre>
                      </details>
                    )}
                  </td>
                  <td>{tools ? (tools.length ? tools.join(", ") : "none") : "—"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
      <section class="card">
        <h2>
          Recent calls <small>names and timings only; payloads are never kept</small>
        </h2>
        <table id="calls">
          <thead>
            <tr>
              <th>Time</th>
              <th>Channel</th>
              <th>Method</th>
              <th>Tool / resource</th>
              <th>Backend</th>
              <th>Outcome</th>
              <th>Status</th>
              <th>Latency</th>
              <th>Trace</th>
            </tr>
          </thead>
          <tbody>
            {props.calls.length === 0 && (
              <tr>
                <td colspan={9}>no calls yet</td>
              </tr>
            )}
            {props.calls.map((call) => (
              <tr data-outcome={call.outcome}>
                <td>{new Date(call.at).toISOString().slice(11, 19)}</td>
                <td>{call.channel}</td>
                <td>{call.method ?? ""}</td>
                <td>{call.target ?? ""}</td>
                <td>{call.backend ?? ""}</td>
                <td>
                  <span class={`badge ${call.outcome === "ok" ? "ok" : call.outcome === "ignored" ? "warn" : "bad"}`}>
                    {call.outcome}
                  </span>
                </td>
                <td>{call.respCode ?? ""}</td>
                <td>
                  {call.durationMs < 1000
                    ? `${Math.round(call.durationMs)} ms`
                    : `${(call.durationMs / 1000).toFixed(1)} s`}
                </td>
                <td class="trace">{call.traceId ? <code>{call.traceId}</code> : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}

function flatten(
  list: readonly BackendHealth[],
  prefix = "",
  depth = 0,
): Array<{ health: BackendHealth; label: string; depth: number }> {
  return list.flatMap((health) => [
    { health, label: `${prefix}${health.name}`, depth },
    ...flatten(health.members ?? [], `${prefix}${health.name}/`, depth + 1),
  ]);
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8em 1.5em;display:flex;align-items:center;gap:1em}
header h1{font-size:1.2em;margin:0}header a{color:#9cc3ff;margin-left:auto}
main{padding:1em 1.5em;display:grid;gap:1em}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.8em 1em}
h2{font-size:1.05em;margin:.2em 0 .6em}h2 small{font-weight:normal;color:#667}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1em;margin:0}dt{color:#667}dd{margin:0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #eceff3;vertical-align:top}
th{color:#667;font-weight:600}
.badge{display:inline-block;padding:0 .5em;border-radius:1em;font-size:.85em;font-weight:600}
.ok{background:#dcf5e3;color:#136c2e}.warn{background:#fff1cc;color:#7a5600}.bad{background:#fde0e0;color:#a11}
.error{color:#a11;max-width:32em;word-break:break-word}.reasons{color:#a11;margin:.2em 0 .6em}
pre{margin:.3em 0;white-space:pre-wrap}
#log{background:#10141c;color:#d8dee9;font:12px/1.4 ui-monospace,monospace;height:16em;overflow:auto;padding:.5em;border-radius:4px}
#log .warn{background:none;color:#ffd479}#log .error{color:#ff8080}#log .debug{color:#8b95a7}
`;

function Page(props: { base: string; nonce: string; level: LogLevel; children?: unknown }) {
  const script = `
const base=${JSON.stringify(props.base)};
const live=document.getElementById("live"),log=document.getElementById("log"),level=document.getElementById("level"),conn=document.getElementById("conn");
let after=0;
async function refresh(){try{const r=await fetch(base+"/fragment",{cache:"no-store"});if(!r.ok)throw new Error(r.status);live.innerHTML=await r.text();conn.textContent="live";conn.className="badge ok";}catch(e){conn.textContent="agent unreachable";conn.className="badge bad";}}
async function tail(){try{const r=await fetch(base+"/api/logs?after="+after,{cache:"no-store"});const j=await r.json();const stick=log.scrollTop+log.clientHeight>=log.scrollHeight-4;for(const e of j.entries){const line=document.createElement("div");line.className=e.level;const extra=Object.entries(e.fields).map(([k,v])=>k+"="+(typeof v==="string"?v:JSON.stringify(v))).join(" ");line.textContent=e.time.slice(11,23)+" "+e.level.toUpperCase().padEnd(5)+" "+e.msg+(extra?" "+extra:"");log.appendChild(line);after=e.seq;}while(log.childNodes.length>1000)log.removeChild(log.firstChild);if(stick)log.scrollTop=log.scrollHeight;if(document.activeElement!==level)level.value=j.level;}catch(e){}}
level.addEventListener("change",async()=>{await fetch(base+"/api/log-level",{method:"POST",headers:{"Content-Type":"application/json"},body:JSON.stringify({level:level.value})});});
setInterval(refresh,1000);setInterval(tail,1000);tail();
`;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Airlock admin</title>
        <style dangerouslySetInnerHTML={{ __html: STYLE }} />
      </head>
      <body>
        <header>
          <h1>Airlock</h1>
          <span id="conn" class="badge ok">
            live
          </span>
          <a href={`${props.base}/support-bundle`} id="bundle">
            Download support bundle (secrets redacted)
          </a>
        </header>
        <main>
          <div id="live">{props.children}</div>
          <section class="card">
            <h2>
              Log{" "}
              <label>
                level{" "}
                <select id="level">
                  {LEVELS.map((l) => (
                    <option value={l} selected={l === props.level}>
                      {l}
                    </option>
                  ))}
                </select>
              </label>
            </h2>
            <div id="log" aria-live="polite"></div>
          </section>
        </main>
        <script nonce={props.nonce} dangerouslySetInnerHTML={{ __html: script }} />
      </body>
    </html>
  );
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}
