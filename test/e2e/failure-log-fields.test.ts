/**
 * tunnel-client's failure fields on real failures: a real agent process, MCP servers that
 * refuse, hang or answer 503 on loopback, and a control plane nobody listens on. The lines
 * are read from the agent's JSON log as a log pipeline would read them.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { startFakeControlPlane, type FakeControlPlane } from "../support/fake-control-plane.ts";
import { startAgentProcess, type AgentProcess } from "../support/agent-process.ts";
import { freePort } from "../support/free-port.ts";
import { eventually } from "../support/manual-clock.ts";

const KEY = "sk-failure-fields-0123456789";
const UPSTREAM_ERROR = "dispatcher received MCP upstream error; posted error response to control plane";

/** A loopback HTTP server answering every request with `handle`; `url` is its `/mcp`. */
async function serve(handle: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}/mcp` };
}

const call = (id: number) => ({ jsonrpc: "2.0", id, method: "tools/list" });

describe("failure_source / transport_error_kind on the dispatcher's error line", () => {
  let cp: FakeControlPlane;
  let agent: AgentProcess;
  const servers: Server[] = [];

  before(async () => {
    cp = await startFakeControlPlane({ apiKey: KEY });
    const refused = `http://127.0.0.1:${await freePort()}/mcp`;
    // Holds every request open: only the agent's own per-call limit ends it.
    const hanging = await serve(() => {});
    const unavailable = await serve((_req, res) => {
      res.writeHead(503, { "Content-Type": "text/html" }).end("<h1>down for maintenance</h1>");
    });
    servers.push(hanging.server, unavailable.server);
    agent = await startAgentProcess(
      "node",
      [
        "--log.format",
        "json",
        "--mcp.timeout",
        "400ms",
        "--mcp.server-url",
        `channel=main,url=${refused}`,
        "--mcp.server-url",
        `channel=slow,url=${hanging.url}`,
        "--mcp.server-url",
        `channel=down,url=${unavailable.url}`,
        "--control-plane.poll-timeout",
        "2s",
      ],
      { CONTROL_PLANE_API_KEY: KEY, CONTROL_PLANE_TUNNEL_ID: cp.tunnelId, CONTROL_PLANE_BASE_URL: cp.baseUrl },
    );
  });

  after(async () => {
    await agent?.stop();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    await cp?.close();
  });

  /** Deliver one call on `channel`, wait for its answer, return its error line. */
  async function errorLine(channel: string, id: number) {
    const [command] = cp.enqueue({ channel, jsonrpc: call(id) });
    await cp.waitForFinal(command!.request_id, 15_000);
    return eventually(
      () => agent.logs().find((r) => r.msg === UPSTREAM_ERROR && r.request_id === command!.request_id),
      10_000,
      `the error line for ${channel}: ${agent.stdout()}`,
    );
  }

  test("a refused port: connect / connection_refused, no upstream answer, the post's tunnel_request_id", async () => {
    const line = await errorLine("main", 1);
    assert.equal(line.level, "WARN");
    assert.equal(line.failure_source, "connect");
    assert.equal(line.transport_error_kind, "connection_refused");
    assert.equal(line.upstream_response_received, false);
    assert.equal("upstream_status" in line, false);
    assert.equal(line.status_code, 502);
    assert.equal(line.rpc_method, "tools/list");
    assert.equal(line.channel, "main");
    assert.equal(line.tunnel_request_id, `tsreq_${line.request_id}`);
    assert.equal(typeof line.tunnel_client_version, "string");
    const backendLine = agent.logs().find((r) => r.msg === "MCP server call failed" && r.backend === "main");
    assert.equal(backendLine?.failure_source, "connect", "the backend's own line uses the same names");
    assert.equal(backendLine?.transport_error_kind, "connection_refused");
  });

  test("a server that never answers: timeout / timeout, 504", async () => {
    const line = await errorLine("slow", 2);
    assert.equal(line.failure_source, "timeout");
    assert.equal(line.transport_error_kind, "timeout");
    assert.equal(line.status_code, 504);
  });

  test("an HTTP 503 page: target_http / http_status with upstream_status", async () => {
    const line = await errorLine("down", 3);
    assert.equal(line.failure_source, "target_http");
    assert.equal(line.transport_error_kind, "http_status");
    assert.equal(line.upstream_response_received, true);
    assert.equal(line.upstream_status, 503);
    assert.equal(line.status_code, 503);
  });
});

describe("transport_error_kind on a failed poll", () => {
  test("a control plane on a refused port: the poll line names connection_refused", async () => {
    const agent = await startAgentProcess(
      "node",
      ["--log.format", "json", "--mcp.server-url", `http://127.0.0.1:${await freePort()}/mcp`],
      {
        CONTROL_PLANE_API_KEY: KEY,
        CONTROL_PLANE_TUNNEL_ID: "tunnel_0123456789abcdef0123456789abcdef",
        CONTROL_PLANE_BASE_URL: `http://127.0.0.1:${await freePort()}`,
      },
    );
    try {
      const line = await eventually(
        () => agent.logs().find((r) => r.msg === "poll failed; backing off"),
        10_000,
        `the poll failure line: ${agent.stdout()}`,
      );
      assert.equal(line.transport_error_kind, "connection_refused");
      assert.equal(line.component, "controlplane");
    } finally {
      await agent.stop();
    }
  });
});
