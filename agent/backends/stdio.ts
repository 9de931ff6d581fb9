/**
 * A stdio MCP server as a {@link Backend}: one supervised child process per backend,
 * newline-delimited JSON-RPC on its stdin/stdout, many exchanges in flight at once.
 *
 * Multiplexing. Several MCP clients share the child, and their JSON-RPC ids may collide,
 * so every request goes out under a fresh internal id (and a request's
 * `_meta.progressToken` under that same internal number); the answer and progress get
 * the client's originals back. Everything else in a message travels as it came.
 *
 * Routing of server-initiated messages (stdio carries no relation to a request):
 * - `notifications/progress` → the exchange whose progress token it names;
 * - any other notification or server→client request (sampling, elicitation, roots, ping)
 *   → the most recently started exchange still in flight;
 * - with nothing in flight, to the standalone streams open on this backend (`openStream`,
 *   the hub's `get-stream`): a notification to every one of them (the child is one server
 *   shared by all its clients), a request to the newest only (one client answers it).
 *   With no stream open either, a notification is dropped and a request is answered with
 *   a JSON-RPC error, so the server does not wait forever.
 *
 * A client's `notifications/cancelled` is forwarded under the internal id, and the
 * cancelled request ends as `cancelled`: nothing is posted for it, as with a server that
 * honours the cancellation.
 *
 * Supervision. A dead child fails every in-flight exchange (`transport_closed`) and is
 * restarted with exponential backoff; `crashLoopCount` deaths within `crashLoopWindowMs`
 * (or a command that cannot be started at all) mark the backend `failed`, with the exit
 * status and the child's last stderr lines in the reason, and it is retried every
 * `failedRetryMs`. After a restart the last `initialize` (and `notifications/initialized`)
 * is replayed so the new child serves the clients' existing sessions.
 *
 * Waiting. An exchange that arrives while the child is starting or restarting waits for
 * it (up to `readyWaitMs`, bounded by the exchange's signal); while the backend is
 * `failed` it fails at once: `connect`/`dial` when the command cannot be started,
 * `transport_closed` when the child keeps dying.
 */
