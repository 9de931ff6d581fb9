import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { isOpenAiHost } from "../../agent/config/load.ts";
import { createControlPlaneClient, describeControlPlaneFailure, tunnelUrl } from "../../agent/control-plane/client.ts";
import type { ControlPlaneClientOptions } from "../../agent/control-plane/client.ts";
import { encodeServerInfo } from "../../shared/protocol/index.ts";
import { createLogger } from "../../shared/log.ts";
import { startFakeControlPlane } from "../support/fake-control-plane.ts";
import type { FakeControlPlaneOptions } from "../support/fake-control-plane.ts";

const SERVER_INFO = encodeServerInfo([
  { name: "main", procAffinity: true },
  { name: "docs", procAffinity: false },
]);

async function setup(
  t: TestContext,
  fakeOptions: FakeControlPlaneOptions = {},
  clientOptions: Partial<ControlPlaneClientOptions> = {},
) {
  const cp = await startFakeControlPlane(fakeOptions);
  t.after(() => cp.close());
  const client = createControlPlaneClient({
    baseUrl: cp.baseUrl,
    urlPath: cp.urlPath,
    tunnelId: cp.tunnelId,
    apiKey: cp.apiKey,
    clientName: "airlock",
    clientVersion: "0.1.0",
    serverInfo: SERVER_INFO,
    ...clientOptions,
  });
  return { cp, client };
}

const poll = { limit: 5, timeoutMs: 1_000, guardrailMs: 1_000 };

describe("control-plane client: URLs", () => {
  test("joins host root, optional prefix and the plural tunnel path with single slashes", () => {
    assert.equal(tunnelUrl("https://cp.example", undefined, "tunnel_x"), "https://cp.example/v1/tunnels/tunnel_x");
    assert.equal(tunnelUrl("https://cp.example/", "", "tunnel_x"), "https://cp.example/v1/tunnels/tunnel_x");
    assert.equal(
      tunnelUrl("https://cp.example//", "relay", "tunnel_x"),
      "https://cp.example/relay/v1/tunnels/tunnel_x",
    );
    assert.equal(tunnelUrl("https://cp.example", "/a//b/", "tunnel_x"), "https://cp.example/a/b/v1/tunnels/tunnel_x");
    assert.equal(tunnelUrl("https://cp.example", "/", "t/../x"), "https://cp.example/v1/tunnels/t%2F..%2Fx");
  });
});

