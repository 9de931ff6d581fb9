/**
 * The era matrix on the OpenAI path: no MCP client can reach the agent here, so the test plays
 * OpenAI's part — it enqueues commands on the fake control plane (strict contract checks) the
 * way OpenAI does and reads the posted responses. A real agent serves server-everything (2025)
 * and the 2026-only SDK v2 fixture, over stdio and over Streamable HTTP (the HTTP ones behind a
 * recording proxy, to see what the backend received). Modern commands carry the `_meta`
 * envelope in the body, with and without the `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name`
 * headers; legacy commands carry an `initialize` session. Every result is compared with what
 * the same server gives an SDK client directly (test/support/mcp-script.ts).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { headerValue } from "../../shared/protocol/headers.ts";
import { controlPlaneFlags, startAgentProcess, type AgentProcess } from "../support/agent-process.ts";
import {
  everythingStdioCommand,
  modernStdioCommand,
  startEverythingHttp,
  startModernHttp,
  type RunningServer,
} from "../support/everything.ts";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import {
  comparable,
  EVERYTHING_PROFILE,
  FIXTURE_PROFILE,
  runScript,
  type ServerProfile,
} from "../support/mcp-script.ts";
import { startRecordingProxy, type RecordingProxy } from "../support/recording-proxy.ts";

type Args = Record<string, unknown>;
type ServerName = "everything" | "modern";
type Leg = "stdio" | "http";
type Style = "modern with headers" | "modern, body only" | "legacy";

const PROFILES: Record<ServerName, ServerProfile> = { everything: EVERYTHING_PROFILE, modern: FIXTURE_PROFILE };
/** The agent needs a `main` channel (OpenAI's default); server-everything over stdio is it. */
const CHANNELS: Record<ServerName, Record<Leg, string>> = {
  everything: { stdio: "main", http: "everything-http" },
  modern: { stdio: "modern-stdio", http: "modern-http" },
};
const ENVELOPE = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {},
  "io.modelcontextprotocol/clientInfo": { name: "openai-like", version: "0.0.0" },
};

let cp: FakeControlPlane;
let agent: AgentProcess;
const servers = {} as Record<ServerName, RunningServer>;
const proxies = {} as Record<ServerName, RecordingProxy>;
/** What each server gives an SDK client of its own era directly. */
const expected = {} as Record<ServerName, Args>;
let ids = 0;

before(async () => {
  [cp, servers.everything, servers.modern] = await Promise.all([
    startFakeControlPlane(),
    startEverythingHttp(),
    startModernHttp(true),
  ]);
  [proxies.everything, proxies.modern] = await Promise.all([
    startRecordingProxy(servers.everything.url),
    startRecordingProxy(servers.modern.url),
  ]);
  agent = await startAgentProcess(
    "node",
    [
      ...controlPlaneFlags(cp, "env:MATRIX_KEY"),
      "--mcp.command",
      `channel=main,command=${everythingStdioCommand().join(" ")}`,
      "--mcp.command",
      `channel=modern-stdio,command=${modernStdioCommand(true).join(" ")}`,
      "--mcp.server-url",
      `channel=everything-http,url=${proxies.everything.url}`,
      "--mcp.server-url",
      `channel=modern-http,url=${proxies.modern.url}`,
    ],
    { MATRIX_KEY: cp.apiKey },
  );
  const steps = ["lists", "call", "resource", "prompt"] as const;
  const [everything, modern] = await Promise.all([
    runScript("sdk-v1", { url: new URL(servers.everything.url), token: null }, EVERYTHING_PROFILE, steps),
    runScript("v2-2026", { url: new URL(servers.modern.url), token: null }, FIXTURE_PROFILE, [...steps, "elicitation"]),
  ]);
  expected.everything = everything.transcript;
  expected.modern = modern.transcript;
});

after(async () => {
  await agent?.stop();
  await Promise.all([cp?.close(), ...Object.values(proxies).map((p) => p.close())]);
  await Promise.all(Object.values(servers).map((s) => s.close()));
});

/** One command as OpenAI sends it; resolves with its final post and the notifies before it. */
async function send(
  channel: string,
  message: Args,
  headers: Record<string, string>,
): Promise<{ final: Args; status: unknown; respHeaders: Record<string, string[]>; notifies: Args[] }> {
  const [command] = cp.enqueue({
    channel,
    headers: Object.fromEntries(
      Object.entries({
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        ...headers,
      }).map(([name, value]) => [name, [value]]),
    ),
    jsonrpc: { jsonrpc: "2.0", ...message },
  });
  const final = await cp.waitForFinal(command!.request_id, 20_000);
  const notifies = cp
    .responsesFor(command!.request_id)
    .filter((post) => post.respType === "jsonrpc_notify")
    .map((post) => post.payload.resp_json as Args);
  return {
    final: (final.payload.resp_json ?? {}) as Args,
    status: final.payload.resp_code,
    respHeaders: (final.payload.resp_headers ?? {}) as Record<string, string[]>,
    notifies,
  };
}