import { spawn as nodeSpawn } from "node:child_process";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import type { HeaderMap } from "../../shared/protocol/commands.ts";
import type { FailureSpec } from "../../shared/protocol/failure.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import { isNotification, isObject, isRequest, isResponse } from "../../shared/jsonrpc.ts";
import type { JsonRpcId, JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import { childEnvironment } from "./child-env.ts";
import { describeErrno } from "./failure-kind.ts";
import type { Backend, BackendHealth, BackendState, ExchangeResult, McpExchange, McpStream, TerminationResult } from "./types.ts";

/** How a dead child is brought back. */
export interface RestartPolicy {
  /** First backoff delay; doubles per recent death. Default 250 ms. */
  initialDelayMs: number;
  /** Backoff ceiling. Default 30 000 ms. */
  maxDelayMs: number;
  /** Deaths within `crashLoopWindowMs` that make a crash loop. Default 5. */
  crashLoopCount: number;
  /** Default 60 000 ms. */
  crashLoopWindowMs: number;
  /** Retry interval once `failed`. Default 60 000 ms. */
  failedRetryMs: number;
}

/** `node:child_process.spawn`'s shape, injectable for tests. */
export type SpawnFn = (command: string, args: string[], options: SpawnOptions) => ChildProcess;

export interface StdioBackendOptions {
  name: string;
  /** argv, already split; run without a shell. */
  command: string[];
  /** Added to (and overriding) the inherited environment. */
  env?: Record<string, string>;
  /**
   * The environment the child inherits before `env` is applied. Default: the allowlisted
   * part of the agent's own (`childEnvironment`), never all of it.
   */
  inheritEnv?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  log: Logger;
  restart?: Partial<RestartPolicy>;
  /** How long an exchange waits for a (re)starting child. Default 10 000 ms. */
  readyWaitMs?: number;
  /** `close()`: time after closing stdin before SIGTERM, and again before SIGKILL. Default 1000 ms. */
  stopGraceMs?: number;
  /** Longest stdout line accepted. Default 64 MiB. */
  maxLineBytes?: number;
  now?: () => number;
  spawn?: SpawnFn;
}

const STDERR_TAIL_LINES = 20;
const RESPONSE_HEADERS: HeaderMap = { "Content-Type": ["application/json"] };
const CLOSED: FailureSpec = { source: "transport_closed", kind: "connection_closed" };

interface Pending {
  internalId: number;
  originalId: JsonRpcId;
  /** Present when the request carried `_meta.progressToken` (remapped to `internalId`). */
  progressToken?: { original: unknown };
  /** Undefined for the backend's own requests (the `initialize` replay). */
  exchange?: McpExchange;
  session?: string;
  settle(result: ExchangeResult): void;
}

interface ChildRun {
  process: ChildProcess;
  spawned: boolean;
  spawnError?: unknown;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  stdout: string;
  discarding: boolean;
  garbageLines: number;
  stderr: string;
  finished: boolean;
  stdinBroken?: boolean;
  closeTimer?: ReturnType<typeof setTimeout>;
  exited: Promise<void>;
  markExited(): void;
}

/** Build the stdio backend. Nothing is spawned until `start()` (or the first exchange). */
export function createStdioBackend(options: StdioBackendOptions): Backend {
  const name = options.name;
  const log = options.log.child({ backend: name });
  const [program, ...args] = options.command;
  const policy: RestartPolicy = {
    initialDelayMs: 250, maxDelayMs: 30_000, crashLoopCount: 5, crashLoopWindowMs: 60_000, failedRetryMs: 60_000,
    ...options.restart,
  };
  const readyWaitMs = options.readyWaitMs ?? 10_000;
  const graceMs = options.stopGraceMs ?? 1000;
  const maxLine = options.maxLineBytes ?? 64 * 1024 * 1024;
  const now = options.now ?? Date.now;
  const spawnFn: SpawnFn = options.spawn ?? nodeSpawn;

  let state: BackendState = "starting";
  let reason: string | undefined;
  let lastError: string | undefined;
  let failFast: FailureSpec = CLOSED;
  let started = false;
  let closed = false;
  let restarts = 0;
  let inflight = 0;
  let nextId = 0;
  let current: ChildRun | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let deaths: number[] = [];
  let lastInitialize: JsonRpcMessage | undefined;
  let sawInitialized = false;
  const stderrTail: string[] = [];
  const pending = new Map<number, Pending>();
  const waiters = new Set<() => void>();
  /** Open standalone streams, oldest first, each with what ends it. */
  const streams = new Map<McpStream, () => void>();

  const wake = () => { for (const waiter of [...waiters]) waiter(); };
  const setState = (next: BackendState, why?: string) => {
    state = next;
    reason = why;
    wake();
  };

  function spawnChild(): void {
    timer = undefined;
    if (closed) return;
    if (!program) {
      failFast = { source: "connect", kind: "dial" };
      lastError = "no command configured";
      setState("failed", `backend ${name} has an empty command; set the stdio command in the configuration`);
      return;
    }
    let child: ChildProcess;
    try {
      child = spawnFn(program, args, {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...(options.inheritEnv ?? childEnvironment(process.env)), ...options.env },
        cwd: options.cwd,
        shell: false,
        windowsHide: true,
      });
    } catch (error) {
      startFailed(error);
      return;
    }
    let markExited = () => {};
    const exited = new Promise<void>((resolve) => { markExited = resolve; });
    const run: ChildRun = {
      process: child, spawned: false, exitCode: null, exitSignal: null, stdout: "", discarding: false, garbageLines: 0,
      stderr: "", finished: false, exited, markExited,
    };
    current = run;
    child.on("spawn", () => {
      run.spawned = true;
      log.info("MCP server process started", { pid: child.pid, command: program });
      void becomeReady(run);
    });
    child.on("error", (error) => {
      if (!run.spawned) run.spawnError = error;
      else log.warn("MCP server process error", { error: describeErrno(error) });
    });
    // EPIPE: the child closed its stdin (or died). Without an 'error' listener this would
    // crash the agent; a child that cannot read requests is useless, so it is replaced.
    child.stdin?.on("error", (error) => {
      if (run.finished || closed) return;
      log.warn("stdin of the MCP server broke; restarting it", { error: describeErrno(error) });
      run.stdinBroken = true;
      child.kill("SIGKILL");
    });
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => onStdout(run, chunk));
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => onStderr(run, chunk));
    child.on("exit", (code, signal) => {
      run.exitCode = code;
      run.exitSignal = signal;
      run.markExited();
      // `close` follows once stdout is drained; a grandchild holding the pipe could delay it forever.
      run.closeTimer = setTimeout(() => finish(run), 500);
    });
    child.on("close", () => { run.markExited(); finish(run); });
  }

  function startFailed(error: unknown): void {
    const why = describeErrno(error);
    lastError = `could not start ${program}: ${why}`;
    failFast = { source: "connect", kind: "dial" };
    log.error("MCP server command could not be started", { command: program, error: why });
    setState("failed", `${lastError}; retrying every ${Math.round(policy.failedRetryMs / 1000)} s`);
    timer = setTimeout(() => { restarts++; spawnChild(); }, policy.failedRetryMs);
  }

  /** After a restart, replay the clients' handshake before letting exchanges through. */
  async function becomeReady(run: ChildRun): Promise<void> {
    if (restarts > 0 && lastInitialize) {
      const answer = await new Promise<ExchangeResult>((resolve) => {
        const internalId = ++nextId;
        const timeout = setTimeout(() => { pending.delete(internalId); resolve({ kind: "failure", failure: { source: "timeout" } }); }, readyWaitMs);
        pending.set(internalId, {
          internalId, originalId: internalId,
          settle: (result) => { clearTimeout(timeout); pending.delete(internalId); resolve(result); },
        });
        if (!write(run, { ...lastInitialize, id: internalId })) pending.get(internalId)?.settle({ kind: "failure", failure: CLOSED });
      });
      if (answer.kind !== "response" || "error" in answer.message) log.warn("replaying initialize to the restarted MCP server failed", { result: answer.kind });
      if (sawInitialized) write(run, { jsonrpc: "2.0", method: "notifications/initialized" });
    }
    if (current !== run || run.finished || closed) return;
    failFast = CLOSED;
    setState("up");
  }

  function onStdout(run: ChildRun, chunk: string): void {
    run.stdout += chunk;
    for (let index = run.stdout.indexOf("\n"); index !== -1; index = run.stdout.indexOf("\n")) {
      const line = run.stdout.slice(0, index);
      run.stdout = run.stdout.slice(index + 1);
      if (run.discarding) { run.discarding = false; continue; }
      onLine(run, line);
    }
    if (run.stdout.length > maxLine) {
      log.warn("MCP server wrote an over-long stdout line; discarding it", { bytes: run.stdout.length });
      run.stdout = "";
      run.discarding = true;
    }
  }

  function onStderr(run: ChildRun, chunk: string): void {
    run.stderr += chunk;
    const lines = run.stderr.split("\n");
    run.stderr = lines.pop() ?? "";
    for (const raw of lines) recordStderr(raw);
  }

  function recordStderr(raw: string): void {
    const line = raw.replace(/\r$/, "").slice(0, 1000);
    if (line.trim() === "") return;
    stderrTail.push(line);
    if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
    log.info("MCP server stderr", { line });
  }

  function onLine(run: ChildRun, raw: string): void {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      message = undefined;
    }
    if (!isObject(message)) {
      // Servers that print banners or debug output on stdout must not break the backend.
      run.garbageLines++;
      const fields = { line: line.slice(0, 200) };
      if (run.garbageLines <= 5) log.warn("MCP server wrote a non-JSON-RPC line to stdout; ignored", fields);
      else log.debug("MCP server wrote a non-JSON-RPC line to stdout; ignored", fields);
      return;
    }
    routeFromChild(run, message);
  }

  function routeFromChild(run: ChildRun, message: JsonRpcMessage): void {
    if (isResponse(message)) {
      const entry = typeof message.id === "number" ? pending.get(message.id) : undefined;
      if (!entry) {
        log.debug("MCP server answered a request that is no longer waiting", { id: message.id });
        return;
      }
      message.id = entry.originalId;
      entry.settle({ kind: "response", status: 200, headers: RESPONSE_HEADERS, message });
      return;
    }
    if (message.method === "notifications/progress" && isObject(message.params)) {
      const token = message.params.progressToken;
      const entry = typeof token === "number" ? pending.get(token) : undefined;
      if (entry?.progressToken && entry.exchange) {
        message.params.progressToken = entry.progressToken.original;
        deliver(entry.exchange, message);
        return;
      }
    }
    const target = latestExchange();
    if (target) {
      deliver(target, message);
      return;
    }
    const open = [...streams.keys()];
    if (isRequest(message)) {
      const newest = open.at(-1);
      if (newest) {
        deliver(newest, message);
        return;
      }
      // Nobody can answer; say so rather than leave the server waiting.
      write(run, { jsonrpc: "2.0", id: message.id, error: { code: -32603, message: "Airlock: no MCP client request or stream is open to carry this server request" } });
      log.warn("MCP server sent a request while no client request or stream was open; answered with an error", { method: message.method });
      return;
    }
    if (!isNotification(message)) return;
    for (const stream of open) deliver(stream, message);
    if (open.length === 0) log.debug("MCP server notification with no request in flight and no stream open; dropped", { method: message.method });
  }

  function latestExchange(): McpExchange | undefined {
    let latest: McpExchange | undefined;
    for (const entry of pending.values()) if (entry.exchange) latest = entry.exchange;
    return latest;
  }

  function deliver(target: Pick<McpExchange, "notify">, message: JsonRpcMessage): void {
    try {
      target.notify(message, {});
    } catch (error) {
      log.warn("notify handler failed", { error });
    }
  }

  function write(run: ChildRun, message: JsonRpcMessage): boolean {
    const stdin = run.process.stdin;
    if (run.finished || !stdin || stdin.destroyed || !stdin.writable) return false;
    try {
      stdin.write(`${JSON.stringify(message)}\n`);
      return true;
    } catch (error) {
      log.debug("write to MCP server failed", { error: describeErrno(error) });
      return false;
    }
  }

  function finish(run: ChildRun): void {
    if (run.finished) return;
    clearTimeout(run.closeTimer);
    if (run.stdout.trim() !== "" && !run.discarding) onLine(run, run.stdout);
    if (run.stderr.trim() !== "") recordStderr(run.stderr);
    run.stdout = "";
    run.stderr = "";
    run.finished = true;
    if (current === run) current = undefined;
    const exit = run.exitCode !== null ? `exit code ${run.exitCode}` : run.exitSignal ? `signal ${run.exitSignal}` : "no exit status";
    const failure: FailureSpec = run.stdinBroken ? { source: "transport_closed", kind: "closed_pipe" } : CLOSED;
    const detail = run.stdinBroken ? "stdin of the MCP server broke (EPIPE); process replaced" : `MCP server process ended (${exit})`;
    for (const entry of [...pending.values()]) entry.settle({ kind: "failure", failure, detail });
    if (closed) {
      setState("stopped", "backend closed");
      return;
    }
    if (run.spawnError !== undefined) {
      startFailed(run.spawnError);
      return;
    }
    const at = now();
    deaths = [...deaths.filter((t) => at - t < policy.crashLoopWindowMs), at];
    lastError = `MCP server process exited (${exit})`;
    const tail = stderrTail.slice(-5);
    log.warn("MCP server process exited", { exit, stderrTail: tail });
    if (deaths.length >= policy.crashLoopCount) {
      failFast = CLOSED;
      const stderrText = tail.length ? `; last stderr: ${tail.join(" | ")}` : "; it wrote nothing to stderr";
      setState("failed", `${program} exited ${deaths.length} times within ${Math.round(policy.crashLoopWindowMs / 1000)} s ` +
        `(last: ${exit})${stderrText}; fix the server or its configuration; retrying every ${Math.round(policy.failedRetryMs / 1000)} s`);
      log.error("MCP server is crash-looping", { reason });
      timer = setTimeout(() => { restarts++; spawnChild(); }, policy.failedRetryMs);
      return;
    }
    const delay = Math.min(policy.initialDelayMs * 2 ** (deaths.length - 1), policy.maxDelayMs);
    setState("restarting", `MCP server process exited (${exit}); restarting in ${delay} ms`);
    timer = setTimeout(() => { restarts++; spawnChild(); }, delay);
  }

  function ensureStarted(): void {
    if (started || closed) return;
    started = true;
    spawnChild();
  }

  /** Wait until the child is up; a failure result says why it will not be. */
  async function usableChild(signal: AbortSignal): Promise<ChildRun | ExchangeResult> {
    ensureStarted();
    const deadline = now() + readyWaitMs;
    for (;;) {
      if (closed) return { kind: "failure", failure: CLOSED, detail: "backend closed" };
      if (state === "up" && current && !current.finished) return current;
      if (state === "failed") return { kind: "failure", failure: failFast, detail: reason };
      if (signal.aborted) return { kind: "failure", failure: { source: "timeout", kind: "timeout" }, detail: "deadline passed while the MCP server was starting" };
      const left = deadline - now();
      if (left <= 0) return { kind: "failure", failure: { source: "connect", kind: "timeout" }, detail: `MCP server not ready within ${readyWaitMs} ms` };
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(wait);
          signal.removeEventListener("abort", done);
          waiters.delete(done);
          resolve();
        };
        const wait = setTimeout(done, left);
        signal.addEventListener("abort", done, { once: true });
        waiters.add(done);
      });
    }
  }

  async function request(exchange: McpExchange, message: JsonRpcMessage & { id: JsonRpcId }): Promise<ExchangeResult> {
    const run = await usableChild(exchange.signal);
    if (!("process" in run)) return run;
    const internalId = ++nextId;
    const outgoing: JsonRpcMessage = { ...message, id: internalId };
    let progressToken: Pending["progressToken"];
    const params = message.params;
    if (isObject(params) && isObject(params._meta) && "progressToken" in params._meta) {
      progressToken = { original: params._meta.progressToken };
      outgoing.params = { ...params, _meta: { ...params._meta, progressToken: internalId } };
    }
    if (message.method === "initialize") lastInitialize = { ...message };
    return new Promise<ExchangeResult>((resolve) => {
      const onAbort = () => {
        if (!pending.has(internalId)) return;
        // Tell the server to stop working on it; the result would be discarded anyway.
        write(run, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: internalId, reason: "deadline passed" } });
        entry.settle({ kind: "failure", failure: { source: "timeout", kind: "timeout" }, detail: "exchange aborted" });
      };
      const entry: Pending = {
        internalId, originalId: message.id, progressToken, exchange, session: headerValue(exchange.headers, "mcp-session-id"),
        settle: (result) => {
          pending.delete(internalId);
          exchange.signal.removeEventListener("abort", onAbort);
          resolve(result);
        },
      };
      pending.set(internalId, entry);
      exchange.signal.addEventListener("abort", onAbort, { once: true });
      if (exchange.signal.aborted) onAbort();
      else if (!write(run, outgoing)) entry.settle({ kind: "failure", failure: { source: "transport_closed", kind: "closed_pipe" }, detail: "stdin of the MCP server is closed" });
    });
  }

  /** Notifications and client responses: written to the child, acknowledged at once. */
  async function send(exchange: McpExchange, message: JsonRpcMessage): Promise<ExchangeResult> {
    const run = await usableChild(exchange.signal);
    if (!("process" in run)) return run;
    let outgoing = message;
    if (message.method === "notifications/cancelled" && isObject(message.params)) {
      const target = cancelTarget(message.params.requestId, headerValue(exchange.headers, "mcp-session-id"));
      // An unknown id may be another client's internal id: never forward it unmapped.
      if (!target) return { kind: "ack", status: 202, headers: {} };
      outgoing = { ...message, params: { ...message.params, requestId: target.internalId } };
      if (!write(run, outgoing)) return { kind: "failure", failure: { source: "transport_closed", kind: "closed_pipe" } };
      target.settle({ kind: "cancelled" });
      return { kind: "ack", status: 202, headers: {} };
    }
    if (message.method === "notifications/initialized") sawInitialized = true;
    if (!write(run, outgoing)) return { kind: "failure", failure: { source: "transport_closed", kind: "closed_pipe" }, detail: "stdin of the MCP server is closed" };
    return { kind: "ack", status: 202, headers: {} };
  }

  /** The in-flight request a client cancels: same original id, same session when known, newest first. */
  function cancelTarget(requestId: unknown, session: string | undefined): Pending | undefined {
    let match: Pending | undefined;
    for (const entry of pending.values()) {
      if (!entry.exchange || entry.originalId !== requestId) continue;
      if (session !== undefined && entry.session !== undefined && entry.session !== session) continue;
      match = entry;
    }
    return match;
  }

  async function stopChild(run: ChildRun): Promise<void> {
    const child = run.process;
    const gone = () => run.exitCode !== null || run.exitSignal !== null || run.finished;
    const within = (ms: number) => Promise.race([run.exited, new Promise((resolve) => setTimeout(resolve, ms))]);
    // The MCP stdio shutdown sequence: close stdin, then SIGTERM, then SIGKILL.
    try { child.stdin?.end(); } catch { /* already closed */ }
    await within(graceMs);
    if (!gone()) { child.kill("SIGTERM"); await within(graceMs); }
    if (!gone()) { child.kill("SIGKILL"); await within(graceMs); }
    finish(run);
  }

  return {
    name,
    transport: "stdio",
    procAffinity: true,

    async start() {
      ensureStarted();
    },

    async exchange(exchange) {
      const message = exchange.message;
      if (isRequest(message)) {
        inflight++;
        try {
          return await request(exchange, message);
        } finally {
          inflight--;
        }
      }
      if (isNotification(message) || isResponse(message)) return send(exchange, message);
      return { kind: "failure", failure: { source: "client_internal" }, detail: "the command's message is not a JSON-RPC request, notification or response" };
    },

    /** A stream of what the child sends with no request in flight; it ends when the client goes or the backend closes. */
    async openStream(stream) {
      if (closed) return { kind: "failure", failure: CLOSED, detail: "backend closed" };
      ensureStarted();
      stream.opened({ "Content-Type": ["text/event-stream"] });
      await new Promise<void>((resolve) => {
        const end = () => {
          stream.signal.removeEventListener("abort", end);
          streams.delete(stream);
          resolve();
        };
        if (stream.signal.aborted) return end();
        streams.set(stream, end);
        stream.signal.addEventListener("abort", end, { once: true });
      });
      return { kind: "ended" };
    },

    async terminateSession(): Promise<TerminationResult> {
      // stdio has no sessions; the child keeps serving everyone else.
      return { kind: "terminated", status: 405, headers: {} };
    },

    health(): BackendHealth {
      const health: BackendHealth = { name, transport: "stdio", state, restarts, inflight, stderrTail: [...stderrTail] };
      if (reason !== undefined) health.reason = reason;
      if (lastError !== undefined) health.lastError = lastError;
      return health;
    },

    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      const run = current;
      for (const entry of [...pending.values()]) entry.settle({ kind: "failure", failure: CLOSED, detail: "backend closed" });
      for (const end of [...streams.values()]) end();
      if (run && !run.finished) await stopChild(run);
      setState("stopped", "backend closed");
    },
  };
}
