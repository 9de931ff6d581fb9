/**
 * One MCP script for the era matrix (test/e2e/eras-matrix.test.ts): connect (initialize or
 * server/discover), lists, a tool call, a tool call with progress, an elicitation, a resource
 * read, a prompt, a list-changed notification and a cancellation, run by a real SDK client —
 * SDK v1, or SDK v2 in `legacy`, `auto` or pinned-2026-07-28 mode — over Streamable HTTP (the
 * hub, or a server directly) or stdio (a server directly). It returns a transcript that is
 * the same for every era and path when the payloads are: only what the era itself adds to a
 * result (`resultType`, `ttlMs`, `cacheScope`, `_meta`; SDK v2 drops most of them itself) is
 * left out. Nothing else is: a wrong payload, a lost progress notification or a cancellation
 * that did not cancel still differs. (The SDKs hide JSON-RPC ids and session ids already.)
 */
import { Client as ModernClient } from "@modelcontextprotocol/client";
import { StreamableHTTPClientTransport as ModernHttp } from "@modelcontextprotocol/client";
import { StdioClientTransport as ModernStdio } from "@modelcontextprotocol/client/stdio";
import { Client as LegacyClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport as LegacyStdio } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport as LegacyHttp } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import type { NegotiationMode } from "./era-clients.ts";

/** The clients of the matrix. */
export const CLIENT_KINDS = ["sdk-v1", "v2-legacy", "v2-auto", "v2-2026"] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

const MODES: Record<Exclude<ClientKind, "sdk-v1">, NegotiationMode> = {
  "v2-legacy": "legacy",
  "v2-auto": "auto",
  "v2-2026": { pin: "2026-07-28" },
};

/** The steps after connecting, in the order they run. */
export const STEPS = [
  "lists",
  "call",
  "progress",
  "elicitation",
  "resource",
  "prompt",
  "listChanged",
  "cancellation",
  "cancelSeen",
] as const;
export type Step = (typeof STEPS)[number];

type Args = Record<string, unknown>;

/** What the script calls on one server: its own tools, resource and prompt. */
export interface ServerProfile {
  /** Tools whose full `tools/list` entries the transcript keeps (the others vary with client capabilities). */
  tools: string[];
  call: { name: string; arguments: Args };
  /** A tool that sends progress notifications when asked for them. */
  progress: { name: string; arguments: Args };
  /** A tool that sends a progress notification and then runs until cancelled. */
  slow: { name: string; arguments: Args };
  /** A tool that elicits, and the content the client accepts with. */
  elicit: { name: string; answer: Args };
  resource: string;
  prompt: { name: string; arguments: Record<string, string> };
  /**
   * When the server has them: a `slow` tool taking `{tag}`, and a tool answering `"true"` once the server
   * saw the `slow` call with `{tag}` cancelled (waiting for it, bounded).
   */
  cancelled?: string;
  /** A tool that makes the server announce a tools list change. */
  announce?: string;
}

