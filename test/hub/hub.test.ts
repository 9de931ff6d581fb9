/**
 * The hub Worker end to end in workerd (Miniflare): the agent API exactly as the
 * contract says, and the MCP ingress as docs/protocol.md says. Agents are plain fetch
 * loops here; every body the hub returns is checked against docs/openapi.json.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  AGENT_KEY,
  CLIENT_TOKEN,
  HUB_TOKEN,
  SECOND_AGENT_KEY,
  mcpPost,
  openSession,
  startTestHub,
  tunnelId,
  type PolledCommand,
  type TestAgent,
  type TestHub,
} from "../support/hub.ts";
import { assertSchema } from "../support/openapi.ts";

let hub: TestHub;

before(async () => {
  hub = await startTestHub({
    tunnels: 40,
    settings: {
      livenessMs: 1000,
      maxPollHoldMs: 1000,
      responseTimeoutMs: 1500,
      maxQueued: 4,
      maxRequestBytes: 64 * 1024,
      maxResponseBytes: 256 * 1024,
    },
  });
});
after(() => hub.close());

const LIST = { jsonrpc: "2.0", id: 1, method: "tools/list" };

async function errorOf(response: Response): Promise<{ message: string; type: string; code: string | null }> {
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assertSchema("APIErrorResponse", body);
  return (body as { error: { message: string; type: string; code: string | null } }).error;
}

type TunnelStatus = { queued: number; waitingPolls: number; agents: Array<{ instanceId: string; live: boolean }> };

/**
 * Wait until the tunnel's hub reports what `ready` wants (`GET …/status`) instead of
 * sleeping and hoping the requests got there; bounded, so a hub that never gets there
 * fails with the numbers rather than hanging.
 */
