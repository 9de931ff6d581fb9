/**
 * Attack class "client headers override the operator's": an MCP client sends the headers the
 * operator pinned (`--mcp.extra-headers "X-Read-Only: true"`) with its own values, plus
 * headers a backend might trust (client IP, URL rewrites, cookies). On every request an HTTP
 * backend makes (POST, the standalone GET stream, the session DELETE) the operator's value
 * must arrive and the client's extras must not.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createHttpBackend } from "../../agent/backends/http.ts";
import type { Backend } from "../../agent/backends/types.ts";
import type { HeaderMap } from "../../shared/protocol/index.ts";
import { silentLogger } from "../../shared/log.ts";
import { exchangeOf, rpc } from "../support/everything.ts";

const CLIENT_HEADERS: HeaderMap = {
  "X-Read-Only": ["false"],
  "x-read-only": ["false"],
  "X-Tenant": ["someone-else"],
  "X-Forwarded-For": ["10.0.0.1"],
  "X-Forwarded-Host": ["admin.internal"],
  "X-Original-URL": ["/admin"],
  "X-Rewrite-URL": ["/admin"],
  Cookie: ["session=stolen"],
  "X-Made-Up": ["1"],
  "Mcp-Session-Id": ["sess-1"],
  Authorization: ["Bearer client-oauth"],
};
const NEVER = ["x-forwarded-for", "x-forwarded-host", "x-original-url", "x-rewrite-url", "cookie", "x-made-up"];

describe("operator headers win over client headers (attack: X-Read-Only: false)", () => {
  const seen: Array<{ method: string; headers: http.IncomingHttpHeaders }> = [];
  let server: http.Server;
  let backend: Backend;

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ method: req.method!, headers: req.headers });
      if (req.method === "GET") {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        res.end();
        return;
      }
      res.writeHead(req.method === "DELETE" ? 200 : 202);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    backend = createHttpBackend({
      name: "ro",
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
      log: silentLogger,
      headers: { "X-Read-Only": "true", "X-Tenant": "team-a" },
    });
  });
  after(async () => {
    await backend.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("POST, GET stream and DELETE carry the operator's values and none of the client's extras", async () => {
    await backend.exchange(exchangeOf(rpc.initialized(), { headers: CLIENT_HEADERS }));
    await backend.openStream!({
      headers: CLIENT_HEADERS,
      signal: new AbortController().signal,
      opened: () => {},
      notify: () => {},
    });
    await backend.terminateSession(CLIENT_HEADERS, new AbortController().signal);
    assert.deepEqual(
      seen.map((request) => request.method),
      ["POST", "GET", "DELETE"],
    );
    for (const { method, headers } of seen) {
      assert.equal(headers["x-read-only"], "true", `${method}: the operator's X-Read-Only`);
      assert.equal(headers["x-tenant"], "team-a", `${method}: the operator's X-Tenant`);
      for (const name of NEVER) assert.equal(headers[name], undefined, `${method}: ${name} must not reach the backend`);
      assert.equal(headers["mcp-session-id"], "sess-1", `${method}: allowlisted protocol headers pass`);
      assert.equal(
        headers.authorization,
        "Bearer client-oauth",
        `${method}: the client's credential passes when no operator one is set`,
      );
    }
  });
});
