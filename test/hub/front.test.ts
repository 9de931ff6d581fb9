/**
 * The local hub's front proxy only ever forwards to its own Worker: a request target
 * that names another host (scheme-relative `//host`, absolute-form, a backslash that URL
 * parsing turns into `/`) is refused with 400, and the host it named hears nothing.
 * Raw request lines over node:net, because fetch would normalise them away.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { startFrontProxy, type FrontProxy } from "../../agent/hub-local/front.ts";

interface Recorder {
  server: Server;
  port: number;
  seen: Array<{ url: string; host: string | undefined }>;
}

/** A loopback HTTP server that answers 200 and keeps every request line it received. */
async function recorder(name: string): Promise<Recorder> {
  const seen: Recorder["seen"] = [];
  const server = createServer((req: IncomingMessage, res) => {
    seen.push({ url: req.url ?? "", host: req.headers.host });
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(`${name} ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/** Send one raw HTTP/1.1 request and return what came back, whole. */
function raw(port: number, requestLine: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
    });
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
    socket.write(`${requestLine}\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
  });
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);

let worker: Recorder;
let victim: Recorder;
let front: FrontProxy;

before(async () => {
  worker = await recorder("worker");
  victim = await recorder("victim");
  front = await startFrontProxy({
    host: "127.0.0.1",
    port: 0,
    upstream: new URL(`http://127.0.0.1:${worker.port}/`),
    secret: "s".repeat(64),
    vars: { AIRLOCK_TUNNELS: "{}" },
  });
});
after(async () => {
  await front.close();
  for (const { server } of [worker, victim]) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe("local hub front proxy", () => {
  test("an origin-form path and its query reach the Worker unchanged", async () => {
    const answer = await raw(Number(front.url.port), "GET /healthz?probe=1&x=%2F%2Fa HTTP/1.1");
    assert.equal(statusOf(answer), 200);
    assert.deepEqual(worker.seen.at(-1), { url: "/healthz?probe=1&x=%2F%2Fa", host: `127.0.0.1:${worker.port}` });
  });

  const foreign = () =>
    [
      ["scheme-relative //host", `GET //127.0.0.1:${victim.port}/admin HTTP/1.1`],
      ["scheme-relative with a query", `GET //127.0.0.1:${victim.port}?a=1 HTTP/1.1`],
      ["absolute-form", `GET http://127.0.0.1:${victim.port}/admin HTTP/1.1`],
      ["backslash after the slash", `GET /\\127.0.0.1:${victim.port}/admin HTTP/1.1`],
      ["backslashes only", `GET \\\\127.0.0.1:${victim.port}/admin HTTP/1.1`],
    ] as const;

  test("a target naming another host is 400, and neither that host nor the Worker receives anything", async () => {
    const workerBefore = worker.seen.length;
    for (const [name, line] of foreign()) {
      const answer = await raw(Number(front.url.port), line);
      assert.equal(statusOf(answer), 400, `${name}: ${answer.split("\r\n")[0]}`);
      // Node's own parser already refuses some targets (400 without a body); the rest are the proxy's.
      const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
      if (body !== "") assert.match(body, /the local hub is not a proxy/, name);
    }
    assert.deepEqual(victim.seen, []);
    assert.equal(worker.seen.length, workerBefore);
  });
});
