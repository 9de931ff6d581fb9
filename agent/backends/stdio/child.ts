/**
 * The life of a stdio MCP server's process: spawn, restart with backoff, crash-loop
 * detection, the stop sequence, and the last lines it wrote to stderr.
 *
 * A dead child is restarted with exponential backoff; `crashLoopCount` deaths within
 * `crashLoopWindowMs` (or a command that cannot be started at all) mark it `failed`, with
 * the exit status and the child's last stderr lines in the reason, and it is retried every
 * `failedRetryMs`. Callers wait for a usable child with {@link ChildSupervisor.usable}: up to
 * `readyWaitMs` while it starts or restarts, not at all while it is `failed`
 * (`connect`/`dial` when the command cannot be started, `transport_closed` when it keeps dying).
 */
import { spawn as nodeSpawn } from "node:child_process";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import type { FailureSpec } from "../../../shared/protocol/failure.ts";
import type { JsonRpcMessage } from "../../../shared/jsonrpc.ts";
import type { Logger } from "../../../shared/log.ts";
import { childEnvironment } from "../child-env.ts";
import { describeErrno } from "../failure-kind.ts";
import type { BackendState, ExchangeResult } from "../types.ts";
import { encodeLine, LineReader, parseLine } from "./framing.ts";

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

export interface ChildOptions {
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

/** What the owner of the child (the backend) does with it. */
export interface ChildHooks {
  /** A JSON-RPC message the child wrote on stdout. */
  message(run: ChildRun, message: JsonRpcMessage): void;
  /** Runs once a new child has spawned, before it counts as `up` (the handshake replay after a restart). */
  prepare(run: ChildRun): Promise<void>;
  /** The child is gone: whatever waits for it fails with this. */
  ended(failure: FailureSpec, detail: string): void;
}

/** One spawned process. */
export interface ChildRun {
  readonly process: ChildProcess;
  readonly stdout: LineReader;
  spawned: boolean;
  spawnError?: unknown;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  garbageLines: number;
  stderr: string;
  finished: boolean;
  stdinBroken?: boolean;
  closeTimer?: ReturnType<typeof setTimeout>;
  exited: Promise<void>;
  markExited(): void;
}

const STDERR_TAIL_LINES = 20;
/** How an exchange fails when the child is gone. */
export const CLOSED: FailureSpec = { source: "transport_closed", kind: "connection_closed" };

/** Spawns and supervises one child; nothing runs until {@link ensureStarted}. */
export class ChildSupervisor {
  readonly #options: ChildOptions;
  readonly #hooks: ChildHooks;
  readonly #log: Logger;
  readonly #policy: RestartPolicy;
  readonly #readyWaitMs: number;
  readonly #now: () => number;
  #state: BackendState = "starting";
  #reason: string | undefined;
  #lastError: string | undefined;
  /** How exchanges fail while `failed`. */
  #failFast: FailureSpec = CLOSED;
  #started = false;
  #closed = false;
  #restarts = 0;
  #current: ChildRun | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Times of recent deaths, for the crash-loop window. */
  #deaths: number[] = [];
  readonly #stderrTail: string[] = [];
  /** Exchanges waiting for the child to come up; woken on every state change. */
  readonly #waiters = new Set<() => void>();

