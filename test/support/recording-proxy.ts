/**
 * A reverse proxy on 127.0.0.1 in front of one MCP server URL that records every request
 * exactly as the server receives it (method, lower-cased headers, body), so a test can check
 * what the agent sent a backend. Answers, streams included, pass back unchanged.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";

export interface ReceivedRequest {
  method: string;
  headers: Record<string, string>;
  /** The parsed JSON body, when there was one. */
  body?: Record<string, unknown>;
}

export interface RecordingProxy {
  /** Point the agent here instead of at the server. */
  url: string;
  received: ReceivedRequest[];
  close(): Promise<void>;
}

/** Start a recording proxy in front of `target` (an `http://127.0.0.1…` MCP URL). */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const received: ReceivedRequest[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers))
      if (typeof value === "string" && name !== "host" && name !== "content-length" && name !== "connection")
        headers[name] = value;
    received.push({ method: req.method ?? "GET", headers, ...(text ? { body: JSON.parse(text) } : {}) });
    try {
      const answer = await fetch(target, {
        method: req.method,
        headers,
        ...(text ? { body: text } : {}),
      });
      // fetch has already decoded and de-chunked the body.
      const passed = [...answer.headers].filter(
        ([name]) => !/^(content-encoding|content-length|transfer-encoding)$/.test(name),
      );
      res.writeHead(answer.status, Object.fromEntries(passed));
      if (answer.body) Readable.fromWeb(answer.body as never).pipe(res);
      else res.end();
    } catch (error) {
      res.writeHead(502).end(String(error));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