describe("control-plane client: poll", () => {
  test("every call carries the contract's headers; commands decode and the receipt time is recorded", async (t) => {
    let clock = 1_000;
    const { cp, client } = await setup(t, {}, { now: () => clock, instanceId: "inst-1", capabilities: "airlock.v1" });
    const [command] = cp.enqueue({
      jsonrpc: { jsonrpc: "2.0", id: "a", method: "tools/list" },
      response_timeout: "30s",
    });
    const result = await client.poll(poll);
    assert.equal(result.kind, "commands");
    assert.ok(result.kind === "commands");
    assert.equal(result.receivedAt, 1_000);
    assert.equal(result.commands.length, 1);
    const [decoded] = result.commands;
    assert.ok(decoded?.kind === "command");
    assert.equal(decoded.command.request_id, command!.request_id);
    assert.deepEqual(decoded.command.command_type === "jsonrpc" && decoded.command.jsonrpc, {
      jsonrpc: "2.0",
      id: "a",
      method: "tools/list",
    });
    const request = cp.requests.at(-1)!;
    assert.equal(request.path, `/v1/tunnels/${cp.tunnelId}/poll`);
    assert.deepEqual(request.query, { limit: ["5"], timeout_ms: ["1000"] });
    assert.equal(request.headers.authorization, `Bearer ${cp.apiKey}`);
    assert.equal(request.headers.accept, "application/json");
    assert.equal(request.headers["x-tunnel-client-name"], "airlock");
    assert.equal(request.headers["x-tunnel-client-version"], "0.1.0");
    assert.equal(request.headers["x-tunnel-client-instance-id"], "inst-1");
    assert.equal(request.headers["x-tunnel-mcp-server-info"], SERVER_INFO);
    assert.equal(request.headers["x-airlock-capabilities"], "airlock.v1");
    assert.equal(client.instanceId, "inst-1");
    clock = 2_000;
    cp.assertNoViolations();
  });

  test("the receipt time is taken when headers arrive, before the body is read", async () => {
    let clock = 10;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          clock = 99; // reading the body "takes time"
          controller.enqueue(
            new TextEncoder().encode(
              JSON.stringify({ commands: [{ request_id: "r", shard_token: "s", created_at: "t", jsonrpc: {} }] }),
            ),
          );
          controller.close();
        },
      },
      { highWaterMark: 0 },
    );
    const client = createControlPlaneClient({
      baseUrl: "http://127.0.0.1:9",
      tunnelId: "tunnel_x",
      apiKey: "k-123456",
      clientName: "airlock",
      clientVersion: "1",
      serverInfo: SERVER_INFO,
      now: () => clock,
      fetch: async () => new Response(body, { status: 200, headers: { "Content-Type": "application/json" } }),
    });
    const result = await client.poll(poll);
    assert.ok(result.kind === "commands");
    assert.equal(result.receivedAt, 10);
  });

  test("the instance id defaults to a random UUID, stable for the client's life", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 204 }, 2);
    await client.poll(poll);
    await client.poll(poll);
    const ids = cp.requests.map((r) => r.headers["x-tunnel-client-instance-id"]);
    assert.match(ids[0]!, /^[0-9a-f-]{36}$/);
    assert.equal(ids[1], ids[0]);
    assert.equal(cp.requests[0]!.headers["x-airlock-capabilities"], undefined, "capabilities only when given");
    cp.assertNoViolations();
  });

  test("url_path goes before /v1", async (t) => {
    const { cp, client } = await setup(t, { urlPath: "/edge/relay/" });
    cp.scriptPoll({ status: 204 });
    assert.equal((await client.poll(poll)).kind, "empty");
    assert.equal(cp.requests[0]!.path, `/edge/relay/v1/tunnels/${cp.tunnelId}/poll`);
    cp.assertNoViolations();
  });

  test("204 and an empty list both mean no work; channels go in the query", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 204 });
    cp.scriptPoll({ status: 200, commands: [] });
    const first = await client.poll(poll);
    const second = await client.poll({ ...poll, channels: ["main", "docs"] });
    assert.deepEqual([first.kind, first.kind === "empty" && first.status], ["empty", 204]);
    assert.deepEqual([second.kind, second.kind === "empty" && second.status], ["empty", 200]);
    assert.deepEqual(cp.polls[1]!.channels, ["main", "docs"]);
    cp.assertNoViolations();
  });

  test("limit is clamped to the contract's 1..25", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 204 }, 2);
    await client.poll({ ...poll, limit: 80 });
    await client.poll({ ...poll, limit: 0 });
    assert.deepEqual(
      cp.polls.map((p) => p.limit),
      [25, 1],
    );
    cp.assertNoViolations();
  });

  test("errors carry status, Retry-After and the envelope's code and message", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 429, retryAfter: "7", code: "rate_limit_exceeded", message: "slow down" });
    const result = await client.poll(poll);
    assert.deepEqual(result, {
      kind: "http_error",
      status: 429,
      retryAfter: "7",
      error: { code: "rate_limit_exceeded", message: "slow down", type: "invalid_request_error" },
    });
    assert.match(
      describeControlPlaneFailure(result as never),
      /HTTP 429 rate_limit_exceeded — slow down — fix: .*backs off/,
    );
  });

  test("403 tunnel_use_forbidden is explained with its mitigation", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 403, code: "tunnel_use_forbidden", message: "no permission" });
    const result = await client.poll(poll);
    assert.ok(result.kind === "http_error" && result.status === 403);
    const text = describeControlPlaneFailure(result);
    assert.match(text, /tunnel_use_forbidden/);
    assert.match(text, /tunnel use permission/);
    assert.match(text, /control_plane\.api_key/);
  });

  test("the API key never appears in what the client returns, even when the server echoes it", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 500, message: `backend said ${cp.apiKey} is odd` });
    const scripted = await client.poll(poll);
    assert.ok(scripted.kind === "http_error");
    assert.doesNotMatch(JSON.stringify(scripted), new RegExp(cp.apiKey));
    assert.match(JSON.stringify(scripted), /\[REDACTED\]/);
  });

  test("a wrong key gets the service's 401, explained", async (t) => {
    const { client } = await setup(t, {}, { apiKey: "sk-wrong-key-abcdef" });
    const refused = await client.poll(poll);
    assert.ok(refused.kind === "http_error" && refused.status === 401);
    assert.match(describeControlPlaneFailure(refused), /invalid_api_key .*tunnel use permission/);
  });

  test("a malformed 200 is a protocol error, not a crash", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 200, body: '{"nope":1}' });
    cp.scriptPoll({ status: 200, body: "<html>" });
    assert.equal((await client.poll(poll)).kind, "protocol_error");
    assert.equal((await client.poll(poll)).kind, "protocol_error");
  });

  test("the client's own deadline is timeout_ms + guardrail", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ status: 204, delayMs: 3_000 });
    const started = Date.now();
    const result = await client.poll({ limit: 1, timeoutMs: 60, guardrailMs: 60 });
    const elapsed = Date.now() - started;
    assert.ok(result.kind === "network_error" && result.timedOut, JSON.stringify(result));
    // Never early; the upper side is the `timedOut` result (the scripted answer would come after 3 s).
    assert.ok(elapsed >= 100, `took ${elapsed} ms`);
  });

  test("the caller's signal aborts a held poll", async (t) => {
    const { cp, client } = await setup(t);
    const controller = new AbortController();
    const pending = client.poll({ ...poll, timeoutMs: 20_000, signal: controller.signal });
    await cp.waitFor(() => cp.heldPolls === 1, 5_000, "a held poll");
    controller.abort();
    assert.deepEqual(await pending, { kind: "aborted" });
  });

  test("connection refused: a network error whose request was never sent", async (t) => {
    const { cp, client } = await setup(t);
    await cp.close();
    const result = await client.poll(poll);
    assert.ok(result.kind === "network_error", JSON.stringify(result));
    assert.equal(result.sent, false);
    assert.equal(result.timedOut, false);
    assert.doesNotMatch(result.message, new RegExp(cp.apiKey));
  });

  test("a connection dropped mid-request: a network error that may have been sent", async (t) => {
    const { cp, client } = await setup(t);
    cp.scriptPoll({ drop: true });
    const result = await client.poll(poll);
    assert.ok(result.kind === "network_error", JSON.stringify(result));
    assert.equal(result.sent, true);
  });
});

