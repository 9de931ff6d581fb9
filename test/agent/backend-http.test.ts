import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHttpBackend } from "../../agent/backends/http.ts";
import type { Backend, ExchangeResult, StreamResult } from "../../agent/backends/types.ts";
import type { HeaderMap } from "../../shared/protocol/index.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { headerValue, tunnelFailure } from "../../shared/protocol/index.ts";
import { silentLogger } from "../../shared/log.ts";
import { assertTunnelFailure } from "../support/openapi.ts";
import { exchangeOf, resultText, rpc, startEverythingHttp } from "../support/everything.ts";
import type { RunningServer } from "../support/everything.ts";

/** Assert a failure result and check its provenance against the published schema. */
function assertFailure(result: ExchangeResult, source: string, kind?: string): void {
  assert.equal(result.kind, "failure", `expected a failure, got ${JSON.stringify(result)}`);
  if (result.kind !== "failure") return;
  assert.equal(result.failure.source, source, JSON.stringify(result));
  if (kind) assert.equal(result.failure.kind, kind, JSON.stringify(result));
  assertTunnelFailure(tunnelFailure(result.failure));
}

/** A standalone stream of `backend`, recording what it carries; `close()` ends it. */
function openStream(backend: Backend, headers: HeaderMap = {}) {
  const controller = new AbortController();
  const stream = {
    opened: undefined as HeaderMap | undefined,
    messages: [] as JsonRpcMessage[],
    ended: undefined as unknown as Promise<StreamResult>,
    close: () => controller.abort(),
  };
  stream.ended = backend.openStream!({
    headers,
    signal: controller.signal,
    opened: (h) => {
      stream.opened = h;
    },
    notify: (message) => {
      stream.messages.push(message);
    },
  });
  return stream;
}

/** Resolve once `check` holds (no fixed sleeps). */
async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A loopback HTTP server whose handler each test sets. */
async function listen(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}