/**
 * A client session in one style, declaring `capabilities`: `request` sends a request and returns
 * its result (failing on an error).
 */
async function session(channel: string, style: Style, capabilities: Args = {}) {
  const headers: Record<string, string> = {};
  const request = async (method: string, params: Args, name?: string, resultType = "complete") => {
    const modern = style !== "legacy";
    const body = { id: `matrix-${++ids}`, method, params: modern ? withEnvelope(params, capabilities) : params };
    const extra: Record<string, string> =
      style === "modern with headers"
        ? { "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, ...(name ? { "Mcp-Name": name } : {}) }
        : {};
    const answer = await send(channel, body, { ...headers, ...extra });
    assert.equal(answer.status, 200, JSON.stringify(answer.final));
    assert.equal(answer.final.id, body.id, "the response carries the command's own JSON-RPC id");
    const result = answer.final.result as Args | undefined;
    assert.ok(result, `${method}: ${JSON.stringify(answer.final)}`);
    if (modern) assert.equal(result.resultType, resultType, `${method}: a modern result says what it is`);
    return { result, answer };
  };
  if (style === "legacy") {
    const { answer } = await request("initialize", {
      protocolVersion: "2025-06-18",
      capabilities,
      clientInfo: { name: "openai-like", version: "0.0.0" },
    });
    const id = headerValue(answer.respHeaders, "mcp-session-id");
    assert.ok(id, "a legacy session id comes back in resp_headers");
    headers["Mcp-Session-Id"] = id;
    headers["MCP-Protocol-Version"] = "2025-06-18";
    const ack = await send(channel, { method: "notifications/initialized" }, headers);
    assert.equal(ack.status, 202);
  } else {
    const { result } = await request("server/discover", {});
    assert.deepEqual(result.supportedVersions, ["2026-07-28"]);
  }
  return request;
}

function withEnvelope(params: Args, capabilities: Args): Args {
  const envelope = { ...ENVELOPE, "io.modelcontextprotocol/clientCapabilities": capabilities };
  return { ...params, _meta: { ...(params._meta as Args | undefined), ...envelope } };
}

/** The same script as the SDK matrix, as commands; returns the comparable payloads. */
async function script(server: ServerName, channel: string, style: Style) {
  const profile = PROFILES[server];
  const request = await session(channel, style);
  const tools = ((await request("tools/list", {})).result.tools as Args[])
    .filter((tool) => profile.tools.includes(tool.name as string))
    .map(({ execution, ...tool }) => tool)
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const call = comparable((await request("tools/call", profile.call, profile.call.name)).result);
  const progressed = await request(
    "tools/call",
    { ...profile.progress, _meta: { progressToken: "matrix-progress" } },
    profile.progress.name,
  );
  const resource = comparable((await request("resources/read", { uri: profile.resource }, profile.resource)).result);
  const prompt = comparable((await request("prompts/get", profile.prompt, profile.prompt.name)).result);
  return {
    payloads: { tools, call, resource, prompt },
    progress: progressed.answer.notifies.map((note) => note.params),
  };
}

for (const server of ["everything", "modern"] as const) {
  for (const leg of ["stdio", "http"] as const) {
    describe(`OpenAI → agent → ${server}/${leg}`, () => {
      for (const style of ["modern with headers", "modern, body only", "legacy"] as const) {
        test(`${style} commands: the payloads equal a direct SDK client's, progress comes as notifies`, async () => {
          const run = await script(server, CHANNELS[server][leg], style);
          const reference = expected[server] as {
            lists: { tools: unknown };
            call: unknown;
            resource: unknown;
            prompt: unknown;
          };
          assert.deepEqual(run.payloads, {
            tools: reference.lists.tools,
            call: reference.call,
            resource: reference.resource,
            prompt: reference.prompt,
          });
          assert.deepEqual(
            run.progress,
            [1, 2, 3].map((progress) => ({ progressToken: "matrix-progress", progress, total: 3 })),
          );
          cp.assertNoViolations();
        });
      }
    });
  }
}

/**
 * A modern elicitation as OpenAI would carry it: the call's `input_required` result, then the
 * same call again with `inputResponses` (the accepted content) and any `requestState`.
 */
async function elicit(channel: string, style: Style): Promise<Args> {
  const request = await session(channel, style, { elicitation: { form: {} } });
  const call = { name: FIXTURE_PROFILE.elicit.name, arguments: {} };
  const asked = (await request("tools/call", call, call.name, "input_required")).result;
  const inputRequests = asked.inputRequests as Record<string, { method: string }>;
  assert.deepEqual(Object.keys(inputRequests), ["confirm"]);
  assert.equal(inputRequests.confirm!.method, "elicitation/create");
  const retry = {
    ...call,
    inputResponses: { confirm: { action: "accept", content: FIXTURE_PROFILE.elicit.answer } },
    ...(asked.requestState === undefined ? {} : { requestState: asked.requestState }),
  };
  return comparable((await request("tools/call", retry, call.name)).result);
}

for (const leg of ["stdio", "http"] as const) {
  // Not tested on this path yet (the bridge does both; the hub-path matrix and eras-mrtr*.test.ts test
  // them): the same for server-everything (its elicitation/create during a modern command's call →
  // input_required) and for legacy sessions of the 2026-only server (input_required → a server→client
  // request posted as a jsonrpc_notify, answered by a jsonrpc response command).
  for (const style of ["modern with headers", "modern, body only"] as const) {
    test(`OpenAI → agent → modern/${leg}: an elicitation (${style}) is input_required, answered by the retry`, async () => {
      assert.deepEqual(await elicit(CHANNELS.modern[leg], style), (expected.modern as Args).elicitation);
      cp.assertNoViolations();
    });
  }
}

describe("what the HTTP backends receive", () => {
  /** The backend's requests for `method` made while `work` ran. */
  async function receivedDuring(server: ServerName, method: string, work: () => Promise<unknown>) {
    const from = proxies[server].received.length;
    await work();
    return proxies[server].received.slice(from).filter((request) => request.body?.method === method);
  }

  /** The `echo` call a `style` session on `server`'s HTTP channel sends, as the backend received it. */
  async function echoCallReceived(server: ServerName, style: Style) {
    const request = await session(CHANNELS[server].http, style);
    const [call] = await receivedDuring(server, "tools/call", () =>
      request("tools/call", PROFILES[server].call, "echo"),
    );
    assert.ok(call, "the call reached the backend");
    return call;
  }

  for (const style of ["modern with headers", "modern, body only"] as const) {
    test(`a 2026-only server gets ${style} commands with the modern headers set from the body`, async () => {
      const call = await echoCallReceived("modern", style);
      assert.equal(call.headers["mcp-protocol-version"], "2026-07-28");
      assert.equal(call.headers["mcp-method"], "tools/call");
      assert.equal(call.headers["mcp-name"], "echo");
      assert.deepEqual((call.body!.params as Args)._meta, ENVELOPE);
      assert.equal(call.headers["mcp-session-id"], undefined, "a modern request has no session");
    });
  }

  test("a 2026-only server gets a legacy session's call as a modern request (the bridge adds envelope and headers)", async () => {
    const call = await echoCallReceived("modern", "legacy");
    assert.equal(call.headers["mcp-method"], "tools/call");
    assert.equal(call.headers["mcp-name"], "echo");
    assert.equal(call.headers["mcp-protocol-version"], "2026-07-28");
    const meta = (call.body!.params as Args)._meta as Args;
    assert.equal(meta["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
    assert.deepEqual(meta["io.modelcontextprotocol/clientInfo"], { name: "openai-like", version: "0.0.0" });
    assert.equal(call.headers["mcp-session-id"], undefined, "the bridge's own session id is not sent on");
  });

  test("a 2025 server gets a modern command on a legacy session, without the envelope or the modern headers", async () => {
    const call = await echoCallReceived("everything", "modern, body only");
    assert.ok(call.headers["mcp-session-id"], "on the bridge's legacy session");
    assert.equal(call.headers["mcp-method"], undefined);
    assert.equal(call.headers["mcp-name"], undefined);
    assert.notEqual(call.headers["mcp-protocol-version"], "2026-07-28");
    const meta = ((call.body!.params as Args)._meta ?? {}) as Args;
    assert.deepEqual(
      Object.keys(meta).filter((key) => key.startsWith("io.modelcontextprotocol/")),
      [],
      "no envelope keys reach a 2025 server",
    );
  });

  test("a 2025 server gets a legacy command as it was sent", async () => {
    const call = await echoCallReceived("everything", "legacy");
    assert.deepEqual(call.body!.params, EVERYTHING_PROFILE.call);
    assert.equal(call.headers["mcp-protocol-version"], "2025-06-18");
    assert.ok(call.headers["mcp-session-id"]);
    cp.assertNoViolations();
  });
});
