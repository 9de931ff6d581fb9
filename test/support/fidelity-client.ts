/**
 * The fidelity script: one MCP SDK `Client` over `StreamableHTTPClientTransport` exercising
 * everything server-everything offers, recorded as a normalised {@link Transcript}. The
 * fidelity suite runs it directly against server-everything and through hub + agent; the
 * transcripts must be identical.
 *
 * The client declares sampling, elicitation (form and URL) and roots, and answers the
 * server's requests deterministically. What it records:
 * - every step's outcome (result or JSON-RPC error), with progress for progress steps;
 * - every distinct server→client request it answered and notification it received, as
 *   sorted sets over the whole session. Sets, not lists: a message may travel on another
 *   stream (a stdio server's line goes to a request in flight when there is one) and at
 *   another moment, and server-everything repeats some (its
 *   example event store replays every stream's events when the client resumes its
 *   standalone stream; the simulated log fires on a timer);
 * - for the cancelled call: that the client sent `notifications/cancelled` and that no late
 *   answer for that request id ever arrived.
 *
 * Normalised, because they legitimately differ between runs and transports (see
 * {@link normalise}): session ids, timestamps, random ids (UUIDs, task ids), the levels of
 * server-everything's randomly levelled simulated log messages, and the text of `get-env`
 * (each server process has its own environment). `notifications/*list_changed` are not
 * recorded: server-everything sends them while it registers tools during the handshake,
 * racing the client's standalone stream, so whether one arrives is timing on every path;
 * nor are `notifications/tasks/status`, which a task emits on its own clock.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  CreateTaskResultSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  McpError,
} from "@modelcontextprotocol/sdk/types.js";
import type { JSONRPCMessage, Notification, Progress } from "@modelcontextprotocol/sdk/types.js";

export interface FidelityOptions {
  /** The MCP endpoint: server-everything's `/mcp`, or the hub's `/v1/mcp/<tunnel>`. */
  url: URL;
  /** Bearer token (the hub's client token); none for the server directly. */
  token?: string;
  /** `full`: everything. `core`: the calls that matter per runtime (no logging, tasks or subscriptions), for the runtime matrix. */
  scope: "full" | "core";
}

export interface Step {
  step: string;
  outcome: unknown;
  progress?: unknown[];
}

export interface Transcript {
  server: { version: unknown; capabilities: unknown; instructions: unknown };
  steps: Step[];
  /** Distinct server→client requests the client answered, sorted. */
  serverRequests: unknown[];
  /** Distinct notifications received (progress, list_changed and task status aside), sorted. */
  notifications: unknown[];
}

const ROOTS = [{ uri: "file:///srv/fidelity", name: "fidelity root" }];
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const SESSION = /(session|SessionId) (?:undefined|airlock-[0-9a-f]{32}|<uuid>)/g;
const TIME = /\b\d{1,2}:\d{2}:\d{2}(?:\s?[AP]M)?/g;
const ISO = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
const LEVELS = /\b(Debug|Info|Notice|Warning|Error|Critical|Alert|Emergency)[- ]level message|Alert level-message/g;

/** Replace what legitimately differs between runs and transports; see the module comment. */
export function normalise(value: unknown): unknown {
  if (typeof value === "string") {
    return (
      value
        .replace(UUID, "<uuid>")
        .replace(SESSION, "$1 <session>")
        // stdio has no sessions: server-everything then omits the session part of a sentence.
        .replace(/ from session <session>/g, "")
        .replace(/ - SessionId <session>/g, "")
        .replace(ISO, "<timestamp>")
        .replace(TIME, "<time>")
        .replace(LEVELS, "<random level> message")
        .trimEnd()
    );
  }
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (key === "taskId") out[key] = "<task>";
      else if ((key === "createdAt" || key === "lastUpdatedAt") && typeof item === "string") out[key] = "<timestamp>";
      // Binary resources carry a timestamp inside the base64.
      else if (key === "blob" && typeof item === "string")
        out[key] = normalise(Buffer.from(item, "base64").toString("latin1"));
      else out[key] = normalise(item);
    }
    // server-everything picks a random level for each simulated log message.
    if (typeof out.data === "string" && out.data.includes("<random level> message") && "level" in out)
      out.level = "<random>";
    return out;
  }
  return value;
}