/** server-everything (2025): its echo, long-running operation (progress), elicitation, dynamic resource and prompt. */
export const EVERYTHING_PROFILE: ServerProfile = {
  tools: ["echo", "get-sum", "trigger-long-running-operation"],
  call: { name: "echo", arguments: { message: "matrix ✓ ünïcode" } },
  progress: { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
  // Cancelled at its first progress (after 0.1 s); a server that ignored the cancel would still end within 20 s.
  slow: { name: "trigger-long-running-operation", arguments: { duration: 20, steps: 200 } },
  elicit: { name: "trigger-elicitation-request", answer: { name: "Ada" } },
  // A static document: the dynamic ones carry the time they were made.
  resource: "demo://resource/static/document/features.md",
  prompt: { name: "args-prompt", arguments: { city: "Lisbon", state: "Lisboa" } },
};

/** The SDK v2 fixture (test/fixtures/modern-server.ts), 2026-only or dual-era. */
export const FIXTURE_PROFILE: ServerProfile = {
  tools: ["add", "cancelled", "confirm", "echo", "progress", "wait"],
  call: { name: "echo", arguments: { message: "matrix ✓ ünïcode" } },
  progress: { name: "progress", arguments: { steps: 3 } },
  slow: { name: "wait", arguments: {} },
  elicit: { name: "confirm", answer: { confirm: true } },
  resource: "note://hello",
  prompt: { name: "greet", arguments: { name: "Ada" } },
  cancelled: "cancelled",
  announce: "announce",
};

/** Where the client connects: an MCP URL (with a bearer token, or none) or a stdio server it spawns. */
export type Target = { url: URL; token: string | null } | { argv: string[] };

export interface ScriptRun {
  /** The era the client ended up in. */
  era: "legacy" | "modern";
  /** Comparable across eras and paths. */
  transcript: Record<string, unknown>;
}

/** The calls both SDKs share, so one script drives either. */
interface ScriptClient {
  era: "legacy" | "modern";
  server: unknown;
  listTools(): Promise<Args>;
  listPrompts(): Promise<Args>;
  listResources(): Promise<Args>;
  callTool(
    params: { name: string; arguments: Args },
    options?: { onprogress?: (progress: Args) => void; signal?: AbortSignal },
  ): Promise<Args>;
  readResource(uri: string): Promise<Args>;
  getPrompt(params: { name: string; arguments: Record<string, string> }): Promise<Args>;
  /** Start hearing tools list changes. */
  listen(): Promise<{ changed: Promise<void>; close(): Promise<void> }>;
  close(): Promise<void>;
}

/** Run `steps` with a `kind` client against `target`; the client is closed afterwards. */
export async function runScript(
  kind: ClientKind,
  target: Target,
  profile: ServerProfile,
  steps: readonly Step[],
): Promise<ScriptRun> {
  // Elicitation is declared only by clients that run the step: a server may offer other tools to such clients.
  const answer = steps.includes("elicitation") ? profile.elicit.answer : undefined;
  const client = await connect(kind, target, answer);
  try {
    const transcript: Record<string, unknown> = { server: client.server };
    for (const step of STEPS) if (steps.includes(step)) transcript[step] = await runStep(step, client, profile);
    return { era: client.era, transcript };
  } finally {
    await client.close().catch(() => {});
  }
}

async function runStep(step: Step, client: ScriptClient, profile: ServerProfile): Promise<unknown> {
  switch (step) {
    case "lists": {
      const tools = (comparable(await client.listTools()).tools as Args[])
        .filter((tool) => profile.tools.includes(tool.name as string))
        // `execution.taskSupport` (2025-11-25 tasks) is a field the 2026-07-28 era deleted: SDK v2 drops it there.
        .map(({ execution, ...tool }) => tool)
        .sort((a, b) => String(a.name).localeCompare(String(b.name)));
      assertNamed(tools, profile.tools);
      return {
        tools,
        prompts: comparable(await client.listPrompts()),
        resources: comparable(await client.listResources()),
      };
    }
    case "call":
      return comparable(await client.callTool(profile.call));
    case "progress": {
      const seen: Args[] = [];
      const result = await client.callTool(profile.progress, { onprogress: (progress) => seen.push(progress) });
      return { progress: progressPrefix(seen), result: comparable(result) };
    }
    case "elicitation": {
      const result = await client.callTool({ name: profile.elicit.name, arguments: {} });
      // An error here would compare equal to the same error elsewhere: the step must show the answer arrived.
      if (result.isError) throw new Error(`the elicitation failed: ${JSON.stringify(result.content)}`);
      return comparable(result);
    }
    case "resource":
      return comparable(await client.readResource(profile.resource));
    case "prompt":
      return comparable(await client.getPrompt(profile.prompt));
    case "listChanged":
      return listChanged(client, profile);
    case "cancellation":
      return cancellation(client, profile);
    case "cancelSeen":
      return cancelSeen(client, profile);
  }
}

/**
 * The progress notifications as a comparable value: the first one, and whether all that came
 * are steps 1, 2, … in order. Both SDKs hand a progress notification to its callback a tick
 * after reading it but settle the call at once, so a notification read in the same chunk as
 * the result is dropped by the client itself; which of the last ones survive depends on
 * timing, never on the path, so only the first (sent well before the result) is compared whole.
 */
function progressPrefix(seen: Args[]): unknown {
  return { first: seen[0], ordered: seen.every((step, i) => step.progress === i + 1 && step.total === seen[0]?.total) };
}

/** The `tools/list` entries must name every tool the profile keeps, or the comparison would be vacuous. */
function assertNamed(tools: Args[], names: string[]): void {
  const found = tools.map((tool) => tool.name);
  const missing = names.filter((name) => !found.includes(name));
  if (missing.length > 0) throw new Error(`tools/list lacks ${missing.join(", ")} (it has ${found.join(", ")})`);
}

/**
 * Listen for tools list changes (a modern client opens `subscriptions/listen`; a 2025 one has its
 * GET stream, or stdio), make the server announce one, and wait for the notification. A 2025
 * client cannot tell when its GET stream is open, so the announcement is repeated until heard.
 */
async function listChanged(client: ScriptClient, profile: ServerProfile): Promise<unknown> {
  if (!profile.announce) throw new Error("the listChanged step needs a server profile with an announce tool");
  const subscription = await client.listen();
  try {
    for (let attempt = 1; ; attempt++) {
      await client.callTool({ name: profile.announce, arguments: {} });
      const heard = await Promise.race([
        subscription.changed.then(() => true),
        new Promise<false>((resolve) => setTimeout(resolve, 3000, false)),
      ]);
      if (heard) return { notified: "notifications/tools/list_changed" };
      if (attempt === 5) throw new Error("no notifications/tools/list_changed after 5 announcements");
    }
  } finally {
    await subscription.close();
  }
}

/** Resolves at the first `notifications/tools/list_changed`, registered through `register`. */
function heard(register: (handler: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => register(resolve));
}

/**
 * Start the slow tool, cancel it once its first progress notification arrives (no sleep: the
 * server has demonstrably started it), and check the call fails and the connection still serves.
 */
async function cancellation(client: ScriptClient, profile: ServerProfile): Promise<Args> {
  const abort = new AbortController();
  const started = client.callTool(profile.slow, {
    onprogress: () => abort.abort("the matrix cancels"),
    signal: abort.signal,
  });
  const outcome = await started.then(
    (result) => ({ completed: comparable(result) }),
    (error: unknown) => (abort.signal.aborted ? "cancelled" : { failed: String(error) }),
  );
  return { outcome, afterwards: comparable(await client.callTool(profile.call)) };
}

/** Cancel the slow tool as {@link cancellation} does, and ask the server whether it saw that call cancelled. */
async function cancelSeen(client: ScriptClient, profile: ServerProfile): Promise<unknown> {
  const seen = profile.cancelled;
  if (!seen) throw new Error("the cancelSeen step needs a server profile with a cancelled tool");
  // Random, so a late cancel of another run's call cannot answer for this one; not in the transcript.
  const tag = crypto.randomUUID();
  const { outcome } = (await cancellation(client, {
    ...profile,
    slow: { ...profile.slow, arguments: { tag } },
  })) as Args;
  const answer = await client.callTool({ name: seen, arguments: { tag } });
  return { outcome, serverSawIt: (answer.content as Array<{ text: string }>)[0]?.text === "true" };
}

/** A result without what its era adds. */
export function comparable(result: Args): Args {
  const { _meta, resultType, ttlMs, cacheScope, ...rest } = result;
  return rest;
}

async function connect(kind: ClientKind, target: Target, elicitAnswer: Args | undefined): Promise<ScriptClient> {
  const capabilities = elicitAnswer ? { elicitation: { form: {} } } : {};
  const info = { name: "airlock-matrix", version: "0.0.0" };
  const onElicit = async () => ({ action: "accept" as const, content: elicitAnswer! });
  if (kind === "sdk-v1") {
    const client = new LegacyClient(info, { capabilities });
    if (elicitAnswer) client.setRequestHandler(ElicitRequestSchema, onElicit as never);
    await client.connect(
      "url" in target
        ? new LegacyHttp(target.url, { requestInit: { headers: bearer(target.token) } })
        : new LegacyStdio({ command: target.argv[0]!, args: target.argv.slice(1), stderr: "ignore" }),
    );
    return legacyScriptClient(client);
  }
  const client = new ModernClient(info, { capabilities, versionNegotiation: { mode: MODES[kind] } });
  if (elicitAnswer) client.setRequestHandler("elicitation/create", onElicit as never);
  await client.connect(
    "url" in target
      ? new ModernHttp(target.url, { requestInit: { headers: bearer(target.token) } })
      : new ModernStdio({ command: target.argv[0]!, args: target.argv.slice(1), stderr: "ignore" }),
  );
  return modernScriptClient(client);
}

function bearer(token: string | null): Record<string, string> {
  return token === null ? {} : { Authorization: `Bearer ${token}` };
}

function serverOf(version: { name: string; version: string } | undefined, instructions: string | undefined) {
  return { name: version?.name, version: version?.version, instructions };
}

function legacyScriptClient(client: LegacyClient): ScriptClient {
  return {
    era: "legacy",
    server: serverOf(client.getServerVersion(), client.getInstructions()),
    listTools: () => client.listTools(),
    listPrompts: () => client.listPrompts(),
    listResources: () => client.listResources(),
    callTool: (params, options = {}) =>
      client.callTool(params, undefined, { ...options, onprogress: options.onprogress }) as Promise<Args>,
    readResource: (uri) => client.readResource({ uri }),
    getPrompt: (params) => client.getPrompt(params),
    // A 2025 client hears changes on its GET stream (or stdio), which the SDK opens after initializing.
    listen: async () => ({
      changed: heard((handler) => client.setNotificationHandler(ToolListChangedNotificationSchema, handler)),
      close: async () => {},
    }),
    close: () => client.close(),
  };
}

function modernScriptClient(client: ModernClient): ScriptClient {
  const era = client.getProtocolEra() === "modern" ? "modern" : "legacy";
  return {
    era,
    server: serverOf(client.getServerVersion(), client.getInstructions()),
    listTools: () => client.listTools(),
    listPrompts: () => client.listPrompts(),
    listResources: () => client.listResources(),
    callTool: (params, options = {}) => client.callTool(params, options) as Promise<Args>,
    readResource: (uri) => client.readResource({ uri }),
    getPrompt: (params) => client.getPrompt(params),
    async listen() {
      const changed = heard((handler) => client.setNotificationHandler("notifications/tools/list_changed", handler));
      if (era === "legacy") return { changed, close: async () => {} };
      const subscription = await client.listen({ toolsListChanged: true });
      return { changed, close: () => subscription.close() };
    },
    close: () => client.close(),
  };
}