describe("control-plane client: extra headers", () => {
  test("are sent on every call but cannot replace the protocol's headers", async (t) => {
    const lines: string[] = [];
    const log = createLogger({ sink: (line) => lines.push(line) });
    const { cp, client } = await setup(
      t,
      {},
      {
        extraHeaders: { "X-Org-Route": "blue", authorization: "Bearer stolen", "X-Tunnel-Client-Name": "other" },
        organizationId: "org_123",
        log,
      },
    );
    cp.scriptPoll({ status: 204 });
    await client.poll(poll);
    await client.getTunnel();
    const [pollCall, metadataCall] = cp.requests;
    for (const request of [pollCall!, metadataCall!]) {
      assert.equal(request.headers["x-org-route"], "blue");
      assert.equal(request.headers.authorization, `Bearer ${cp.apiKey}`);
      assert.equal(request.headers["x-tunnel-client-name"], "airlock");
      assert.equal(request.headers["openai-organization"], "org_123");
    }
    assert.equal(lines.length, 2);
    assert.match(lines.join("\n"), /cannot replace a protocol header/);
    cp.assertNoViolations();
  });
});

describe("control-plane client: metadata and responses", () => {
  test("getTunnel returns id, name and description", async (t) => {
    const { cp, client } = await setup(t, { metadata: { name: "Prod", description: "d" } });
    assert.deepEqual(await client.getTunnel(), {
      kind: "ok",
      tunnel: { id: cp.tunnelId, name: "Prod", description: "d" },
    });
    assert.equal(cp.requests[0]!.path, `/v1/tunnels/${cp.tunnelId}`);
    cp.scriptMetadata({ status: 403, code: "tunnel_use_forbidden" });
    const refused = await client.getTunnel();
    assert.ok(refused.kind === "http_error" && refused.error?.code === "tunnel_use_forbidden");
    cp.assertNoViolations();
  });

  test("postResponse sends the shard token as a header, never in the body", async (t) => {
    const { cp, client } = await setup(t);
    const [command] = cp.enqueue({});
    await client.poll(poll);
    const result = await client.postResponse(
      {
        request_id: command!.request_id,
        channel: "main",
        resp_json: { jsonrpc: "2.0", id: 1, result: {} },
        resp_headers: {},
        resp_code: 200,
        resp_type: "jsonrpc_response",
      },
      command!.shard_token,
    );
    assert.deepEqual(result, { kind: "ok", status: 200, requestId: `tsreq_${command!.request_id}` });
    const [posted] = cp.responses;
    assert.equal(posted!.shardToken, command!.shard_token);
    assert.equal(posted!.headers["content-type"], "application/json");
    assert.equal("shard_token" in posted!.payload, false);
    assert.equal(cp.requests.at(-1)!.path, `/v1/tunnels/${cp.tunnelId}/response`);
    cp.assertNoViolations();
  });

  test("a second final for the same request is 404 pending_request_not_found", async (t) => {
    const { cp, client } = await setup(t);
    const [command] = cp.enqueue({});
    await client.poll(poll);
    const payload = {
      request_id: command!.request_id,
      channel: "main",
      resp_code: 202,
      resp_type: "notify_ack" as const,
    };
    assert.equal((await client.postResponse(payload, command!.shard_token)).kind, "ok");
    const again = await client.postResponse(payload, command!.shard_token);
    assert.ok(again.kind === "http_error" && again.status === 404 && again.error?.code === "pending_request_not_found");
    assert.equal(cp.violations.length, 1, "the fake flags the replay");
  });
});

