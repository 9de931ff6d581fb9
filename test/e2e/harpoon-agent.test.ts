/**
 * Harpoon end to end: `airlock run` with tunnel-client's `--harpoon.target` flags, as a real
 * process under Node, Deno and Bun, polled by the contract-checking fake control plane. The
 * agent declares `{"name":"harpoon","proc_affinity":true}` and answers `harpoon`-channel
 * commands by calling a loopback OAuth-flavoured origin.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { decodeServerInfo } from "../../shared/protocol/index.ts";
import { startFakeControlPlane, type FakeControlPlane, type RecordedResponse } from "../support/fake-control-plane.ts";
import { startAgentProcess, type AgentProcess, type RuntimeName } from "../support/agent-process.ts";

const INIT = { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } };

interface ToolAnswer {
  isError?: boolean;
  content: Array<{ text: string }>;
  structuredContent?: Record<string, unknown>;
}

function result(response: RecordedResponse): Record<string, unknown> {
  assert.equal(response.payload.resp_type, "jsonrpc_response", JSON.stringify(response.payload));
  const message = response.payload.resp_json as { result?: Record<string, unknown> };
  assert.ok(message.result, `expected a result, got ${JSON.stringify(response.payload)}`);
  return message.result;
}

for (const runtime of ["node", "deno", "bun"] as RuntimeName[]) {
  describe(`Harpoon under ${runtime}`, { concurrency: false }, () => {
    let cp: FakeControlPlane;
    let agent: AgentProcess;
    let target: http.Server;
    let base = "";
    const hits: string[] = [];

    before(async () => {
      target = http.createServer((req, res) => {
        let body = "";
        req
          .setEncoding("utf8")
          .on("data", (chunk: string) => {
            body += chunk;
          })
          .on("end", () => {
            hits.push(`${req.method} ${req.url}`);
            res.setHeader("Content-Type", "application/json");
            if (req.url === "/.well-known/oauth-protected-resource") {
              res.end(JSON.stringify({ resource: `${base}/mcp`, authorization_servers: [`${base}/token`] }));
            } else if (req.url === "/token" && req.method === "POST") {
              res.end(JSON.stringify({ access_token: "tok", received: body }));
            } else {
              res.statusCode = 404;
              res.end("{}");
            }
          });
      });
      await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
      cp = await startFakeControlPlane();
      agent = await startAgentProcess(
        runtime,
        [
          "--control-plane.base-url",
          cp.baseUrl,
          "--control-plane.tunnel-id",
          cp.tunnelId,
          "--control-plane.api-key",
          "env:E2E_KEY",
          "--control-plane.poll-timeout",
          "2s",
          "--control-plane.poll-channel",
          "harpoon",
          "--harpoon.target",
          `label=prmd,url=${base}/.well-known/oauth-protected-resource,desc=Protected resource metadata`,
          "--harpoon.target",
          `label=token,url=${base}/token`,
          "--harpoon.allow-plaintext-http",
          "--harpoon.additional-transport",
          "http-streamable",
        ],
        { E2E_KEY: cp.apiKey },
      );
    });
    after(async () => {
      await agent?.stop("SIGKILL");
      target?.closeAllConnections();
      await Promise.all([cp?.close(), new Promise((resolve) => target?.close(resolve))]);
    });

    test("polls declare harpoon with proc_affinity and only the harpoon channel", async () => {
      const poll = await cp.waitForPolls(1, 15_000);
      assert.deepEqual(poll.channels, ["harpoon"]);
      assert.deepEqual(decodeServerInfo(poll.headers["x-tunnel-mcp-server-info"]!)?.channels, [
        { name: "harpoon", proc_affinity: true },
      ]);
    });

    test("initialize, tools/list, list_targets, call_target GET and POST, unknown label", async () => {
      const [init, list, targets, prmd, token, unknown] = cp.enqueue(
        { channel: "harpoon", jsonrpc: { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT } },
        { channel: "harpoon", jsonrpc: { jsonrpc: "2.0", id: 2, method: "tools/list" } },
        {
          channel: "harpoon",
          jsonrpc: { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "list_targets", arguments: {} } },
        },
        {
          channel: "harpoon",
          jsonrpc: {
            jsonrpc: "2.0",
            id: 4,
            method: "tools/call",
            params: { name: "call_target", arguments: { label: "prmd", method: "GET" } },
          },
        },
        {
          channel: "harpoon",
          jsonrpc: {
            jsonrpc: "2.0",
            id: 5,
            method: "tools/call",
            params: {
              name: "call_target",
              arguments: {
                label: "token",
                method: "POST",
                body: "grant_type=client_credentials",
                headers: { "Content-Type": "application/x-www-form-urlencoded" },
              },
            },
          },
        },
        {
          channel: "harpoon",
          jsonrpc: {
            jsonrpc: "2.0",
            id: 6,
            method: "tools/call",
            params: { name: "call_target", arguments: { label: "intranet", method: "GET" } },
          },
        },
      );

      const initAnswer = await cp.waitForFinal(init!.request_id, 20_000);
      assert.equal(initAnswer.payload.channel, "harpoon");
      assert.equal((result(initAnswer).serverInfo as { name: string }).name, "harpoon");

      const tools = result(await cp.waitForFinal(list!.request_id, 10_000)).tools as Array<{ name: string }>;
      assert.deepEqual(
        tools.map((tool) => tool.name),
        ["list_targets", "call_target", "get_oauth_target_audience"],
      );

      const listed = result(await cp.waitForFinal(targets!.request_id, 10_000)) as unknown as ToolAnswer;
      assert.deepEqual(
        (listed.structuredContent!.targets as Array<{ label: string }>).map((t) => t.label),
        ["prmd", "token"],
      );

      const metadata = result(await cp.waitForFinal(prmd!.request_id, 10_000)) as unknown as ToolAnswer;
      assert.notEqual(metadata.isError, true, metadata.content[0]?.text);
      assert.equal(metadata.structuredContent!.status_code, 200);
      const document = JSON.parse(
        Buffer.from(metadata.structuredContent!.body_base64 as string, "base64").toString("utf8"),
      );
      assert.deepEqual(document, { resource: `${base}/mcp`, authorization_servers: ["harpoon://token"] });

      const tokenAnswer = result(await cp.waitForFinal(token!.request_id, 10_000)) as unknown as ToolAnswer;
      const tokenBody = JSON.parse(
        Buffer.from(tokenAnswer.structuredContent!.body_base64 as string, "base64").toString("utf8"),
      );
      assert.deepEqual(tokenBody, { access_token: "tok", received: "grant_type=client_credentials" });

      const refused = result(await cp.waitForFinal(unknown!.request_id, 10_000)) as unknown as ToolAnswer;
      assert.equal(refused.isError, true);
      assert.match(refused.content[0]!.text, /^label intranet: unknown target/);

      assert.deepEqual(hits.slice(-2), ["GET /.well-known/oauth-protected-resource", "POST /token"]);
      cp.assertNoViolations();
    });

    test("readyz counts Harpoon as an up backend", async () => {
      const ready = await fetch(`${agent.opsUrl}/readyz`);
      assert.equal(ready.status, 200, await ready.clone().text());
      const metrics = await (await fetch(`${agent.opsUrl}/metrics`)).text();
      assert.match(metrics, /airlock_backend_up\{backend="harpoon",transport="memory"\} 1/);
      // tunnel-client's Harpoon metrics, from the calls of the test above.
      assert.match(metrics, /harpoon_call_total\{label="prmd",status_class="2xx",outcome="success"\} 1/);
      assert.match(metrics, /harpoon_call_total\{label="intranet",status_class="none",outcome="invalid_input"\} 1/);
      assert.match(
        metrics,
        /harpoon_response_size_bytes_count\{label="token",status_class="2xx",outcome="success"\} 1/,
      );
    });

    test("additional_transports http-streamable serves Harpoon at /harpoon/mcp on the health listener", async () => {
      const response = await fetch(`${agent.opsUrl}/harpoon/mcp`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 9,
          method: "tools/call",
          params: { name: "list_targets", arguments: {} },
        }),
      });
      assert.equal(response.status, 200);
      const answer = (await response.json()) as { id: number; result: ToolAnswer };
      assert.equal(answer.id, 9);
      assert.deepEqual(
        (answer.result.structuredContent!.targets as Array<{ label: string }>).map((t) => t.label),
        ["prmd", "token"],
      );
    });
  });
}
