/**
 * A 2026-07-28 `subscriptions/listen` stream through the hub (workerd) and a real agent to
 * the SDK v2 fixture over Streamable HTTP outlives the hub's response deadline: a change
 * announced after the deadline still reaches the client on the open stream. While it is
 * idle the hub sends keep-alive comments (a short interval here), and it tells buffering
 * proxies not to hold its events (`X-Accel-Buffering: no`).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createParser } from "eventsource-parser";
import { startModernHttp, type RunningServer } from "../support/everything.ts";
import { CLIENT_TOKEN, startTestHub, type TestHub } from "../support/hub.ts";
import { startHubAgent, type HubAgent } from "../support/hub-stack.ts";

/** Short, so the test can outlive it; tool calls here take milliseconds. */
const RESPONSE_TIMEOUT_MS = 1500;
/** Keep-alive comments this often, so several fall inside the wait below. */
const KEEPALIVE_MS = 100;

let hub: TestHub;
let server: RunningServer;
let agent: HubAgent;
let url: URL;

const META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {},
  "io.modelcontextprotocol/clientInfo": { name: "airlock-eras", version: "0.0.0" },
};

function post(body: Record<string, unknown>, name: string | undefined, signal?: AbortSignal): Promise<Response> {
  return fetch(url, {
    method: "POST",
    signal,
    headers: {
      Authorization: `Bearer ${CLIENT_TOKEN}`,
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      "MCP-Protocol-Version": "2026-07-28",
      "Mcp-Method": String(body.method),
      ...(name ? { "Mcp-Name": name } : {}),
    },
    body: JSON.stringify(body),
  });
}

/** The JSON-RPC messages of an SSE body, awaited one by one; `comments` collects the SSE comments seen so far. */
function messages(body: ReadableStream<Uint8Array>, comments: string[] = []): () => Promise<Record<string, unknown>> {
  const queue: Array<Record<string, unknown>> = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const parser = createParser({
    onComment: (comment) => comments.push(comment.trim()),
    onEvent: (event) => {
      if (event.data.trim()) {
        queue.push(JSON.parse(event.data));
        wake?.();
      }
    },
  });
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      /* aborted by the test */
    }
    ended = true;
    wake?.();
  })();
  return async () => {
    while (queue.length === 0) {
      if (ended) throw new Error("the listen stream ended");
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    return queue.shift()!;
  };
}

before(async () => {
  [hub, server] = await Promise.all([
    startTestHub({ tunnels: 1, settings: { responseTimeoutMs: RESPONSE_TIMEOUT_MS, sseKeepaliveMs: KEEPALIVE_MS } }),
    startModernHttp(true),
  ]);
  const tunnel = hub.tunnel();
  agent = await startHubAgent(hub.url, tunnel, ["--mcp.server-url", server.url]);
  url = hub.mcpUrl(tunnel);
});

after(async () => {
  await agent?.stop("SIGTERM");
  await Promise.all([hub?.close(), server?.close()]);
});

test("subscriptions/listen is not cut at the hub's response deadline", async () => {
  const listening = new AbortController();
  const listen = await post(
    {
      jsonrpc: "2.0",
      id: "listen-1",
      method: "subscriptions/listen",
      params: { notifications: { toolsListChanged: true }, _meta: META },
    },
    undefined,
    listening.signal,
  );
  assert.equal(listen.status, 200);
  assert.match(listen.headers.get("Content-Type") ?? "", /text\/event-stream/);
  assert.equal(listen.headers.get("X-Accel-Buffering"), "no");
  const comments: string[] = [];
  const next = messages(listen.body!, comments);
  assert.equal((await next()).method, "notifications/subscriptions/acknowledged");

  // Outlive the deadline the hub gives every other request, then make the server announce a change.
  await new Promise((resolve) => setTimeout(resolve, RESPONSE_TIMEOUT_MS * 2));
  const announce = await post(
    { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "announce", arguments: {}, _meta: META } },
    "announce",
  );
  assert.equal(announce.status, 200, await announce.clone().text());
  assert.match(await announce.text(), /announced/);
  assert.equal((await next()).method, "notifications/tools/list_changed");
  // The idle stretch carried keep-alive comments (the wait is many intervals long).
  assert.ok(comments.includes("keepalive"), `no keep-alive comment on the idle stream: ${JSON.stringify(comments)}`);
  listening.abort();
});