async function untilStatus(agent: TestAgent, ready: (status: TunnelStatus) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = (await (await fetch(agent.url("/status"), { headers: agent.headers() })).json()) as TunnelStatus;
    if (ready(status)) return;
    assert.ok(Date.now() < deadline, `waited 10 s for ${what}; the hub reports ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Start the client request while `agent` holds a poll; return both. */
async function roundTrip(
  agent: TestAgent,
  tunnel: string,
  message: unknown = LIST,
  options: Parameters<typeof mcpPost>[2] = {},
) {
  const polled = agent.poll({ timeoutMs: 3000 });
  await untilStatus(agent, (s) => s.waitingPolls > 0, "the agent's poll to be held");
  const response = mcpPost(hub.mcpUrl(tunnel), message, options);
  const poll = await polled;
  assert.equal(poll.status, 200, "the held poll should carry the command");
  return { command: poll.commands[0]!, response };
}

describe("agent API", () => {
  test("metadata: id, name, description, and the hub's extensions header", async () => {
    const tunnel = hub.tunnel();
    const response = await hub.agent(tunnel).metadata();
    assert.equal(response.status, 200);
    const body = await response.json();
    assertSchema("TunnelClientMetadata", body);
    assert.equal((body as { id: string }).id, tunnel);
    assert.equal(response.headers.get("x-airlock-capabilities"), "cancel,server-requests,get-stream,lease,identity");
    assert.equal(
      response.headers.get("x-airlock-max-response-bytes"),
      String(256 * 1024),
      "the response post limit, advertised",
    );
  });

  test("a malformed tunnel id is 400 invalid_tunnel_id_format on every route", async () => {
    const agent = hub.agent("tunnel_XYZ");
    for (const response of [
      await agent.metadata(),
      await fetch(agent.url("/poll"), { headers: agent.headers() }),
      await mcpPost(hub.mcpUrl("nope"), LIST),
    ]) {
      assert.equal(response.status, 400);
      assert.equal((await errorOf(response)).code, "invalid_tunnel_id_format");
    }
  });

  test("missing, wrong and other-tunnel keys are 401 with the envelope; a second configured key works", async () => {
    const tunnel = hub.tunnel();
    const missing = await fetch(hub.agent(tunnel).url("/poll"));
    assert.equal(missing.status, 401);
    assert.match((await errorOf(missing)).message, /Missing or invalid agent key/);
    const wrong = await hub.agent(tunnel, { key: "not-the-key" }).metadata();
    assert.equal(wrong.status, 401);
    const error = await errorOf(wrong);
    assert.equal(error.code, "invalid_api_key");
    assert.equal(error.type, "authentication_error");
    const unknownTunnel = await hub.agent(tunnelId(0xabcdef), { key: AGENT_KEY }).metadata();
    assert.equal(unknownTunnel.status, 401);
    assert.equal((await hub.agent(tunnel, { key: SECOND_AGENT_KEY }).metadata()).status, 200);
    // A client token is not an agent key.
    assert.equal((await hub.agent(tunnel, { key: CLIENT_TOKEN }).metadata()).status, 401);
  });

  test("poll parameters outside the contract's ranges are 400 naming the parameter", async () => {
    const agent = hub.agent(hub.tunnel());
    for (const [query, param] of [
      ["limit=0", "limit"],
      ["limit=26", "limit"],
      ["limit=two", "limit"],
      ["timeout_ms=0", "timeout_ms"],
      ["timeout_ms=-5", "timeout_ms"],
      ["channel=Bad%20Name", "channel"],
    ]) {
      const response = await fetch(`${agent.url("/poll")}?${query}`, { headers: agent.headers() });
      assert.equal(response.status, 400, query);
      const body = (await response.json()) as { error: { param?: string } };
      assertSchema("APIErrorResponse", body);
      assert.equal(body.error.param, param, query);
    }
  });

  test("no work: 204 after the requested hold, and the hub bounds a long hold", async () => {
    const agent = hub.agent(hub.tunnel());
    let started = performance.now();
    const short = await agent.poll({ timeoutMs: 150 });
    const shortMs = performance.now() - started;
    assert.equal(short.status, 204);
    assert.ok(shortMs >= 140 && shortMs < 900, `held ${shortMs} ms`);
    started = performance.now();
    const long = await agent.poll({ timeoutMs: 600_000 });
    const longMs = performance.now() - started;
    assert.equal(long.status, 204);
    assert.ok(longMs >= 900 && longMs < 2500, `held ${longMs} ms (hub maximum 1000)`);
  });

  test("a new command reaches a held poll at once, as a valid PolledCommandList with sanitised headers", async (t) => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const polled = agent.poll({ timeoutMs: 5000 });
    await untilStatus(agent, (s) => s.waitingPolls > 0, "the agent's poll to be held");
    const sent = performance.now();
    const client = mcpPost(hub.mcpUrl(tunnel), LIST, {
      headers: {
        Cookie: "a=b",
        "X-Forwarded-For": "10.0.0.1",
        "X-Read-Only": "false",
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "Mcp-Protocol-Version": "2025-06-18",
      },
    });
    const result = await polled;
    const waited = performance.now() - sent;
    assert.equal(result.status, 200);
    assertSchema("PolledCommandList", result.body);
    // A 200 carrying the command (a held poll that timed out answers 204) proves the hand-off.
    t.diagnostic(`the poll returned ${Math.round(waited)} ms after the request`);
    const [command] = result.commands;
    assert.equal(command!.command_type, "jsonrpc");
    assert.equal(command!.channel, "main");
    assert.match(command!.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.match(command!.response_timeout ?? "", /^[0-9]+ms$/);
    assert.deepEqual(command!.jsonrpc, LIST);
    const names = Object.keys(command!.headers).map((n) => n.toLowerCase());
    // Only the protocol's client-header allowlist travels (shared/protocol/headers.ts).
    for (const stripped of [
      "authorization",
      "cookie",
      "x-forwarded-for",
      "x-read-only",
      "host",
      "content-length",
      "accept-encoding",
    ]) {
      assert.ok(!names.includes(stripped), `${stripped} must not reach the agent`);
    }
    assert.deepEqual(command!.headers.traceparent, ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]);
    assert.deepEqual(command!.headers["mcp-protocol-version"], ["2025-06-18"]);
    await agent.reply(command!, { tools: [] });
    assert.equal((await client).status, 200);
  });

  test("response posts: ok is TunnelResponseAck; unknown 404, wrong shard token 401, bad bodies 400, oversized 413", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const unknown = await agent.respond(
      { request_id: "req_unknown", shard_token: "x", channel: "main" },
      { resp_code: 200 },
    );
    assert.equal(unknown.status, 404);
    assert.equal((await errorOf(unknown)).code, "pending_request_not_found");

    const { command, response } = await roundTrip(agent, tunnel);
    const mismatch = await agent.respond(
      command,
      { resp_code: 200, resp_json: { jsonrpc: "2.0", id: 1, result: {} } },
      "sh_forged",
    );
    assert.equal(mismatch.status, 401);
    assert.equal((await errorOf(mismatch)).code, "tunnel_request_mismatch");

    const extra = await agent.respond(command, { resp_code: 200, surprise: true });
    assert.equal(extra.status, 400);
    await errorOf(extra);
    const noCode = await agent.respond(command, { resp_type: "jsonrpc_response" });
    assert.equal(noCode.status, 400);
    const badChannel = await agent.respond({ ...command, channel: "Not A Channel" }, { resp_code: 200 });
    assert.equal(badChannel.status, 400);
    assert.equal((await errorOf(badChannel)).code, "invalid_channel_format");
    const notJson = await fetch(agent.url("/response"), {
      method: "POST",
      headers: agent.headers({ "Content-Type": "application/json", "X-Tunnel-Shard-Token": command.shard_token }),
      body: "{",
    });
    assert.equal(notJson.status, 400);
    assert.equal((await errorOf(notJson)).code, "invalid_json_payload");
    const huge = await agent.respond(command, {
      resp_code: 200,
      resp_json: { jsonrpc: "2.0", id: 1, result: { blob: "x".repeat(300 * 1024) } },
    });
    assert.equal(huge.status, 413);
    assert.equal((await errorOf(huge)).code, "request_body_too_large");

    const ok = await agent.reply(command, { tools: [] });
    assert.equal(ok.status, 200);
    const ack = await ok.json();
    assertSchema("TunnelResponseAck", ack);
    assert.deepEqual(ack, { status: "ok" });
    assert.equal((await response).status, 200);
    const again = await agent.reply(command, { tools: [] });
    assert.equal(again.status, 404);
  });
});

describe("MCP ingress", () => {
  test("missing or wrong client token: 401 with the envelope; agent keys are not client tokens", async () => {
    const url = hub.mcpUrl(hub.tunnel());
    const missing = await fetch(url, {
      method: "POST",
      body: JSON.stringify(LIST),
      headers: { "Content-Type": "application/json" },
    });
    assert.equal(missing.status, 401);
    assert.match((await errorOf(missing)).message, /client token/);
    assert.equal((await mcpPost(url, LIST, { token: "wrong" })).status, 401);
    assert.equal((await mcpPost(url, LIST, { token: AGENT_KEY })).status, 401);
  });

  test("bodies that are not a JSON-RPC object or batch are 400 invalid_json_payload; oversized bodies 413", async () => {
    const url = hub.mcpUrl(hub.tunnel());
    for (const body of ["{", "42", '"text"', "[]", "[1,2]", "null"]) {
      const response = await mcpPost(url, body);
      assert.equal(response.status, 400, body);
      assert.equal((await errorOf(response)).code, "invalid_json_payload", body);
    }
    const big = await mcpPost(url, {
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { blob: "x".repeat(70 * 1024) },
    });
    assert.equal(big.status, 413);
    assert.equal((await errorOf(big)).code, "request_body_too_large");
    const badChannel = await mcpPost(hub.mcpUrl(hub.tunnel(), "No%20Spaces"), LIST);
    assert.equal(badChannel.status, 400);
    assert.equal((await errorOf(badChannel)).code, "invalid_channel_format");
  });

  test("a refused oversized body never breaks the request after it (no spurious 502 from a reused connection)", async () => {
    const url = hub.mcpUrl(hub.tunnel());
    const statuses = new Set<number>();
    // The race is rare per request (~2 %); enough rounds make a regression show reliably.
    for (let i = 0; i < 120; i++) {
      const big = await mcpPost(url, {
        jsonrpc: "2.0",
        id: i,
        method: "tools/call",
        params: { blob: "x".repeat(200 * 1024) },
      });
      await big.body?.cancel();
      statuses.add(big.status);
      const next = await mcpPost(url, LIST);
      await next.body?.cancel();
      statuses.add(next.status);
    }
    assert.deepEqual([...statuses].sort(), [413, 503], "only the 413 and the no-agent 503, never a 502");
  });

  test("no agent has polled: 503 tunnel_client_not_connected at once, with Retry-After", async () => {
    const started = performance.now();
    const response = await mcpPost(hub.mcpUrl(hub.tunnel()), LIST);
    assert.ok(performance.now() - started < 1000);
    assert.equal(response.status, 503);
    assert.ok(Number(response.headers.get("retry-after")) >= 1);
    assert.equal((await errorOf(response)).code, "tunnel_client_not_connected");
  });

  test("queue full: 429 tunnel_queue_full with Retry-After", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    await agent.poll({ timeoutMs: 1 });
    const controller = new AbortController();
    const queued = Array.from({ length: 4 }, () =>
      mcpPost(hub.mcpUrl(tunnel), LIST, { signal: controller.signal }).catch(() => undefined),
    );
    // The four are in the queue before the fifth.
    await untilStatus(agent, (s) => s.queued === 4, "4 queued commands");
    const full = await mcpPost(hub.mcpUrl(tunnel), LIST);
    assert.equal(full.status, 429);
    assert.ok(Number(full.headers.get("retry-after")) >= 1);
    assert.equal((await errorOf(full)).code, "tunnel_queue_full");
    controller.abort();
    await Promise.all(queued);
  });

  test("a final response becomes JSON with the backend's status and allowlisted headers", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const { command, response } = await roundTrip(agent, tunnel);
    await agent.respond(command, {
      resp_json: { jsonrpc: "2.0", id: 1, error: { code: -32601, message: "Method not found" } },
      resp_headers: { "Content-Type": ["application/json"], "Mcp-Session-Id": ["sess-1"], "Set-Cookie": ["x=y"] },
      resp_code: 404,
      resp_type: "jsonrpc_response",
    });
    const answer = await response;
    assert.equal(answer.status, 404);
    assert.equal(answer.headers.get("mcp-session-id"), "sess-1");
    assert.equal(answer.headers.get("set-cookie"), null);
    assert.deepEqual(await answer.json(), {
      jsonrpc: "2.0",
      id: 1,
      error: { code: -32601, message: "Method not found" },
    });
  });

  test("notifications first: the client gets an SSE stream, one event per message, closed after the final", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const { command, response } = await roundTrip(agent, tunnel, {
      jsonrpc: "2.0",
      id: 5,
      method: "tools/call",
      params: { name: "slow" },
    });
    const progress = (n: number) => ({
      jsonrpc: "2.0",
      method: "notifications/progress",
      params: { progressToken: 1, progress: n },
    });
    for (const n of [1, 2]) {
      const posted = await agent.respond(command, {
        resp_json: progress(n),
        resp_code: 200,
        resp_type: "jsonrpc_notify",
        resp_headers: { "Content-Type": ["text/event-stream"] },
      });
      assert.equal(posted.status, 200);
    }
    await agent.reply(command, { content: [] });
    const answer = await response;
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get("content-type"), "text/event-stream");
    const events = (await answer.text())
      .split("\n\n")
      .filter((b) => b.includes("data: "))
      .map((b) => JSON.parse(b.slice(b.indexOf("data: ") + 6)));
    assert.deepEqual(events, [progress(1), progress(2), { jsonrpc: "2.0", id: 5, result: { content: [] } }]);
  });

  test("a notification is acknowledged with the backend's status (202) and no body", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const { command, response } = await roundTrip(agent, tunnel, {
      jsonrpc: "2.0",
      method: "notifications/initialized",
    });
    await agent.respond(command, { resp_code: 202, resp_type: "notify_ack" });
    const answer = await response;
    assert.equal(answer.status, 202);
    assert.equal(await answer.text(), "");
  });

  test("odd backend statuses are mapped: 1xx and unknown codes → 502, unknown 2xx → 200", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    for (const [code, expected] of [
      [101, 502],
      [299, 200],
      [599, 502],
    ] as const) {
      const { command, response } = await roundTrip(agent, tunnel);
      await agent.respond(command, { resp_code: code, resp_json: { jsonrpc: "2.0", id: 1, result: {} } });
      assert.equal((await response).status, expected, `resp_code ${code}`);
    }
  });

  test("a batch becomes one command per message and one JSON array answer", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const batch = [
      { jsonrpc: "2.0", id: "a", method: "ping" },
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { jsonrpc: "2.0", id: "b", method: "ping" },
    ];
    const client = mcpPost(hub.mcpUrl(tunnel), batch);
    const seen: PolledCommand[] = [];
    while (seen.length < 3) seen.push(...(await agent.poll({ timeoutMs: 2000 })).commands);
    for (const command of seen) {
      if (command.jsonrpc?.id === undefined) await agent.respond(command, { resp_code: 202, resp_type: "notify_ack" });
      else await agent.reply(command, {});
    }
    const answer = await client;
    assert.equal(answer.status, 200);
    assert.deepEqual(await answer.json(), [
      { jsonrpc: "2.0", id: "a", result: {} },
      { jsonrpc: "2.0", id: "b", result: {} },
    ]);
  });

  test("DELETE becomes session_termination with the session header; without Mcp-Session-Id it is 400", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const missing = await fetch(hub.mcpUrl(tunnel), {
      method: "DELETE",
      headers: { Authorization: `Bearer ${CLIENT_TOKEN}` },
    });
    assert.equal(missing.status, 400);
    assert.equal((await errorOf(missing)).code, "missing_mcp_session_id");

    await openSession(hub.mcpUrl(tunnel, "docs"), agent, "sess-9");
    const polled = agent.poll({ timeoutMs: 3000 });
    const client = fetch(hub.mcpUrl(tunnel, "docs"), {
      method: "DELETE",
      headers: { Authorization: `Bearer ${CLIENT_TOKEN}`, "Mcp-Session-Id": "sess-9" },
    });
    const [command] = (await polled).commands;
    assertSchema("PolledCommandList", { commands: [command] });
    assert.equal(command!.command_type, "session_termination");
    assert.equal(command!.channel, "docs");
    assert.deepEqual(command!.headers["mcp-session-id"], ["sess-9"]);
    assert.equal(command!.jsonrpc, undefined);
    await agent.respond(command!, { resp_code: 200, resp_type: "session_termination_response" });
    const answer = await client;
    assert.equal(answer.status, 200);
    assert.equal(await answer.text(), "");
  });

  test("no final response in time: 504 with the envelope, and the late answer gets 404", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    const { command, response } = await roundTrip(agent, tunnel);
    // Keep the agent connected while it "works".
    const keepAlive = agent.poll({ timeoutMs: 1000 });
    const answer = await response;
    assert.equal(answer.status, 504);
    assert.equal((await errorOf(answer)).code, "tunnel_response_timeout");
    assert.equal((await agent.reply(command, {})).status, 404);
    await keepAlive;
  });

  test("a client that disconnects from its stream cancels the command: the agent is told (cancel extension) and its answer is refused", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel, { capabilities: ["cancel"] });
    const controller = new AbortController();
    const { command, response } = await roundTrip(
      agent,
      tunnel,
      { jsonrpc: "2.0", id: 3, method: "tools/call" },
      { signal: controller.signal },
    );
    await agent.respond(command, {
      resp_json: { jsonrpc: "2.0", method: "notifications/progress", params: { progress: 1 } },
      resp_code: 200,
      resp_type: "jsonrpc_notify",
    });
    const stream = (await response).body!.getReader();
    await stream.read();
    controller.abort();
    // The hub notices when its next keepalive (200 ms here) cannot be written.
    const cancel = await agent.next(3000);
    assert.equal(cancel.command_type, "airlock_cancel");
    assert.equal(cancel.cancel_request_id, command.request_id);
    assert.equal((await agent.reply(command, {})).status, 404);
  });

  test("a JSON client that disconnects before any agent took its request removes it from the queue", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel);
    await agent.poll({ timeoutMs: 1 });
    const controller = new AbortController();
    const client = mcpPost(hub.mcpUrl(tunnel), LIST, { accept: "application/json", signal: controller.signal }).catch(
      (error: Error) => error.name,
    );
    await untilStatus(agent, (s) => s.queued === 1, "the request to be queued");
    controller.abort();
    assert.equal(await client, "AbortError");
    await untilStatus(agent, (s) => s.queued === 0, "the abandoned request to leave the queue");
    assert.equal((await agent.poll({ timeoutMs: 200 })).status, 204, "the abandoned request must not reach the agent");
  });

  test("a JSON client that disconnects after delivery cancels the command at its agent", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel, { capabilities: ["cancel"] });
    const controller = new AbortController();
    const { command, response } = await roundTrip(agent, tunnel, LIST, {
      accept: "application/json",
      signal: controller.signal,
    });
    controller.abort();
    await response.catch(() => undefined);
    const cancel = await agent.next(2000);
    assert.equal(cancel.command_type, "airlock_cancel");
    assert.equal(cancel.cancel_request_id, command.request_id);
  });

  test("a pass-through tunnel forwards the client's Authorization and takes the hub token from X-Airlock-Token", async () => {
    const tunnel = hub.passThroughTunnel;
    const agent = hub.agent(tunnel);
    const withoutHubToken = await mcpPost(hub.mcpUrl(tunnel), LIST, { token: "backend-oauth-token" });
    assert.equal(withoutHubToken.status, 401);
    assert.match((await errorOf(withoutHubToken)).message, /X-Airlock-Token/);
    const { command, response } = await roundTrip(agent, tunnel, LIST, {
      token: "backend-oauth-token",
      headers: { "X-Airlock-Token": HUB_TOKEN },
    });
    assert.deepEqual(command.headers.authorization, ["Bearer backend-oauth-token"]);
    assert.ok(!Object.keys(command.headers).some((n) => n.toLowerCase() === "x-airlock-token"));
    await agent.respond(command, {
      resp_code: 401,
      resp_headers: { "WWW-Authenticate": ['Bearer resource_metadata="https://backend.example/.well-known"'] },
      resp_json: { jsonrpc: "2.0", id: 1, error: { code: -32001, message: "Unauthorized" } },
    });
    const answer = await response;
    assert.equal(answer.status, 401);
    assert.match(answer.headers.get("www-authenticate") ?? "", /resource_metadata/);
  });

  test("GET opens no stream without an agent offering get-stream: 405", async () => {
    const tunnel = hub.tunnel();
    await hub.agent(tunnel).poll({ timeoutMs: 1 });
    const response = await fetch(hub.mcpUrl(tunnel), {
      headers: { Authorization: `Bearer ${CLIENT_TOKEN}`, Accept: "text/event-stream" },
    });
    assert.equal(response.status, 405);
    await errorOf(response);
  });

  test("GET with a get-stream agent: the stream opens on the agent's signal and carries server messages", async () => {
    const tunnel = hub.tunnel();
    const agent = hub.agent(tunnel, { capabilities: ["cancel", "get-stream"] });
    await openSession(hub.mcpUrl(tunnel), agent, "s-get");
    const polled = agent.poll({ timeoutMs: 3000 });
    await untilStatus(agent, (s) => s.waitingPolls > 0, "the agent's poll to be held");
    const controller = new AbortController();
    const client = fetch(hub.mcpUrl(tunnel), {
      headers: { Authorization: `Bearer ${CLIENT_TOKEN}`, Accept: "text/event-stream", "Mcp-Session-Id": "s-get" },
      signal: controller.signal,
    });
    const [command] = (await polled).commands;
    assert.equal(command!.command_type, "airlock_stream_open");
    assert.deepEqual(command!.headers["mcp-session-id"], ["s-get"]);
    assert.equal(command!.response_timeout, undefined);
    await agent.respond(command!, {
      resp_code: 200,
      resp_type: "jsonrpc_notify",
      resp_headers: { "Content-Type": ["text/event-stream"] },
    });
    const message = { jsonrpc: "2.0", method: "notifications/resources/list_changed" };
    await agent.respond(command!, { resp_code: 200, resp_type: "jsonrpc_notify", resp_json: message });
    const response = await client;
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const reader = response.body!.getReader();
    let text = "";
    while (!text.includes("list_changed")) text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const cancel = await agent.next(3000);
    assert.equal(cancel.command_type, "airlock_cancel");
    assert.equal(cancel.cancel_request_id, command!.request_id);
  });
});

describe("several agents on one tunnel", () => {
  test("each command is delivered to exactly one agent", async () => {
    const tunnel = hub.tunnel();
    const agents = [hub.agent(tunnel), hub.agent(tunnel)];
    const delivered = new Map<string, string>();
    let stop = false;
    const loops = agents.map(async (agent) => {
      while (!stop) {
        const { commands } = await agent.poll({ timeoutMs: 300, limit: 2 });
        for (const command of commands) {
          assert.equal(delivered.has(command.request_id), false, "a command was delivered twice");
          delivered.set(command.request_id, agent.instanceId);
          await agent.reply(command, { by: agent.instanceId });
        }
      }
    });
    await untilStatus(agents[0]!, (s) => s.agents.filter((a) => a.live).length === 2, "both agents to have polled");
    const answers = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        // The tunnel queue holds 4 here: retry on 429 as a client would.
        for (;;) {
          const response = await mcpPost(hub.mcpUrl(tunnel), { jsonrpc: "2.0", id: i, method: "ping" });
          if (response.status !== 429) return response.json() as Promise<{ id: number; result: { by: string } }>;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }),
    );
    stop = true;
    await Promise.all(loops);
    assert.equal(delivered.size, 24);
    assert.deepEqual(
      answers.map((a) => a.id),
      Array.from({ length: 24 }, (_, i) => i),
    );
    assert.deepEqual(new Set(answers.map((a) => a.result.by)).size <= 2, true);
  });

  test("a poll whose agent hung up is not handed a command; another agent gets it", async () => {
    const tunnel = hub.tunnel();
    const dead = hub.agent(tunnel);
    const alive = hub.agent(tunnel);
    const controller = new AbortController();
    const held = dead.poll({ timeoutMs: 5000, signal: controller.signal }).catch((error: Error) => error.name);
    await untilStatus(dead, (s) => s.waitingPolls === 1, "the poll to be held");
    controller.abort();
    assert.equal(await held, "AbortError");
    await untilStatus(dead, (s) => s.waitingPolls === 0, "the hub to notice the hung-up poll");
    const client = mcpPost(hub.mcpUrl(tunnel), LIST);
    const command = await alive.next(1000);
    await alive.reply(command, { tools: [] });
    assert.equal((await client).status, 200);
  });

  test("an initialize with a server message before its answer: the first byte already carries the minted session id, which keeps affinity", async () => {
    const tunnel = hub.tunnel();
    const channels = [{ name: "main", procAffinity: true }];
    const first = hub.agent(tunnel, { channels });
    const second = hub.agent(tunnel, { channels });
    const { command, response } = await roundTrip(first, tunnel, {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {},
    });
    const log = { jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "starting" } };
    // A stdio backend: no session id anywhere in what the agent posts.
    await first.respond(command, {
      resp_json: log,
      resp_code: 200,
      resp_type: "jsonrpc_notify",
      resp_headers: { "Content-Type": ["text/event-stream"] },
    });
    await first.reply(command, {
      protocolVersion: "2025-06-18",
      capabilities: {},
      serverInfo: { name: "stdio", version: "1" },
    });
    const answer = await response;
    const minted = answer.headers.get("mcp-session-id");
    assert.match(minted ?? "", /^airlock-[0-9a-f]{32}$/);
    assert.equal(answer.headers.get("content-type"), "text/event-stream");
    const events = (await answer.text())
      .split("\n\n")
      .filter((b) => b.includes("data: "))
      .map((b) => JSON.parse(b.slice(b.indexOf("data: ") + 6)));
    assert.deepEqual(
      events.map((e: { id?: number; method?: string }) => e.method ?? e.id),
      ["notifications/message", 0],
    );

    // `second` holds a poll, yet the session's request waits for `first`.
    const secondPoll = second.poll({ timeoutMs: 800 });
    const onSession = mcpPost(
      hub.mcpUrl(tunnel),
      { jsonrpc: "2.0", id: 1, method: "tools/list" },
      { headers: { "Mcp-Session-Id": minted! } },
    );
    assert.equal((await secondPoll).status, 204);
    const taken = await first.next(2000);
    assert.equal(taken.jsonrpc?.id, 1);
    assert.equal(
      taken.headers["Mcp-Session-Id"] ?? taken.headers["mcp-session-id"],
      undefined,
      "a minted id never reaches the agent",
    );
    await first.reply(taken, { tools: [] });
    assert.equal((await onSession).status, 200);
  });

  test("a proc_affinity session stays with its agent; when that agent stops polling its session fails with 404 and the other agent keeps serving", async () => {
    const tunnel = hub.tunnel();
    const channels = [{ name: "main", procAffinity: true }];
    const first = hub.agent(tunnel, { channels });
    const second = hub.agent(tunnel, { channels });
    const { command, response } = await roundTrip(first, tunnel, {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {},
    });
    await first.respond(command, {
      resp_json: { jsonrpc: "2.0", id: 0, result: {} },
      resp_code: 200,
      resp_headers: { "Mcp-Session-Id": ["pinned-1"], "Content-Type": ["application/json"] },
    });
    assert.equal((await response).headers.get("mcp-session-id"), "pinned-1");

    // `second` holds a poll, yet the session's request waits for `first`.
    const secondPoll = second.poll({ timeoutMs: 800 });
    const onSession = mcpPost(
      hub.mcpUrl(tunnel),
      { jsonrpc: "2.0", id: 1, method: "tools/list" },
      { headers: { "Mcp-Session-Id": "pinned-1" } },
    );
    assert.equal((await secondPoll).status, 204);
    const taken = await first.next(2000);
    assert.equal(taken.jsonrpc?.id, 1);
    await first.reply(taken, { tools: [] });
    assert.equal((await onSession).status, 200);

    // `first` goes silent; after the liveness window its session is gone.
    await untilStatus(
      second,
      (s) => s.agents.some((a) => a.instanceId === first.instanceId && !a.live),
      "the silent agent to leave the liveness window",
    );
    await second.poll({ timeoutMs: 1 });
    const gone = await mcpPost(
      hub.mcpUrl(tunnel),
      { jsonrpc: "2.0", id: 2, method: "tools/list" },
      { headers: { "Mcp-Session-Id": "pinned-1" } },
    );
    assert.equal(gone.status, 404);
    assert.equal((await errorOf(gone)).code, "mcp_session_agent_gone");
    const fresh = await roundTrip(second, tunnel);
    await second.reply(fresh.command, { tools: [] });
    assert.equal((await fresh.response).status, 200);
  });
});
