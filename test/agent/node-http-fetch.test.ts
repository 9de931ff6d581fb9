/**
 * The control plane's `fetch` on Node (`node:http` keep-alive agents), against a real loopback
 * server: what it sends, what it gives back, that connections are reused, that an abort stops the
 * request, and that a refused connection reads as "never sent" to the control-plane client.
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
