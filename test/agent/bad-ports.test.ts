/**
 * WHATWG "bad ports" (6000, 10080, …): Node's and Deno's `fetch` refuse them, tunnel-client
 * (Go) does not, so an MCP server or a control plane on one must stay reachable through
 * Airlock's HTTP seam (agent/runtime/http-client.ts) on every runtime — streaming included,
 * since MCP servers answer with Server-Sent Events. Runs under Node, Deno and Bun.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type ServerResponse } from "node:http";
import { createHttpClient, isBadPort } from "../../agent/runtime/http-client.ts";
import { startMcpStub } from "../../agent/demo/mcp-stub.ts";

/** Bad ports a test may bind without privileges, in the order tried. */
const CANDIDATES = [6000, 10080, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 5060, 5061, 6566, 4045, 4190, 3659, 2049];

/** Bind `server` on the first free candidate bad port of 127.0.0.1. */
async function listenOnBadPort(server: Server): Promise<number> {
  for (const port of CANDIDATES) {
    const bound = await new Promise<boolean>((resolve) => {
      const onError = () => resolve(false);
      server.once("error", onError);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", onError);
        resolve(true);
      });
    });
    if (bound) return port;
  }
  assert.fail(`none of the bad ports ${CANDIDATES.join(", ")} is free on 127.0.0.1`);
}

describe("WHATWG bad ports are reachable, as with tunnel-client", () => {
  let server: Server;
  let port = 0;
  let held: ServerResponse | undefined;
  let streamEnded = false;
  before(async () => {
    server = createServer((request, response) => {
      if (request.url === "/events") {
        // The first event goes out at once; the stream ends only when the test says so, so a
        // client that waited for the whole body could not see the first event first.
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.write("data: first\n\n");
        held = response;
        return;
      }
      if (request.url === "/release") {
        held?.end("data: last\n\n");
        streamEnded = true;
        response.end("released");
        return;
      }
      let body = "";
      request.on("data", (chunk: Buffer) => (body += chunk.toString()));
      request.on("end", () => response.end(`${request.method} ${request.url} ${body}`));
    });
    port = await listenOnBadPort(server);
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test("the port is one the fetch standard blocks", () => {
    assert.equal(isBadPort(`http://127.0.0.1:${port}/`), true);
    assert.equal(isBadPort("http://127.0.0.1:8080/"), false);
    assert.equal(isBadPort("https://example.com/"), false);
  });

  test("GET and POST answer through the HTTP seam", async () => {
    const client = createHttpClient();
    try {
      const got = await client.fetch(`http://127.0.0.1:${port}/plain`);
      assert.equal(got.status, 200);
      assert.equal(await got.text(), "GET /plain ");
      const posted = await client.fetch(`http://127.0.0.1:${port}/echo`, { method: "POST", body: '{"a":1}' });
      assert.equal(await posted.text(), 'POST /echo {"a":1}');
    } finally {
      await client.close();
    }
  });

  test("a streamed answer arrives event by event", async () => {
    const client = createHttpClient();
    try {
      const response = await client.fetch(`http://127.0.0.1:${port}/events`);
      const reader = response.body!.getReader();
      const first = await reader.read();
      assert.equal(new TextDecoder().decode(first.value), "data: first\n\n");
      assert.equal(streamEnded, false, "the first event came before the stream ended");
      await (await client.fetch(`http://127.0.0.1:${port}/release`)).text();
      let rest = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
        rest += new TextDecoder().decode(chunk.value);
      assert.equal(rest, "data: last\n\n");
    } finally {
      await client.close();
    }
  });
});

describe("an MCP server on a bad port", () => {
  test("answers initialize through the seam the MCP backends use", async () => {
    const probe = createServer();
    const port = await listenOnBadPort(probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const stub = await startMcpStub({ listenAddr: `127.0.0.1:${port}`, serverName: "bad-port-stub" });
    const client = createHttpClient();
    try {
      const response = await client.fetch(stub.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "initialize",
          params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
        }),
      });
      assert.equal(response.status, 200);
      const answer = (await response.json()) as { result: { serverInfo: { name: string } } };
      assert.equal(answer.result.serverInfo.name, "bad-port-stub");
    } finally {
      await client.close();
      await stub.close();
    }
  });
});
