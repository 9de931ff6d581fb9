/**
 * The control plane's `fetch` on Node (`node:http` keep-alive agents), against a real loopback
 * server: what it sends, what it gives back, that connections are reused, that an abort stops the
 * request, and that a refused connection reads as "never sent" to the control-plane client. And
 * the MCP HTTP backends' streamed variant: a body readable before the server ends it, an abort
 * that ends that body, a redirect followed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createNodeHttpFetch } from "../../agent/runtime/node-http-fetch.ts";
import { connectionNeverMade } from "../../agent/backends/failure-kind.ts";
import { freePort } from "../support/ports.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let server: Server;
let base: string;
let connections = 0;
const seen: Seen[] = [];
const client = createNodeHttpFetch();
const streamed = createNodeHttpFetch({ bodies: "streamed" });
/** Ends the `/stream` answer the server holds open. */
let endStream: (() => void) | undefined;

before(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (req.url === "/empty") {
        res.writeHead(204);
        res.end();
        return;
      }
      if (req.url === "/hold") return; // never answers: the caller must abort
      if (req.url === "/stream") {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        res.write("data: first\n\n");
        endStream = () => res.end("data: last\n\n");
        return;
      }
      if (req.url === "/moved") {
        res.writeHead(307, { Location: "/landed" });
        res.end();
        return;
      }
      res.writeHead(201, { "Content-Type": "application/json", "Retry-After": "3", "X-Two": "a" });
      res.end(JSON.stringify({ echoed: body }));
    });
  });
  server.on("connection", () => {
    connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await client.close();
  await streamed.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

test("sends method, headers and a string body with its length; returns status, headers and body", async () => {
  const response = await client.fetch(`${base}/v1/x?q=1`, {
    method: "POST",
    headers: new Headers({ Authorization: "Bearer k", "Content-Type": "application/json" }),
    body: '{"a":1}',
  });
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("retry-after"), "3");
  assert.deepEqual(await response.json(), { echoed: '{"a":1}' });
  const request = seen.at(-1)!;
  assert.equal(request.method, "POST");
  assert.equal(request.url, "/v1/x?q=1");
  assert.equal(request.headers.authorization, "Bearer k");
  assert.equal(request.headers["content-length"], "7");
});

test("a 204 has no body; sequential requests share one kept-alive connection", async () => {
  const before = connections;
  for (let i = 0; i < 3; i++) {
    const response = await client.fetch(`${base}/empty`);
    assert.equal(response.status, 204);
    assert.equal(response.body, null);
  }
  assert.ok(connections - before <= 1, `opened ${connections - before} connections for 3 requests`);
});

test("an abort rejects the call with the signal's reason", async () => {
  const controller = new AbortController();
  const call = client.fetch(`${base}/hold`, { signal: controller.signal });
  await new Promise((resolve) => setTimeout(resolve, 50));
  controller.abort(new Error("stop now"));
  await assert.rejects(call, /stop now/);
});

test("a refused connection is an error the control-plane client reads as never sent", async () => {
  const port = await freePort();
  const error = await client.fetch(`http://127.0.0.1:${port}/`).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error, "the call must fail");
  assert.equal(connectionNeverMade(error), true);
});

test("anything but a string or byte body is refused with a clear error", async () => {
  await assert.rejects(
    client.fetch(`${base}/`, { method: "POST", body: new URLSearchParams({ a: "1" }) }),
    /only string or byte bodies/,
  );
});

test("streamed: the body is readable while the server still holds it open, and ends when the server ends it", async () => {
  const response = await streamed.fetch(`${base}/stream`, { headers: { Accept: "text/event-stream" } });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const first = await reader.read();
  assert.equal(decoder.decode(first.value), "data: first\n\n", "the first event arrives before the server ends");
  endStream!();
  let rest = "";
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += decoder.decode(chunk.value);
  assert.equal(rest, "data: last\n\n");
});

test("streamed: an abort after the headers ends the body with the signal's reason", async () => {
  const controller = new AbortController();
  const response = await streamed.fetch(`${base}/stream`, { signal: controller.signal });
  const reader = response.body!.getReader();
  await reader.read();
  controller.abort(new Error("client went away"));
  await assert.rejects(async () => {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read());
  }, /client went away/);
  endStream!();
});

test("streamed: a redirect is followed when the caller asks to follow it", async () => {
  const response = await streamed.fetch(`${base}/moved`, { method: "POST", body: "x", redirect: "follow" });
  assert.equal(response.status, 201);
  assert.deepEqual(await response.json(), { echoed: "x" });
  assert.equal(seen.at(-1)!.url, "/landed");
});