/** `get-env` answers with the server process's environment, which differs per process: keep only its shape. */
function environment(outcome: unknown): unknown {
  const content = (outcome as { content?: Array<{ type: string; text?: string }> }).content;
  const text = content?.[0]?.text;
  if (content?.length !== 1 || text === undefined) return normalise(outcome);
  const parsed: unknown = JSON.parse(text);
  const shape =
    parsed && typeof parsed === "object" && Object.values(parsed).every((v) => typeof v === "string")
      ? "<environment: a JSON object of strings>"
      : text;
  return { content: [{ type: "text", text: shape }] };
}

const distinct = (items: unknown[]) =>
  [...new Set(items.map((item) => JSON.stringify(item)))].sort().map((text) => JSON.parse(text) as unknown);

function errorOutcome(error: unknown): unknown {
  if (error instanceof McpError) return { error: { code: error.code, message: error.message, data: error.data } };
  return { thrown: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
}

/** A value satisfying one property of an elicitation schema: its default, else the first choice, else a fixed sample. */
function sampleValue(schema: Record<string, unknown>): unknown {
  if ("default" in schema) return schema.default;
  const first = (list: unknown) =>
    (Array.isArray(list) ? list[0] : undefined) as Record<string, unknown> | string | undefined;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  const choice = first(schema.oneOf) ?? first(schema.anyOf);
  if (choice && typeof choice === "object" && "const" in choice) return choice.const;
  switch (schema.type) {
    case "boolean":
      return true;
    case "integer":
    case "number":
      return typeof schema.minimum === "number" ? schema.minimum : 1;
    case "array": {
      const items = (schema.items ?? {}) as Record<string, unknown>;
      return [sampleValue(items)];
    }
    default:
      return schema.format === "email"
        ? "fidelity@example.com"
        : schema.format === "uri"
          ? "https://example.com/fidelity"
          : schema.format === "date"
            ? "2000-01-01"
            : "fidelity";
  }
}

interface Session {
  client: Client;
  transport: StreamableHTTPClientTransport;
  serverRequests: unknown[];
  notifications: unknown[];
  /** `onerror` reports, e.g. "Received a response for an unknown message ID: …". */
  clientErrors: string[];
  sent: JSONRPCMessage[];
}

async function open(options: FidelityOptions): Promise<Session> {
  const session: Session = {
    client: new Client(
      { name: "airlock-fidelity", version: "1.0.0" },
      {
        capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } },
      },
    ),
    transport: new StreamableHTTPClientTransport(options.url, {
      requestInit: { headers: options.token ? { Authorization: `Bearer ${options.token}` } : {} },
    }),
    serverRequests: [],
    notifications: [],
    clientErrors: [],
    sent: [],
  };
  const { client } = session;
  const answered = (method: string, params: unknown) => session.serverRequests.push(normalise({ method, params }));
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    answered(request.method, request.params);
    const prompt = request.params.messages.map((m) => (m.content as { text?: string }).text ?? "").join(" ");
    return {
      model: "fidelity-model",
      role: "assistant",
      stopReason: "endTurn",
      content: { type: "text", text: `sampled: ${prompt}` },
    };
  });
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    answered(request.method, request.params);
    if (request.params.mode === "url") return { action: "accept" };
    const properties = (request.params.requestedSchema.properties ?? {}) as Record<string, Record<string, unknown>>;
    return {
      action: "accept",
      content: Object.fromEntries(
        Object.entries(properties).map(([key, schema]) => [key, sampleValue(schema)]),
      ) as Record<string, string>,
    };
  });
  client.setRequestHandler(ListRootsRequestSchema, async (request) => {
    answered(request.method, request.params);
    return { roots: ROOTS };
  });
  client.fallbackNotificationHandler = async (notification: Notification) => {
    if (notification.method.endsWith("/list_changed") || notification.method === "notifications/tasks/status") return;
    session.notifications.push(normalise({ method: notification.method, params: notification.params }));
  };
  client.onerror = (error) => session.clientErrors.push(error.message);
  await client.connect(session.transport);
  // Watch what the client sends, to find the cancelled request's id and its notifications/cancelled.
  const send = session.transport.send.bind(session.transport);
  session.transport.send = (message, options) => {
    session.sent.push(...[message].flat());
    return send(message, options);
  };
  return session;
}