describe("fake control plane: it catches contract breaches", () => {
  test("wrong paths, missing headers, shard tokens in the body and wrong tokens are violations", async (t) => {
    const cp = await startFakeControlPlane();
    t.after(() => cp.close());
    const [command] = cp.enqueue({});
    await fetch(`${cp.baseUrl}/v1/tunnel/${cp.tunnelId}/poll?limit=1`, {
      headers: { Authorization: `Bearer ${cp.apiKey}` },
    }).then((r) => r.body?.cancel());
    await fetch(`${cp.baseUrl}/v1/tunnels/${cp.tunnelId}`, { headers: { Authorization: `Bearer ${cp.apiKey}` } }).then(
      (r) => r.body?.cancel(),
    );
    const poll = await fetch(`${cp.baseUrl}/v1/tunnels/${cp.tunnelId}/poll?limit=30&timeout_ms=0`, {
      headers: { Authorization: `Bearer ${cp.apiKey}` },
    });
    assert.equal(poll.status, 200);
    await poll.body?.cancel();
    const post = await fetch(`${cp.baseUrl}/v1/tunnels/${cp.tunnelId}/response`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${cp.apiKey}`,
        Accept: "application/json",
        "X-Tunnel-Shard-Token": "forged",
        "Content-Type": "application/json",
      },
      body: JSON.stringify({
        request_id: command!.request_id,
        shard_token: command!.shard_token,
        resp_code: 200,
        resp_type: "notify_ack",
        channel: "other",
      }),
    });
    await post.body?.cancel();
    const text = cp.violations.join("\n");
    for (const expected of [
      /not an operation of the contract/,
      /limit=30 invalid/,
      /timeout_ms=0 invalid/,
      /X-Tunnel-Client-Name missing/,
      /X-Tunnel-MCP-Server-Info missing/,
      /GET \/v1\/tunnels\/\{tunnel_id\}: X-Tunnel-Client-Instance-Id missing/,
      /GET \/v1\/tunnels\/\{tunnel_id\}\/poll: X-Tunnel-Client-Version missing/,
      /POST \/v1\/tunnels\/\{tunnel_id\}\/response: X-Tunnel-Client-Name missing/,
      /Accept is not application\/json/,
      /shard_token must not be in the body/,
      /TunnelResponsePayload invalid/,
      /X-Tunnel-Shard-Token forged is not the command's/,
      /does not echo the command's "main"/,
    ]) {
      assert.match(text, expected);
    }
    assert.throws(() => cp.assertNoViolations(), /contract violations/);
  });

  test("a poll is held until a command arrives, or until timeout_ms passes and then 204", async (t) => {
    const { cp, client } = await setup(t);
    const started = Date.now();
    const empty = await client.poll({ limit: 1, timeoutMs: 150, guardrailMs: 2_000 });
    assert.equal(empty.kind, "empty");
    assert.ok(Date.now() - started >= 140, "held for timeout_ms");
    const waiting = client.poll({ limit: 1, timeoutMs: 20_000, guardrailMs: 2_000 });
    await cp.waitFor(() => cp.heldPolls === 1, 5_000, "a held poll");
    const [command] = cp.enqueue({});
    const answered = await waiting;
    assert.ok(answered.kind === "commands");
    assert.deepEqual(
      cp.polls.map((p) => p.delivered),
      [[], [command!.request_id]],
    );
    cp.assertNoViolations();
  });
});

describe("X-Airlock-Capabilities goes to Airlock hubs only", () => {
  test("OpenAI's hosts get tunnel-client's headers alone; any other control plane may be a hub", () => {
    assert.equal(isOpenAiHost("https://api.openai.com"), true);
    assert.equal(isOpenAiHost("https://mtls.api.openai.com/"), true);
    assert.equal(isOpenAiHost("https://hub.example.com"), false);
    assert.equal(isOpenAiHost("https://notopenai.com"), false);
    assert.equal(isOpenAiHost("http://127.0.0.1:8787"), false);
  });
});