function closeServer(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe("HTTP backend against server-everything", () => {
  let everything: RunningServer;
  before(async () => {
    everything = await startEverythingHttp();
  });
  after(async () => {
    await everything.close();
  });

  test("initialize, initialized, tools/list, echo, get-sum and progress over one session", async () => {
    const backend = createHttpBackend({ name: "everything", url: everything.url, log: silentLogger });
    await backend.start();
    const init = await backend.exchange(exchangeOf(rpc.initialize(1)));
    assert.equal(init.kind, "response");
    assert.ok(init.kind === "response");
    assert.equal(init.status, 200);
    assert.equal(init.message.id, 1);
    const session = headerValue(init.headers, "Mcp-Session-Id");
    assert.ok(session, `no session id in ${JSON.stringify(init.headers)}`);
    const headers = { "Mcp-Session-Id": [session], "Mcp-Protocol-Version": ["2025-06-18"] };

    const ack = await backend.exchange(exchangeOf(rpc.initialized(), { headers }));
    assert.deepEqual(ack.kind === "ack" && ack.status, 202);

    const list = await backend.exchange(exchangeOf(rpc.toolsList("list-1"), { headers }));
    assert.ok(list.kind === "response", JSON.stringify(list));
    assert.equal(list.message.id, "list-1");
    const names = (list.message.result as { tools: Array<{ name: string }> }).tools.map((t) => t.name);
    assert.ok(names.includes("echo") && names.includes("get-sum") && names.includes("trigger-long-running-operation"));

    const echo = await backend.exchange(exchangeOf(rpc.call(2, "echo", { message: "hi there" }), { headers }));
    assert.ok(echo.kind === "response", JSON.stringify(echo));
    assert.equal(resultText(echo.message), "Echo: hi there");

    const sum = await backend.exchange(exchangeOf(rpc.call(3, "get-sum", { a: 19, b: 23 }), { headers }));
    assert.ok(sum.kind === "response");
    assert.equal(resultText(sum.message), "The sum of 19 and 23 is 42.");

    const long = exchangeOf(
      rpc.call(4, "trigger-long-running-operation", { duration: 0.3, steps: 3 }, { progressToken: "tok-4" }),
      { headers },
    );
    const done = await backend.exchange(long);
    assert.ok(done.kind === "response", JSON.stringify(done));
    assert.equal(done.message.id, 4);
    assert.match(resultText(done.message) ?? "", /Long running operation completed/);
    const progress = long.notified.filter((m) => m.method === "notifications/progress");
    assert.deepEqual(
      progress.map((m) => (m.params as { progress: number }).progress),
      [1, 2, 3],
    );
    assert.ok(progress.every((m) => (m.params as { progressToken: unknown }).progressToken === "tok-4"));

    const health = backend.health();
    assert.equal(health.state, "up");
    assert.equal(health.inflight, 0);
    await backend.close();
  });

  test("JSON-RPC errors are forwarded exactly with the real status; DELETE ends the session", async () => {
    const backend = createHttpBackend({ name: "everything", url: everything.url, log: silentLogger });
    const noSession = await backend.exchange(exchangeOf(rpc.call(7, "echo", { message: "x" })));
    assert.ok(noSession.kind === "response", JSON.stringify(noSession));
    assert.equal(noSession.status, 400);
    // Without a session the server answers before parsing: id null, forwarded as it came.
    assert.deepEqual(noSession.message, {
      jsonrpc: "2.0",
      error: { code: -32000, message: "Bad Request: Server not initialized" },
      id: null,
    });

    const init = await backend.exchange(exchangeOf(rpc.initialize("i")));
    assert.ok(init.kind === "response");
    const headers = { "mcp-session-id": [headerValue(init.headers, "Mcp-Session-Id")!] };
    const unknown = await backend.exchange(
      exchangeOf({ jsonrpc: "2.0", id: 8, method: "no/such-method" }, { headers }),
    );
    assert.ok(unknown.kind === "response", JSON.stringify(unknown));
    assert.deepEqual(unknown.message, { jsonrpc: "2.0", id: 8, error: { code: -32601, message: "Method not found" } });

    const terminated = await backend.terminateSession(headers, new AbortController().signal);
    assert.deepEqual(terminated.kind === "terminated" && terminated.status, 200);
    const afterDelete = await backend.exchange(exchangeOf(rpc.toolsList(9), { headers }));
    assert.ok(afterDelete.kind === "response" && afterDelete.status === 400, JSON.stringify(afterDelete));
    assert.deepEqual(afterDelete.message, {
      jsonrpc: "2.0",
      error: { code: -32000, message: "Bad Request: No valid session ID provided" },
    });
    await backend.close();
  });
});

describe("HTTP backend: the standalone stream and the client's cancellation, against server-everything", () => {
  let everything: RunningServer;
  before(async () => {
    everything = await startEverythingHttp();
  });
  after(async () => {
    await everything.close();
  });

  test("the GET stream carries what the server sends outside requests; without a session the server's refusal passes on", async () => {
    const backend = createHttpBackend({ name: "everything", url: everything.url, log: silentLogger, timeoutMs: 500 });
    const refused = await openStream(backend).ended;
    assert.ok(refused.kind === "refused", JSON.stringify(refused));
    assert.deepEqual(
      [refused.status, refused.message],
      [400, { jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: No valid session ID provided" } }],
    );
    const init = await backend.exchange(exchangeOf(rpc.initialize(1)));
    assert.ok(init.kind === "response");
    const headers = {
      "Mcp-Session-Id": [headerValue(init.headers, "Mcp-Session-Id")!],
      "Mcp-Protocol-Version": ["2025-06-18"],
    };
    await backend.exchange(exchangeOf(rpc.initialized(), { headers }));
    const stream = openStream(backend, headers);
    await waitFor("the stream to open", () => stream.opened !== undefined);
    assert.equal(headerValue(stream.opened, "content-type"), "text/event-stream");
    assert.equal(backend.health().inflight, 0, "a stream is not a request in flight");

    const toggle = exchangeOf(rpc.call(2, "toggle-simulated-logging"), { headers });
    assert.equal((await backend.exchange(toggle)).kind, "response");
    await waitFor("a log message on the stream", () =>
      stream.messages.some((m) => m.method === "notifications/message"),
    );
    assert.deepEqual(
      toggle.notified.filter((m) => m.method === "notifications/message"),
      [],
      "not on the call's own response",
    );
    const off = await backend.exchange(exchangeOf(rpc.call(3, "toggle-simulated-logging"), { headers }));
    assert.match(
      off.kind === "response" ? (resultText(off.message) ?? "") : JSON.stringify(off),
      /Stopped simulated logging/,
    );
    // Longer than the backend's timeout: it bounds only the wait for the stream's headers.
    await new Promise((resolve) => setTimeout(resolve, 600));
    stream.close();
    assert.deepEqual(await stream.ended, { kind: "ended" });
    await backend.close();
  });

  test("a request the client cancels ends at once as cancelled; an unrelated one with the same id in another session does not", async () => {
    const backend = createHttpBackend({ name: "everything", url: everything.url, log: silentLogger });
    const session = async (id: string) => {
      const init = await backend.exchange(exchangeOf(rpc.initialize(id)));
      assert.ok(init.kind === "response");
      const headers = {
        "Mcp-Session-Id": [headerValue(init.headers, "Mcp-Session-Id")!],
        "Mcp-Protocol-Version": ["2025-06-18"],
      };
      await backend.exchange(exchangeOf(rpc.initialized(), { headers }));
      return headers;
    };
    const [mine, theirs] = await Promise.all([session("a"), session("b")]);
    const started = Date.now();
    const long = (headers: HeaderMap, duration: number) =>
      exchangeOf(
        rpc.call(7, "trigger-long-running-operation", { duration, steps: duration * 10 }, { progressToken: 7 }),
        { headers },
      );
    const cancelled = long(mine, 30);
    const other = long(theirs, 0.5);
    const [result, otherResult] = await Promise.all([
      (async () => {
        const running = backend.exchange(cancelled);
        await waitFor("progress", () => cancelled.notified.length > 0);
        const ack = await backend.exchange(
          exchangeOf(
            { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7, reason: "user" } },
            { headers: mine },
          ),
        );
        assert.equal(ack.kind, "ack");
        return running;
      })(),
      backend.exchange(other),
    ]);
    assert.deepEqual(result, { kind: "cancelled" });
    assert.ok(Date.now() - started < 10_000, "the 30 s operation was not waited for");
    assert.ok(otherResult.kind === "response", JSON.stringify(otherResult));
    assert.match(resultText(otherResult.message) ?? "", /Long running operation completed/);
    assert.equal(backend.health().inflight, 0);
    await backend.close();
  });
});

describe("HTTP backend failures", () => {
  let handler: http.RequestListener = (_req, res) => res.end();
  let target: { url: string; server: http.Server };
  before(async () => {
    target = await listen((req, res) => handler(req, res));
  });
  after(async () => {
    await closeServer(target.server);
  });
  const backend = () => createHttpBackend({ name: "fake", url: target.url, log: silentLogger, maxResponseBytes: 4096 });

  test("an HTTP 500 with a non-JSON body is a target_http failure with that status", async () => {
    handler = (_req, res) => {
      res.writeHead(500, { "content-type": "text/html" });
      res.end("<h1>oops</h1>");
    };
    assertFailure(await backend().exchange(exchangeOf(rpc.toolsList(1))), "target_http", "http_status");
    const result = await backend().exchange(exchangeOf(rpc.toolsList(1)));
    assert.ok(result.kind === "failure" && result.failure.source === "target_http" && result.failure.status === 500);
  });

  test("a JSON-RPC error under HTTP 500 is forwarded, a broken error object is not", async () => {
    const body = {
      jsonrpc: "2.0",
      id: 1,
      error: { code: -32003, message: "denied", data: { why: "policy" } },
      extra: true,
    };
    handler = (_req, res) => {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const forwarded = await backend().exchange(exchangeOf(rpc.toolsList(1)));
    assert.deepEqual(forwarded, {
      kind: "response",
      status: 500,
      headers: { "Content-Type": ["application/json"] },
      message: body,
    });
    handler = (_req, res) => {
      res.writeHead(502, { "content-type": "application/json" });
      res.end('{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}');
    };
    assertFailure(await backend().exchange(exchangeOf(rpc.toolsList(1))), "target_http", "invalid_mcp_error");
  });

  test("malformed JSON, a missing body, a foreign id and an oversized body are protocol failures", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"jsonrpc":"2.0",');
    };
    assertFailure(await backend().exchange(exchangeOf(rpc.toolsList(1))), "protocol", "malformed_json");
    handler = (_req, res) => {
      res.writeHead(202);
      res.end();
    };
    assertFailure(await backend().exchange(exchangeOf(rpc.toolsList(1))), "protocol", "response_body_missing");
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"jsonrpc":"2.0","id":99,"result":{}}');
    };
    assertFailure(await backend().exchange(exchangeOf(rpc.toolsList(1))), "protocol", "invalid_protocol_response");
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { pad: "x".repeat(10_000) } }));
    };
    assertFailure(await backend().exchange(exchangeOf(rpc.toolsList(1))), "protocol", "response_body_too_large");
  });

  test("an SSE stream that ends or breaks before the answer fails after delivering what came", async () => {
    const progress = { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } };
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "mcp-session-id": "s-1" });
      res.write(`id: e1\ndata: \n\nevent: message\ndata: ${JSON.stringify(progress)}\n\n`);
      setTimeout(() => res.end(), 20);
    };
    const ended = exchangeOf(rpc.call(1, "x"));
    assertFailure(await backend().exchange(ended), "protocol", "unexpected_eof");
    assert.deepEqual(ended.notified, [progress]);
    assert.deepEqual(ended.notifiedHeaders[0], { "Content-Type": ["text/event-stream"], "Mcp-Session-Id": ["s-1"] });

    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify(progress)}\n\n`);
      setTimeout(() => res.socket?.destroy(), 20);
    };
    const cut = exchangeOf(rpc.call(1, "x"));
    const result = await backend().exchange(cut);
    assert.ok(result.kind === "failure" && result.failure.source === "protocol", JSON.stringify(result));
    assertTunnelFailure(tunnelFailure(result.failure));
    assert.equal(tunnelFailure(result.failure).upstream_response_received, true);
    assert.deepEqual(cut.notified, [progress]);
  });

  test("the final SSE message ends the exchange even if the stream stays open", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(
        `data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "a" } })}\n\n`,
      );
      res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: 5, method: "roots/list" })}\n\n`);
      res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: "c", result: { ok: true } })}\n\n`);
    };
    const exchange = exchangeOf(rpc.call("c", "x"));
    const result = await backend().exchange(exchange);
    assert.deepEqual(result.kind === "response" && result.message, { jsonrpc: "2.0", id: "c", result: { ok: true } });
    assert.deepEqual(
      exchange.notified.map((m) => m.method),
      ["notifications/message", "roots/list"],
    );
  });

  test("headers: static (operator) beats command beats default; hop-by-hop never leaves; notifications get an ack", async () => {
    let seen: http.IncomingHttpHeaders = {};
    handler = (req, res) => {
      seen = req.headers;
      res.writeHead(202);
      res.end();
    };
    const b = createHttpBackend({
      name: "fake",
      url: target.url,
      log: silentLogger,
      headers: { "X-Team": "static", Authorization: "Bearer static", "X-Static-Only": ["a", "b"] },
    });
    const result = await b.exchange(
      exchangeOf(rpc.initialized(), {
        headers: {
          "x-team": ["command"],
          Connection: ["x-nominated"],
          "X-Nominated": ["1"],
          "Keep-Alive": ["timeout=5"],
          Upgrade: ["h2c"],
          "Proxy-Authorization": ["p"],
        },
      }),
    );
    assert.deepEqual(result, { kind: "ack", status: 202, headers: {} });
    assert.equal(seen["x-team"], "static");
    assert.equal(seen.authorization, "Bearer static");
    assert.equal(seen["x-static-only"], "a, b");
    assert.equal(seen.accept, "application/json, text/event-stream");
    assert.equal(seen["content-type"], "application/json");
    for (const name of ["x-nominated", "keep-alive", "upgrade", "proxy-authorization"])
      assert.equal(seen[name], undefined, name);
  });

  test("the backend timeout and the exchange signal both end a hung call", async () => {
    handler = () => {
      /* never answers */
    };
    const slow = createHttpBackend({ name: "fake", url: target.url, log: silentLogger, timeoutMs: 100 });
    assertFailure(await slow.exchange(exchangeOf(rpc.toolsList(1))), "timeout", "timeout");
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    const b = backend();
    assertFailure(await b.exchange(exchangeOf(rpc.toolsList(1), { signal: abort.signal })), "timeout");
    assert.equal(b.health().inflight, 0);
    assert.equal(b.health().state, "up", "a caller's deadline does not mark the server down");
  });

  test("standalone stream: GET with Accept text/event-stream and no Content-Type; messages until the server ends it; 405 and non-streams as refusals and failures", async () => {
    let seen: http.IncomingHttpHeaders = {};
    let method = "";
    const message = { jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "file:///a" } };
    handler = (req, res) => {
      [seen, method] = [req.headers, req.method ?? ""];
      res.writeHead(200, { "content-type": "text/event-stream", "mcp-session-id": "s-9" });
      res.write(`id: 1\ndata: \n\ndata: ${JSON.stringify(message)}\n\n`);
      setTimeout(() => res.end(`data: ${JSON.stringify(message)}\n\n`), 150);
    };
    const b = createHttpBackend({ name: "fake", url: target.url, log: silentLogger, timeoutMs: 50 });
    const stream = openStream(b, { "Mcp-Session-Id": ["s-9"], "Last-Event-ID": ["0"] });
    assert.deepEqual(await stream.ended, { kind: "ended" }, "the timeout bounds only the wait for headers");
    assert.deepEqual(
      [method, seen.accept, seen["content-type"], seen["mcp-session-id"], seen["last-event-id"]],
      ["GET", "text/event-stream", undefined, "s-9", "0"],
    );
    assert.deepEqual(stream.opened, { "Content-Type": ["text/event-stream"], "Mcp-Session-Id": ["s-9"] });
    assert.deepEqual(stream.messages, [message, message]);

    handler = (_req, res) => {
      res.writeHead(405, { allow: "POST, DELETE" });
      res.end();
    };
    assert.deepEqual(await openStream(backend()).ended, { kind: "refused", status: 405, headers: {} });
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    };
    const notStream = await openStream(backend()).ended;
    assert.ok(
      notStream.kind === "failure" && notStream.failure.kind === "non_protocol_response",
      JSON.stringify(notStream),
    );
    handler = () => {
      /* never answers */
    };
    const hung = await openStream(b).ended;
    assert.ok(hung.kind === "failure" && hung.failure.source === "timeout", JSON.stringify(hung));
  });

  test("close() ends in-flight calls as transport_closed", async () => {
    handler = () => {
      /* never answers */
    };
    const b = backend();
    const pending = b.exchange(exchangeOf(rpc.toolsList(1)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await b.close();
    assertFailure(await pending, "transport_closed");
    assert.equal(b.health().state, "stopped");
  });

  test("connection refused is a connect failure; repeated ones mark the backend failed", async () => {
    const closed = await listen(() => {});
    await closeServer(closed.server);
    const b = createHttpBackend({ name: "gone", url: closed.url, log: silentLogger, failureThreshold: 2 });
    assertFailure(await b.exchange(exchangeOf(rpc.toolsList(1))), "connect", "connection_refused");
    assert.equal(b.health().state, "up");
    assertFailure(await b.exchange(exchangeOf(rpc.toolsList(2))), "connect", "connection_refused");
    const health = b.health();
    assert.equal(health.state, "failed");
    assert.match(health.reason ?? "", /last 2 calls to http:\/\/127\.0\.0\.1:\d+ failed: the connection failed/);
    const terminated = await b.terminateSession({ "Mcp-Session-Id": ["s"] }, new AbortController().signal);
    assert.ok(terminated.kind === "failure" && terminated.failure.source === "connect");
  });
});

describe("HTTP backend with a private CA", () => {
  let dir: string;
  let server: https.Server;
  let url: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "airlock-ca-"));
    const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
    ssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=Airlock Test CA",
    );
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1");
    execFileSync(
      "sh",
      [
        "-c",
        "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf",
      ],
      { cwd: dir },
    );
    ssl(
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "leaf.pem",
      "-days",
      "1",
      "-extfile",
      "ext.cnf",
    );
    server = https.createServer(
      { key: readFileSync(join(dir, "leaf.key")), cert: readFileSync(join(dir, "leaf.pem")) },
      (req, res) => {
        let body = "";
        req.on("data", (c) => {
          body += c;
        });
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ jsonrpc: "2.0", id: JSON.parse(body).id, result: { tls: true } }));
        });
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  after(async () => {
    await closeServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  test("without the CA the call fails as tls; with caFile it succeeds", async () => {
    const plain = createHttpBackend({ name: "tls", url, log: silentLogger });
    assertFailure(await plain.exchange(exchangeOf(rpc.toolsList(1))), "tls", "tls");
    await plain.close();

    const trusted = createHttpBackend({ name: "tls", url, caFile: join(dir, "ca.pem"), log: silentLogger });
    await trusted.start();
    assert.equal(trusted.health().state, "up");
    const result = await trusted.exchange(exchangeOf(rpc.toolsList(1)));
    assert.deepEqual(result.kind === "response" && result.message, { jsonrpc: "2.0", id: 1, result: { tls: true } });
    await trusted.close();
  });

  test("mTLS: a server that demands a client certificate accepts the configured one and refuses a call without it", async () => {
    const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
    ssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "client.key",
      "-out",
      "client.csr",
      "-subj",
      "/CN=airlock-agent",
    );
    // A v3 certificate (an extension file makes it one): rustls, under Deno, refuses v1.
    execFileSync("sh", ["-c", "printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > client.cnf"], {
      cwd: dir,
    });
    ssl(
      "x509",
      "-req",
      "-in",
      "client.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "client.pem",
      "-days",
      "1",
      "-extfile",
      "client.cnf",
    );
    const strict = https.createServer(
      {
        key: readFileSync(join(dir, "leaf.key")),
        cert: readFileSync(join(dir, "leaf.pem")),
        ca: readFileSync(join(dir, "ca.pem")),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (_req, res) => {
        // rejectUnauthorized: only a peer with a certificate from our CA gets this far.
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { client: "verified" } }));
      },
    );
    await new Promise<void>((resolve) => strict.listen(0, "127.0.0.1", resolve));
    const strictUrl = `https://127.0.0.1:${(strict.address() as AddressInfo).port}/mcp`;
    try {
      const anonymous = createHttpBackend({
        name: "mtls",
        url: strictUrl,
        caFile: join(dir, "ca.pem"),
        log: silentLogger,
      });
      const refused = await anonymous.exchange(exchangeOf(rpc.toolsList(1)));
      assert.equal(refused.kind, "failure");
      await anonymous.close();
      const identified = createHttpBackend({
        name: "mtls",
        url: strictUrl,
        caFile: join(dir, "ca.pem"),
        clientCert: join(dir, "client.pem"),
        clientKey: join(dir, "client.key"),
        log: silentLogger,
      });
      const result = await identified.exchange(exchangeOf(rpc.toolsList(1)));
      assert.deepEqual(result.kind === "response" && result.message, {
        jsonrpc: "2.0",
        id: 1,
        result: { client: "verified" },
      });
      await identified.close();
    } finally {
      await closeServer(strict);
    }
  });

  test("an unreadable CA file shows in health and fails calls without throwing", async () => {
    const broken = createHttpBackend({ name: "tls", url, caFile: join(dir, "missing.pem"), log: silentLogger });
    await broken.start();
    const health = broken.health();
    assert.equal(health.state, "failed");
    assert.match(health.reason ?? "", /missing\.pem could not be read \(ENOENT\)/);
    assertFailure(await broken.exchange(exchangeOf(rpc.toolsList(1))), "client_internal");
    await broken.close();
  });
});
