/**
 * Attack class "the local hub reads what it should refuse": the front proxy of `airlock
 * hub` (real workerd through Miniflare) must answer an unauthenticated request from its
 * headers alone, refuse a body over the hub's limit as soon as it is announced or
 * received, and drop a client that sends its headers or body too slowly. A 5 MiB
 * authenticated POST always gets 413 `request_body_too_large`, never 502.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { startLocalHub, type LocalHub } from "../../agent/hub-local/run.ts";
import { AGENT_KEY, CLIENT_TOKEN, HUB_TOKEN, tunnelId } from "../support/hub.ts";

const TUNNEL = tunnelId(1);
const PASS_THROUGH = tunnelId(2);
const LIMIT = 4 * 1024 * 1024;
/** Only a broken front makes a test wait this long; a working one answers at once. */
const HANG = 20_000;

let hub: LocalHub;
let port: number;

before(async () => {
  hub = await startLocalHub({
    tunnels: [
      { id: TUNNEL, agentKeys: [AGENT_KEY], clientTokens: [CLIENT_TOKEN] },
      { id: PASS_THROUGH, agentKeys: [AGENT_KEY], clientTokens: [HUB_TOKEN], passClientAuthorization: true },
    ],
    settings: { maxRequestBytes: LIMIT, maxResponseBytes: LIMIT },
    timeouts: { headersMs: 1500, requestMs: 3000, checkIntervalMs: 100 },
  });
  port = Number(hub.url.port);
});
after(async () => {
  await hub?.close();
});

/**
 * Send `head` (request line and headers, without the blank line unless given) and then
 * `body`, over a raw socket; resolve with the status line of whatever comes back first,
 * or reject if nothing does within {@link HANG}.
 */
function rawStatus(head: string, body = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${head.split("\r\n")[0]}`));
    }, HANG);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
      const line = text.split("\r\n")[0]!;
      if (text.includes("\r\n")) {
        clearTimeout(timer);
        socket.destroy();
        resolve(line);
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      if (!text.includes("\r\n")) reject(new Error(`closed without an answer: ${JSON.stringify(text)}`));
    });
    socket.write(head + body);
  });
}

const post = (path: string, headers: Record<string, string>) =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;

/** A POST of `size` bytes with Node's http client (`Content-Length`, or chunked); resolves with status and body. */
function nodePost(
  path: string,
  token: string,
  size: number,
  chunked: boolean,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        headers: {
          Authorization: `Bearer ${token}`,
          "Content-Type": "application/json",
          ...(chunked ? {} : { "Content-Length": String(size) }),
        },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode!, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const part = chunk.subarray(0, Math.min(chunk.length, size - sent));
        sent += part.length;
        if (!req.write(part)) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe("local hub front: authenticate on headers, bound bodies, time out slow senders", () => {
  test("an unauthenticated POST announcing 256 MiB gets 401 before it sends a byte of body (every route class)", async () => {
    const huge = { "Content-Type": "application/json", "Content-Length": String(256 * 1024 * 1024) };
    const routes = [
      `/v1/mcp/${TUNNEL}`,
      `/v1/mcp/${TUNNEL}/docs`,
      `/v1/mcp/${PASS_THROUGH}`,
      `/v1/tunnels/${TUNNEL}/response`,
      `/v1/audit/${TUNNEL}/pins/approve`,
    ];
    for (const path of routes) {
      assert.match(await rawStatus(post(path, huge)), /^HTTP\/1\.1 401 /, path);
      assert.match(
        await rawStatus(post(path, { ...huge, Authorization: "Bearer wrong-token" })),
        /^HTTP\/1\.1 401 /,
        `${path} with a wrong token`,
      );
    }
    assert.match(
      await rawStatus(post(`/v1/mcp/${tunnelId(99)}`, { ...huge, Authorization: `Bearer ${CLIENT_TOKEN}` })),
      /^HTTP\/1\.1 401 /,
      "a tunnel the hub does not serve",
    );
  });

  test("Expect: 100-continue without a credential is answered 401, never 100", async () => {
    const status = await rawStatus(post(`/v1/mcp/${TUNNEL}`, { "Content-Length": "1000", Expect: "100-continue" }));
    assert.match(status, /^HTTP\/1\.1 401 /);
  });

  test("an authenticated POST announcing more than the limit gets 413 at once, naming the limit", async () => {
    for (const [path, token] of [
      [`/v1/mcp/${TUNNEL}`, CLIENT_TOKEN],
      [`/v1/tunnels/${TUNNEL}/response`, AGENT_KEY],
    ] as const) {
      const status = await rawStatus(
        post(path, { Authorization: `Bearer ${token}`, "Content-Length": String(LIMIT + 1) }),
      );
      assert.match(status, /^HTTP\/1\.1 413 /, path);
    }
  });

  test("a 5 MiB authenticated POST gets 413 request_body_too_large every time (20 rounds, Content-Length and chunked)", async () => {
    for (let round = 0; round < 20; round++) {
      for (const chunked of [false, true]) {
        const { status, body } = await nodePost(`/v1/mcp/${TUNNEL}`, CLIENT_TOKEN, 5 * 1024 * 1024, chunked);
        assert.equal(status, 413, `round ${round}, ${chunked ? "chunked" : "Content-Length"}: ${body}`);
        const error = (JSON.parse(body) as { error: { code: string; message: string } }).error;
        assert.equal(error.code, "request_body_too_large");
        assert.match(error.message, new RegExp(`limit of ${LIMIT} bytes`));
      }
    }
  });

  test("a body within the limit still reaches the Worker (a small authenticated POST is not refused)", async () => {
    const { status, body } = await nodePost(`/v1/mcp/${TUNNEL}`, CLIENT_TOKEN, 1024, false);
    // 1 KiB of spaces: the Worker read it and found no JSON in it.
    assert.equal(status, 400, body);
    assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, "invalid_json_payload");
  });

  test("a client that stops sending its headers, or its body, gets 408", async () => {
    const partialHeaders = `POST /v1/mcp/${TUNNEL} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `;
    assert.match(await rawStatus(partialHeaders), /^HTTP\/1\.1 408 /);
    const halfBody = post(`/v1/mcp/${TUNNEL}`, {
      Authorization: `Bearer ${CLIENT_TOKEN}`,
      "Content-Type": "application/json",
      "Content-Length": "1000",
    });
    assert.match(await rawStatus(halfBody, '{"jsonrpc":'), /^HTTP\/1\.1 408 /);
  });
});