  constructor(options: ChildOptions, hooks: ChildHooks) {
    this.#options = options;
    this.#hooks = hooks;
    this.#log = options.log;
    this.#policy = {
      initialDelayMs: 250,
      maxDelayMs: 30_000,
      crashLoopCount: 5,
      crashLoopWindowMs: 60_000,
      failedRetryMs: 60_000,
      ...options.restart,
    };
    this.#readyWaitMs = options.readyWaitMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  get state(): BackendState {
    return this.#state;
  }
  get reason(): string | undefined {
    return this.#reason;
  }
  get lastError(): string | undefined {
    return this.#lastError;
  }
  get restarts(): number {
    return this.#restarts;
  }
  get closed(): boolean {
    return this.#closed;
  }
  get started(): boolean {
    return this.#started;
  }
  get readyWaitMs(): number {
    return this.#readyWaitMs;
  }
  stderrTail(): string[] {
    return [...this.#stderrTail];
  }

  ensureStarted(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#spawn();
  }

  /** Wait until the child is up; a failure result says why it will not be. */
  async usable(signal: AbortSignal): Promise<ChildRun | ExchangeResult> {
    this.ensureStarted();
    const deadline = this.#now() + this.#readyWaitMs;
    for (;;) {
      if (this.#closed) return { kind: "failure", failure: CLOSED, detail: "backend closed" };
      if (this.#state === "up" && this.#current && !this.#current.finished) return this.#current;
      if (this.#state === "failed") return { kind: "failure", failure: this.#failFast, detail: this.#reason };
      if (signal.aborted)
        return {
          kind: "failure",
          failure: { source: "timeout", kind: "timeout" },
          detail: "deadline passed while the MCP server was starting",
        };
      const left = deadline - this.#now();
      if (left <= 0)
        return {
          kind: "failure",
          failure: { source: "connect", kind: "timeout" },
          detail: `MCP server not ready within ${this.#readyWaitMs} ms`,
        };
      await this.#stateChange(signal, left);
    }
  }

  /** Write one message to the child's stdin; false when it cannot take it. */
  write(run: ChildRun, message: JsonRpcMessage): boolean {
    const stdin = run.process.stdin;
    if (run.finished || !stdin || stdin.destroyed || !stdin.writable) return false;
    try {
      stdin.write(encodeLine(message));
      return true;
    } catch (error) {
      this.#log.debug("write to MCP server failed", { error: describeErrno(error) });
      return false;
    }
  }

  /** No more restarts from now on; {@link stop} then ends the running child. */
  markClosed(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The MCP stdio shutdown sequence for the running child: close stdin, then SIGTERM, then SIGKILL. */
  async stop(): Promise<void> {
    const run = this.#current;
    if (run && !run.finished) {
      const graceMs = this.#options.stopGraceMs ?? 1000;
      const child = run.process;
      const gone = () => run.exitCode !== null || run.exitSignal !== null || run.finished;
      const within = (ms: number) => Promise.race([run.exited, new Promise((resolve) => setTimeout(resolve, ms))]);
      try {
        child.stdin?.end();
      } catch {
        /* already closed */
      }
      await within(graceMs);
      if (!gone()) {
        child.kill("SIGTERM");
        await within(graceMs);
      }
      if (!gone()) {
        child.kill("SIGKILL");
        await within(graceMs);
      }
      this.#finish(run);
    }
    this.#setState("stopped", "backend closed");
  }

  #setState(next: BackendState, why?: string): void {
    this.#state = next;
    this.#reason = why;
    for (const waiter of [...this.#waiters]) waiter();
  }

  #stateChange(signal: AbortSignal, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(wait);
        signal.removeEventListener("abort", done);
        this.#waiters.delete(done);
        resolve();
      };
      const wait = setTimeout(done, timeoutMs);
      signal.addEventListener("abort", done, { once: true });
      this.#waiters.add(done);
    });
  }

  #retryIn(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#restarts++;
      this.#spawn();
    }, delayMs);
  }

  #spawn(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    const [program, ...args] = this.#options.command;
    if (!program) {
      this.#failFast = { source: "connect", kind: "dial" };
      this.#lastError = "no command configured";
      this.#setState(
        "failed",
        `backend ${this.#options.name} has an empty command; set the stdio command in the configuration`,
      );
      return;
    }
    let child: ChildProcess;
    try {
      child = (this.#options.spawn ?? nodeSpawn)(program, args, {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...(this.#options.inheritEnv ?? childEnvironment(process.env)), ...this.#options.env },
        cwd: this.#options.cwd,
        shell: false,
        windowsHide: true,
      });
    } catch (error) {
      this.#startFailed(error);
      return;
    }
    this.#current = this.#watch(child, program);
  }

  #watch(child: ChildProcess, program: string): ChildRun {
    let markExited = () => {};
    const exited = new Promise<void>((resolve) => {
      markExited = resolve;
    });
    const run: ChildRun = {
      process: child,
      stdout: new LineReader(this.#options.maxLineBytes ?? 64 * 1024 * 1024),
      spawned: false,
      exitCode: null,
      exitSignal: null,
      garbageLines: 0,
      stderr: "",
      finished: false,
      exited,
      markExited,
    };
    child.on("spawn", () => {
      run.spawned = true;
      this.#log.info("MCP server process started", { pid: child.pid, command: program });
      void this.#becomeReady(run);
    });
    child.on("error", (error) => {
      if (!run.spawned) run.spawnError = error;
      else this.#log.warn("MCP server process error", { error: describeErrno(error) });
    });
    // EPIPE: the child closed its stdin (or died). Without an 'error' listener this would
    // crash the agent; a child that cannot read requests is useless, so it is replaced.
    child.stdin?.on("error", (error) => {
      if (run.finished || this.#closed) return;
      this.#log.warn("stdin of the MCP server broke; restarting it", { error: describeErrno(error) });
      run.stdinBroken = true;
      child.kill("SIGKILL");
    });
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => this.#onStdout(run, chunk));
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => this.#onStderr(run, chunk));
    child.on("exit", (code, signal) => {
      run.exitCode = code;
      run.exitSignal = signal;
      run.markExited();
      // `close` follows once stdout is drained; a grandchild holding the pipe could delay it forever.
      run.closeTimer = setTimeout(() => this.#finish(run), 500);
    });
    child.on("close", () => {
      run.markExited();
      this.#finish(run);
    });
    return run;
  }

  #startFailed(error: unknown): void {
    const program = this.#options.command[0];
    const why = describeErrno(error);
    this.#lastError = `could not start ${program}: ${why}`;
    this.#failFast = { source: "connect", kind: "dial" };
    this.#log.error("MCP server command could not be started", { command: program, error: why });
    this.#setState("failed", `${this.#lastError}; retrying every ${Math.round(this.#policy.failedRetryMs / 1000)} s`);
    this.#retryIn(this.#policy.failedRetryMs);
  }

  async #becomeReady(run: ChildRun): Promise<void> {
    await this.#hooks.prepare(run);
    if (this.#current !== run || run.finished || this.#closed) return;
    this.#failFast = CLOSED;
    this.#setState("up");
  }

  #onStdout(run: ChildRun, chunk: string): void {
    const { lines, dropped } = run.stdout.push(chunk);
    for (const line of lines) this.#onLine(run, line);
    if (dropped !== undefined)
      this.#log.warn("MCP server wrote an over-long stdout line; discarding it", { bytes: dropped });
  }

  #onLine(run: ChildRun, line: string): void {
    const message = parseLine(line);
    if (message === undefined) return;
    if (message !== "garbage") {
      this.#hooks.message(run, message);
      return;
    }
    // Servers that print banners or debug output on stdout must not break the backend.
    run.garbageLines++;
    const fields = { line: line.replace(/\r$/, "").slice(0, 200) };
    if (run.garbageLines <= 5) this.#log.warn("MCP server wrote a non-JSON-RPC line to stdout; ignored", fields);
    else this.#log.debug("MCP server wrote a non-JSON-RPC line to stdout; ignored", fields);
  }

  #onStderr(run: ChildRun, chunk: string): void {
    run.stderr += chunk;
    const lines = run.stderr.split("\n");
    run.stderr = lines.pop() ?? "";
    for (const raw of lines) this.#recordStderr(raw);
  }

  #recordStderr(raw: string): void {
    const line = raw.replace(/\r$/, "").slice(0, 1000);
    if (line.trim() === "") return;
    this.#stderrTail.push(line);
    if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
    this.#log.info("MCP server stderr", { line });
  }

  /** The child is gone (exit, or stop): fail what waited for it, then restart, back off or give up. */
  #finish(run: ChildRun): void {
    if (run.finished) return;
    clearTimeout(run.closeTimer);
    const rest = run.stdout.flush();
    if (rest !== undefined) this.#onLine(run, rest);
    if (run.stderr.trim() !== "") this.#recordStderr(run.stderr);
    run.stderr = "";
    run.finished = true;
    if (this.#current === run) this.#current = undefined;
    const exit =
      run.exitCode !== null
        ? `exit code ${run.exitCode}`
        : run.exitSignal
          ? `signal ${run.exitSignal}`
          : "no exit status";
    const failure: FailureSpec = run.stdinBroken ? { source: "transport_closed", kind: "closed_pipe" } : CLOSED;
    this.#hooks.ended(
      failure,
      run.stdinBroken
        ? "stdin of the MCP server broke (EPIPE); process replaced"
        : `MCP server process ended (${exit})`,
    );
    if (this.#closed) {
      this.#setState("stopped", "backend closed");
      return;
    }
    if (run.spawnError !== undefined) {
      this.#startFailed(run.spawnError);
      return;
    }
    this.#died(exit);
  }

  /** A running child died: restart after a backoff, or mark a crash loop `failed`. */
  #died(exit: string): void {
    const policy = this.#policy;
    const at = this.#now();
    this.#deaths = [...this.#deaths.filter((t) => at - t < policy.crashLoopWindowMs), at];
    this.#lastError = `MCP server process exited (${exit})`;
    const tail = this.#stderrTail.slice(-5);
    this.#log.warn("MCP server process exited", { exit, stderrTail: tail });
    if (this.#deaths.length >= policy.crashLoopCount) {
      this.#failFast = CLOSED;
      const stderrText = tail.length ? `; last stderr: ${tail.join(" | ")}` : "; it wrote nothing to stderr";
      this.#setState(
        "failed",
        `${this.#options.command[0]} exited ${this.#deaths.length} times within ${Math.round(policy.crashLoopWindowMs / 1000)} s ` +
          `(last: ${exit})${stderrText}; fix the server or its configuration; retrying every ${Math.round(policy.failedRetryMs / 1000)} s`,
      );
      this.#log.error("MCP server is crash-looping", { reason: this.#reason });
      this.#retryIn(policy.failedRetryMs);
      return;
    }
    const delay = Math.min(policy.initialDelayMs * 2 ** (this.#deaths.length - 1), policy.maxDelayMs);
    this.#setState("restarting", `MCP server process exited (${exit}); restarting in ${delay} ms`);
    this.#retryIn(delay);
  }
}