/** Wait until `ready()` holds, up to `timeoutMs` (then go on: the transcript shows what was missing). */
async function until(ready: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** Run the script against `options.url` and return its normalised transcript. */
export async function runFidelityScript(options: FidelityOptions): Promise<Transcript> {
  const session = await open(options);
  const { client } = session;
  const steps: Step[] = [];
  const full = options.scope === "full";
  const record = async (step: string, run: () => Promise<unknown>) => {
    let outcome: unknown;
    try {
      outcome = await run();
    } catch (error) {
      outcome = errorOutcome(error);
    }
    steps.push({ step, outcome: step.startsWith("tools/call get-env") ? environment(outcome) : normalise(outcome) });
  };
  const call =
    (name: string, args: Record<string, unknown> = {}) =>
    () =>
      client.callTool({ name, arguments: args });

  try {
    // A task-based tool: four 1 s stages, with a clarifying elicitation in the middle that
    // is delivered on the tasks/result request. Started first and collected at the end, so
    // its four seconds overlap the rest of the script.
    let taskResult: Promise<unknown> | undefined;
    if (full) {
      await record("tasks: simulate-research-query (created)", async () => {
        const created = await client.request(
          {
            method: "tools/call",
            params: {
              name: "simulate-research-query",
              arguments: { topic: "tunnels", ambiguous: true },
              task: { ttl: 60_000 },
            },
          },
          CreateTaskResultSchema,
        );
        taskResult = client.experimental.tasks.getTaskResult(created.task.taskId, CallToolResultSchema);
        // Settled by the step that awaits it; a rejection until then is not unhandled.
        taskResult.catch(() => {});
        return created;
      });
    }

    // Progress, first: 350 ms after the handshake server-everything asks the client for its
    // roots and then logs "Roots updated" (outside any request). Over stdio the agent can only
    // deliver those with a request in flight, so one second-long call covers that moment on
    // every path (the task's held tasks/result does too, in the full script).
    const progress: Progress[] = [];
    await record("tools/call trigger-long-running-operation (progress)", () =>
      client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 1, steps: 4 } }, undefined, {
        onprogress: (p) => progress.push(p),
      }),
    );
    steps.at(-1)!.progress = normalise(progress) as unknown[];

    await record("ping", () => client.ping());
    if (full) await record("logging/setLevel debug", () => client.setLoggingLevel("debug"));

    const { tools } = await client.listTools();
    steps.push({ step: "tools/list", outcome: normalise({ tools }) });

    // Every tool of the server, with valid arguments. A tool missing here fails the run, so a
    // new server-everything version cannot add a tool the suite silently skips.
    const toolCalls: Record<string, Array<[string, Record<string, unknown>]>> = {
      echo: [["echo", { message: "fidelity ✓ 🚀 ünïcode" }]],
      "get-annotated-message": [
        ["error", { messageType: "error" }],
        ["success + image", { messageType: "success", includeImage: true }],
        ["debug", { messageType: "debug" }],
      ],
      "get-env": [["", {}]], // its text is normalised: every server process has its own environment
      "get-resource-links": [["", { count: 4 }]],
      "get-resource-reference": [
        ["text", { resourceType: "Text", resourceId: 2 }],
        ["blob", { resourceType: "Blob", resourceId: 3 }],
      ],
      "get-structured-content": [["Chicago", { location: "Chicago" }]],
      "get-sum": [["", { a: 19, b: 23.5 }]],
      "get-tiny-image": [["", {}]],
      // No internet: compress inline data instead of the default URL.
      "gzip-file-as-resource": [
        [
          "resource link",
          { name: "fidelity.txt.gz", data: "data:text/plain;base64,aGVsbG8gZmlkZWxpdHk=", outputType: "resourceLink" },
        ],
        ["embedded resource", { name: "inline.txt.gz", data: "data:text/plain,inline%20data", outputType: "resource" }],
      ],
      "trigger-sampling-request": [["", { prompt: "say hi", maxTokens: 7 }]],
      "trigger-elicitation-request": [["form", {}]],
      "trigger-url-elicitation": [
        ["request path", { url: "https://example.com/consent", elicitationId: "fidelity-elicitation-1" }],
        [
          "error path (-32042)",
          { url: "https://example.com/authorize", elicitationId: "fidelity-elicitation-2", errorPath: true },
        ],
        [
          "error path retried",
          { url: "https://example.com/authorize", elicitationId: "fidelity-elicitation-2", errorPath: true },
        ],
      ],
    };
    // Covered by their own steps below.
    const special = new Set([
      "trigger-long-running-operation",
      "toggle-simulated-logging",
      "toggle-subscriber-updates",
      "get-roots-list",
      "simulate-research-query",
    ]);
    const core = new Set([
      "echo",
      "get-sum",
      "trigger-sampling-request",
      "trigger-elicitation-request",
      "get-structured-content",
    ]);
    for (const tool of [...tools].sort((a, b) => a.name.localeCompare(b.name))) {
      if (special.has(tool.name)) continue;
      const calls = toolCalls[tool.name];
      if (!calls)
        throw new Error(
          `the fidelity script has no arguments for server-everything's tool "${tool.name}"; add it to toolCalls`,
        );
      if (!full && !core.has(tool.name)) continue;
      for (const [label, args] of calls)
        await record(`tools/call ${tool.name}${label ? ` (${label})` : ""}`, call(tool.name, args));
    }

    await record("tools/call get-sum with bad arguments", call("get-sum", { a: "nineteen", b: 23 }));
    await record("tools/call of an unknown tool", call("no-such-tool"));
    await record(
      "tools/call simulate-research-query without a task (task support required)",
      call("simulate-research-query", { topic: "x" }),
    );

    // Answered from the roots server-everything asked the client for after the handshake.
    await record("tools/call get-roots-list", call("get-roots-list"));

    if (full) {
      await record("resources/list", () => client.listResources());
      const { resources } = await client.listResources();
      for (const resource of [resources[0]!, resources.at(-1)!])
        await record(`resources/read ${resource.uri}`, () => client.readResource({ uri: resource.uri }));
      await record("resources/templates/list", () => client.listResourceTemplates());
      await record("resources/read demo://resource/session/fidelity.txt.gz (made by gzip-file-as-resource)", () =>
        client.readResource({ uri: "demo://resource/session/fidelity.txt.gz" }),
      );
    }
    await record("resources/read demo://resource/dynamic/text/7", () =>
      client.readResource({ uri: "demo://resource/dynamic/text/7" }),
    );
    if (full) {
      await record("resources/read demo://resource/dynamic/blob/8", () =>
        client.readResource({ uri: "demo://resource/dynamic/blob/8" }),
      );
      await record("resources/read of an unknown resource", () =>
        client.readResource({ uri: "demo://resource/dynamic/text/0" }),
      );
    }

    if (full) {
      const subscribed = "demo://resource/dynamic/text/1";
      const received = (pattern: RegExp) => () => session.notifications.some((n) => pattern.test(JSON.stringify(n)));
      await record("resources/subscribe", () => client.subscribeResource({ uri: subscribed }));
      // Starts resource updates for this session: one at once, then every 5 s.
      await record("tools/call toggle-subscriber-updates (on)", call("toggle-subscriber-updates"));
      await until(() => received(/resources\/updated/)() && received(/Received Subscribe Resource/)());
      await record("tools/call toggle-subscriber-updates (off)", call("toggle-subscriber-updates"));
      await record("resources/unsubscribe", () => client.unsubscribeResource({ uri: subscribed }));
      await until(received(/Received Unsubscribe Resource/));

      // Simulated logging: one message at once, then every 5 s, at a random level.
      await record("tools/call toggle-simulated-logging (on)", call("toggle-simulated-logging"));
      await until(received(/<random level> message/));
      await record("tools/call toggle-simulated-logging (off)", call("toggle-simulated-logging"));
    }

    await record("prompts/list", () => client.listPrompts());
    const promptArgs: Record<string, Record<string, string>> = {
      "simple-prompt": {},
      "args-prompt": { city: "Lisbon", state: "Lisboa" },
      "completable-prompt": { department: "Engineering", name: "Bob" },
      "resource-prompt": { resourceType: "Text", resourceId: "4" },
    };
    const { prompts } = await client.listPrompts();
    for (const prompt of prompts) {
      const args = promptArgs[prompt.name];
      if (!args)
        throw new Error(
          `the fidelity script has no arguments for server-everything's prompt "${prompt.name}"; add it to promptArgs`,
        );
      if (full || prompt.name === "args-prompt")
        await record(`prompts/get ${prompt.name}`, () => client.getPrompt({ name: prompt.name, arguments: args }));
    }
    if (full) await record("prompts/get of an unknown prompt", () => client.getPrompt({ name: "no-such-prompt" }));

    await record("completion/complete prompt argument", () =>
      client.complete({
        ref: { type: "ref/prompt", name: "completable-prompt" },
        argument: { name: "department", value: "S" },
      }),
    );
    if (full) {
      await record("completion/complete with context", () =>
        client.complete({
          ref: { type: "ref/prompt", name: "completable-prompt" },
          argument: { name: "name", value: "" },
          context: { arguments: { department: "Marketing" } },
        }),
      );
      await record("completion/complete resource template", () =>
        client.complete({
          ref: { type: "ref/resource", uri: "demo://resource/dynamic/text/{resourceId}" },
          argument: { name: "resourceId", value: "12" },
        }),
      );
    }

    // Cancellation: abort a long operation after its first progress. The client sends
    // notifications/cancelled; the server must get it: then it never answers the request
    // (the SDK drops a cancelled request's result), and the next call on the session works.
    const controller = new AbortController();
    const cancelStarted = Date.now();
    let progressBeforeAbort = 0;
    await record("cancellation: trigger-long-running-operation aborted by the client", () =>
      client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 0.6, steps: 6 } }, undefined, {
        signal: controller.signal,
        onprogress: () => {
          progressBeforeAbort++;
          controller.abort("fidelity: enough");
        },
      }),
    );
    await record("cancellation: the next call works", call("echo", { message: "after the cancel" }));
    const cancelled = session.sent.find(
      (m) =>
        "method" in m &&
        m.method === "tools/call" &&
        (m.params as { arguments?: { duration?: number } }).arguments?.duration === 0.6,
    );
    const cancelledId = cancelled && "id" in cancelled ? cancelled.id : undefined;
    // An answer the server should not send would come when the operation ends (0.6 s after its start).
    await until(() => Date.now() - cancelStarted > 1000, 1500);
    const late = session.clientErrors.filter(
      (e) => e.includes("unknown message ID") && e.includes(`"id":${JSON.stringify(cancelledId)},`),
    );
    steps.push({
      step: "cancellation: what the client saw",
      outcome: {
        progressBeforeAbort,
        sentCancelled: session.sent.some(
          (m) =>
            "method" in m &&
            m.method === "notifications/cancelled" &&
            (m.params as { requestId?: unknown }).requestId === cancelledId,
        ),
        // The answer without its id (which depends on how many requests came before).
        lateAnswers: late.map((e) => {
          const { id: _id, ...answer } = JSON.parse(e.slice(e.indexOf("{"))) as Record<string, unknown>;
          return normalise(answer);
        }),
      },
    });

    if (taskResult) await record("tasks/result simulate-research-query", () => taskResult!);
    await record("ping (end)", () => client.ping());
  } finally {
    await client.close().catch(() => {});
  }

  return {
    server: normalise({
      version: client.getServerVersion(),
      capabilities: client.getServerCapabilities(),
      instructions: client.getInstructions(),
    }) as Transcript["server"],
    steps,
    serverRequests: distinct(session.serverRequests),
    notifications: distinct(session.notifications),
  };
}
