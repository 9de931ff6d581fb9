/**
 * `subscriptions/listen` across the eras in the agent's bridge (agent/bridge/listen.ts),
 * with real servers: a modern listen to server-everything (2025-era, stdio) becomes its
 * session's standalone stream plus `resources/subscribe`, and a legacy client's GET stream
 * to the SDK v2 fixture refusing 2025 clients (HTTP) becomes a listen.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { bridgeEras } from "../../agent/bridge/backend.ts";
import { decorate } from "../../agent/backends/decorate.ts";
import { createHttpBackend } from "../../agent/backends/http.ts";
import { createStdioBackend } from "../../agent/backends/stdio.ts";
import type { Backend, ExchangeResult } from "../../agent/backends/types.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { silentLogger } from "../../shared/log.ts";
import { headerValue } from "../../shared/protocol/headers.ts";
import {
  everythingStdioCommand,
  exchangeOf,
  modernStdioCommand,
  REPO_ROOT,
  rpc,
  startModernHttp,
  type RunningServer,
} from "../support/everything.ts";

const SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId";
const DOCUMENT = "demo://resource/static/document/architecture.md";

let modernServer: RunningServer | undefined;
after(() => modernServer?.close());

function modern(id: number | string, method: string, params: Record<string, unknown> = {}): JsonRpcMessage {
  const _meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": { name: "era-listen", version: "1.0.0" },
  };
  return { jsonrpc: "2.0", id, method, params: { ...params, _meta } };
}

/** Resolves once `list` holds a message `matches` accepts (the messages arrive from a real server). */
async function arrival(list: JsonRpcMessage[], matches: (m: JsonRpcMessage) => boolean): Promise<JsonRpcMessage> {
  for (;;) {
    const found = list.find(matches);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** server-everything over stdio, one shared child, stopped after the test. */
function everything(t: { after(fn: () => Promise<void>): void }): Backend {
  const server = createStdioBackend({
    name: "everything",
    command: everythingStdioCommand(),
    cwd: REPO_ROOT,
    log: silentLogger,
  });
  t.after(() => server.close());
  return server;
}

function result(answer: ExchangeResult): Record<string, unknown> {
  assert.ok(answer.kind === "response" && "result" in answer.message, `expected a result: ${JSON.stringify(answer)}`);
  return answer.message.result as Record<string, unknown>;
}

test("a modern listen to a legacy stdio server: acknowledged, the session subscribes, updates arrive stamped, ending unsubscribes", async (t) => {
  const server = everything(t);
  const sent: JsonRpcMessage[] = [];
  const recorded: Backend = decorate(server, {
    exchange: (ex) => {
      sent.push(ex.message);
      return server.exchange(ex);
    },
  });
  const bridged = bridgeEras(recorded, { log: silentLogger });

  const discover = result(await bridged.exchange(exchangeOf(modern(1, "server/discover"))));
  const resources = (discover.capabilities as Record<string, Record<string, unknown>>).resources!;
  assert.equal(resources.subscribe, true, "subscribe is offered now that listen is bridged");

  const closing = new AbortController();
  const listen = exchangeOf(
    modern("listen-1", "subscriptions/listen", {
      notifications: { resourceSubscriptions: [DOCUMENT], promptsListChanged: true },
    }),
    { signal: closing.signal },
  );
  const ended = bridged.exchange(listen);
  const ack = await arrival(listen.notified, (m) => m.method === "notifications/subscriptions/acknowledged");
  const honored = (ack.params as { notifications: Record<string, unknown>; _meta: Record<string, unknown> })
    .notifications;
  assert.deepEqual(honored.resourceSubscriptions, [DOCUMENT]);
  assert.equal((ack.params as { _meta: Record<string, unknown> })._meta[SUBSCRIPTION_ID], "listen-1");
  const subscribe = sent.find((m) => m.method === "resources/subscribe");
  assert.deepEqual(subscribe?.params, { uri: DOCUMENT });

  // server-everything sends an update for every subscribed URI of the session at once when asked to.
  const toggle = exchangeOf(modern(2, "tools/call", { name: "toggle-subscriber-updates", arguments: {} }));
  result(await bridged.exchange(toggle));
  const update = await arrival(listen.notified, (m) => m.method === "notifications/resources/updated");
  assert.deepEqual(update.params, { uri: DOCUMENT, _meta: { [SUBSCRIPTION_ID]: "listen-1" } });
  assert.ok(
    !toggle.notified.some((m) => m.method === "notifications/resources/updated"),
    "a change notification goes to the listen, not to the call it happened during",
  );
  // Stop the updates again (server-everything keeps them per session).
  result(
    await bridged.exchange(exchangeOf(modern(3, "tools/call", { name: "toggle-subscriber-updates", arguments: {} }))),
  );

  closing.abort();
  const end = result(await ended);
  assert.equal((end._meta as Record<string, unknown>)[SUBSCRIPTION_ID], "listen-1");
  await arrival(sent, (m) => m.method === "resources/unsubscribe");
});

test("a listen the server cannot honour at all is acknowledged empty and ends at once", async (t) => {
  const server = everything(t);
  const bridged = bridgeEras(server, { log: silentLogger });
  const listen = exchangeOf(modern("listen-2", "subscriptions/listen", { notifications: { madeUp: true } }));
  const end = result(await bridged.exchange(listen));
  assert.equal(end.resultType, "complete");
  const ack = listen.notified.find((m) => m.method === "notifications/subscriptions/acknowledged");
  assert.deepEqual(ack?.params, { notifications: {}, _meta: { [SUBSCRIPTION_ID]: "listen-2" } });
});

test("a legacy client's GET stream to a modern-only HTTP server is a listen: list changes arrive unstamped", async (t) => {
  modernServer = await startModernHttp(true);
  const server = createHttpBackend({ name: "modern", url: modernServer.url, log: silentLogger });
  t.after(() => server.close());
  const sent: Array<{ message: JsonRpcMessage; headers: Record<string, string[]> }> = [];
  const recorded = decorate(server, {
    exchange: (ex) => {
      sent.push({ message: ex.message, headers: ex.headers });
      return server.exchange(ex);
    },
  });
  const bridged = bridgeEras(recorded, { log: silentLogger });
  const initialize = await bridged.exchange(exchangeOf(rpc.initialize(1)));
  assert.equal(initialize.kind, "response");
  const sessionId = headerValue(initialize.kind === "response" ? initialize.headers : {}, "mcp-session-id")!;
  const headers = { "Mcp-Session-Id": [sessionId] };
  const subscribed = await bridged.exchange(
    exchangeOf({ jsonrpc: "2.0", id: 2, method: "resources/subscribe", params: { uri: "note://hello" } }, { headers }),
  );
  assert.deepEqual(result(subscribed), {}, "resources/subscribe is answered by the bridge");

  const closing = new AbortController();
  const streamed: JsonRpcMessage[] = [];
  let opened = false;
  const ended = bridged.openStream!({
    headers: { ...headers, Accept: ["text/event-stream"], "Last-Event-ID": ["e-7"] },
    signal: closing.signal,
    opened: () => {
      opened = true;
    },
    notify: (message) => streamed.push(message),
  });
  // The listen's acknowledgement opens the client's stream; then the server announces a change.
  while (!opened) await new Promise((resolve) => setTimeout(resolve, 10));
  const announce = await bridged.exchange(exchangeOf(rpc.call(3, "announce"), { headers }));
  assert.match(JSON.stringify(result(announce)), /announced/);
  const changed = await arrival(streamed, (m) => m.method === "notifications/tools/list_changed");
  assert.ok(!JSON.stringify(changed).includes(SUBSCRIPTION_ID), "a legacy client sees no listen stamp");
  assert.ok(!streamed.some((m) => m.method === "notifications/subscriptions/acknowledged"));
  const listen = sent.find((call) => call.message.method === "subscriptions/listen")!;
  assert.deepEqual((listen.message.params as { notifications: unknown }).notifications, {
    toolsListChanged: true,
    promptsListChanged: true,
    resourcesListChanged: true,
    resourceSubscriptions: ["note://hello"],
  });
  assert.equal(headerValue(listen.headers, "accept"), "application/json, text/event-stream", "a POST accepts both");
  assert.equal(headerValue(listen.headers, "last-event-id"), undefined);
  assert.equal(headerValue(listen.headers, "mcp-session-id"), undefined, "the bridge's session id stays behind");

  // Subscribing while the stream is open reopens the listen with the new filter.
  await bridged.exchange(
    exchangeOf({ jsonrpc: "2.0", id: 4, method: "resources/subscribe", params: { uri: "note://other" } }, { headers }),
  );
  const listens = () => sent.filter((call) => call.message.method === "subscriptions/listen");
  while (listens().length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  const reopened = listens()[1]!.message.params as { notifications: { resourceSubscriptions: string[] } };
  assert.deepEqual(reopened.notifications.resourceSubscriptions, ["note://hello", "note://other"]);
  closing.abort();
  assert.deepEqual(await ended, { kind: "ended" });
});

test("a modern listen passing through to a modern stdio server gets its own notifications, under its own id", async (t) => {
  const server = createStdioBackend({
    name: "modern",
    command: modernStdioCommand(true),
    cwd: REPO_ROOT,
    log: silentLogger,
  });
  t.after(() => server.close());
  const bridged = bridgeEras(server, { log: silentLogger });
  const closing = new AbortController();
  const listen = exchangeOf(modern("listen-3", "subscriptions/listen", { notifications: { toolsListChanged: true } }), {
    signal: closing.signal,
  });
  const ended = bridged.exchange(listen);
  const ack = await arrival(listen.notified, (m) => m.method === "notifications/subscriptions/acknowledged");
  assert.deepEqual(ack.params, { notifications: { toolsListChanged: true }, _meta: { [SUBSCRIPTION_ID]: "listen-3" } });

  // The call is the newest request in flight on the child; the change still belongs to the listen.
  const announce = exchangeOf(modern(4, "tools/call", { name: "announce", arguments: {} }));
  assert.match(JSON.stringify(result(await bridged.exchange(announce))), /announced/);
  const changed = await arrival(listen.notified, (m) => m.method === "notifications/tools/list_changed");
  assert.deepEqual((changed.params as { _meta: unknown })._meta, { [SUBSCRIPTION_ID]: "listen-3" });
  assert.ok(!announce.notified.some((m) => m.method === "notifications/tools/list_changed"));
  closing.abort();
  await ended;
});

test("notifications/cancelled naming a listen ends it gracefully, only for the client that opened it", async (t) => {
  const bridged = bridgeEras(everything(t), { log: silentLogger });
  const listen = exchangeOf(modern("listen-4", "subscriptions/listen", { notifications: { toolsListChanged: true } }));
  const ended = bridged.exchange(listen);
  await arrival(listen.notified, (m) => m.method === "notifications/subscriptions/acknowledged");
  const cancel = (client: string) => {
    const message = modern(0, "notifications/cancelled", { requestId: "listen-4" });
    const { id: _id, ...notification } = message;
    const params = notification.params as { _meta: Record<string, unknown> };
    params._meta["io.modelcontextprotocol/clientInfo"] = { name: client, version: "1.0.0" };
    return bridged.exchange(exchangeOf(notification));
  };
  await cancel("someone-else");
  const settled = await Promise.race([
    ended.then(() => "ended"),
    new Promise((resolve) => setImmediate(resolve, "open")),
  ]);
  assert.equal(settled, "open", "another client's listen id is not this listen");
  assert.equal((await cancel("era-listen")).kind, "ack");
  const end = result(await ended);
  const meta = end._meta as Record<string, { name?: string } | string>;
  assert.equal(meta[SUBSCRIPTION_ID], "listen-4");
  assert.equal((meta["io.modelcontextprotocol/serverInfo"] as { name: string }).name, "mcp-servers/everything");
});
