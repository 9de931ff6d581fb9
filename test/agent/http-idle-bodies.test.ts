/**
 * Response bodies that stay silent: an SSE stream (the GET stream, `subscriptions/listen`)
 * may send nothing for a long time, and Node's `fetch` ends a body silent for 300 s
 * (undici's `bodyTimeout`). `createHttpClient({ bodyTimeoutMs })` sets that limit; the HTTP
 * backend's streams use `0` (none). A short limit here shows the setting reaches the
 * runtime (Node) without waiting minutes; Deno and Bun set no such limit.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createHttpClient } from "../../agent/runtime/http-client.ts";
import { RUNTIME } from "../../agent/version.ts";

let server: Server;
let url: string;
/** The server's second event waits for this: the body is silent until the test says so. */
let release: () => void = () => {};

before(async () => {
  server = createServer((_request, response) => {
    response.writeHead(200, { "Content-Type": "text/event-stream" });
    response.write("data: first\n\n");
    release = () => response.end("data: late\n\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

/** Read the stream: its first event, then, after `silentFor` ms of silence, the rest. */
async function readAfterSilence(bodyTimeoutMs: number, silentFor: number): Promise<string> {
  const client = createHttpClient({ bodyTimeoutMs });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const response = await client.fetch(url);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    // This request's own release: the next request replaces the shared one.
    timer = setTimeout(release, silentFor);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += decoder.decode(value);
    }
  } finally {
    clearTimeout(timer);
    await client.close();
  }
}

test("a body silent longer than bodyTimeoutMs is ended on Node; Deno and Bun set no such limit", async () => {
  const reading = readAfterSilence(100, 1_000);
  if (RUNTIME.name === "node") await assert.rejects(reading, "the silent body is ended");
  else assert.equal(await reading, "data: first\n\ndata: late\n\n");
});

test("bodyTimeoutMs 0 (streams): a silent body lives until the server sends again", async () => {
  assert.equal(await readAfterSilence(0, 300), "data: first\n\ndata: late\n\n");
});
