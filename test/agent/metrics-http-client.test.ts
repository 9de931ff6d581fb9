/**
 * tunnel-client's otelhttp client metrics (`http_client_request_duration_seconds`,
 * `http_client_request_body_size_bytes`) for real requests on loopback: an MCP HTTP backend's
 * call, a request with a body, an HTTP error and a refused port.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { createMetrics, type AgentMetrics } from "../../agent/ops/metrics.ts";
import { OTELHTTP_DURATION_BUCKETS } from "../../agent/ops/metrics-http-client.ts";
import { createHttpBackend } from "../../agent/backends/http.ts";
import { measuredFetch } from "../../agent/runtime/http-client.ts";
import { serve, type ServedApp } from "../../agent/runtime/serve.ts";
import { silentLogger } from "../../shared/log.ts";
import { freePort } from "../support/ports.ts";

type Sample = { name: string; labels: Record<string, string>; value: number };

function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = /^(http_client_\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of match[2]!.matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1]!] = pair[2]!;
    out.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return out;
}

describe("otelhttp client metrics", () => {
  let server: ServedApp;
  let metrics: AgentMetrics;
  let port: string;

  before(async () => {
    const app = new Hono();
    app.post("/mcp", async (c) => {
      const body = (await c.req.json()) as { id: number };
      return c.json({ jsonrpc: "2.0", id: body.id, result: { tools: [] } });
    });
    app.post("/echo", async (c) => c.text(await c.req.text()));
    server = await serve(app.fetch, { hostname: "127.0.0.1", port: 0 });
    port = String(server.port);
    metrics = createMetrics({
      processMetrics: false,
      tunnelClient: { tunnelId: "tunnel_x", queueCapacity: 1, workerCapacity: 1 },
    });
  });
  after(() => server?.close());

  const scrape = async () => samples(await metrics.registry.metrics());
  const base = {
    server_address: "127.0.0.1",
    url_scheme: "http",
    network_protocol_name: "http",
    network_protocol_version: "1.1",
  };

  test("an MCP HTTP backend's call: method, server, port, scheme, protocol, status and http_route", async () => {
    const backend = createHttpBackend({
      name: "mcp",
      url: `${server.url}/mcp?tenant=a`,
      log: silentLogger,
      observe: metrics.events.httpRequestFinished,
    });
    const result = await backend.exchange({
      message: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      headers: {},
      signal: new AbortController().signal,
      notify: () => {},
    });
    await backend.close();
    assert.equal(result.kind, "response");
    const count = (await scrape()).find(
      (s) => s.name === "http_client_request_duration_seconds_count" && s.labels.http_route === "/mcp",
    );
    assert.deepEqual(count?.labels, {
      ...base,
      http_request_method: "POST",
      server_port: port,
      http_response_status_code: "200",
      http_route: "/mcp",
    });
    assert.equal(count?.value, 1);
  });

  test("the body size is the request's UTF-8 bytes; durations use otelhttp's buckets", async () => {
    const observed = measuredFetch(fetch, metrics.events.httpRequestFinished);
    const response = await observed(`${server.url}/echo`, { method: "POST", body: "héllo" });
    assert.equal(await response.text(), "héllo");
    const all = await scrape();
    const size = all.find(
      (s) => s.name === "http_client_request_body_size_bytes_sum" && s.labels.http_route === "/echo",
    );
    assert.equal(size?.value, 6);
    const bounds = all
      .filter((s) => s.name === "http_client_request_duration_seconds_bucket" && s.labels.http_route === "/echo")
      .map((s) => s.labels.le);
    assert.deepEqual(bounds, [...OTELHTTP_DURATION_BUCKETS.map(String), "+Inf"]);
  });

  test("an HTTP error keeps its status; a refused port has none; unknown methods are _OTHER", async () => {
    const observed = measuredFetch(fetch, metrics.events.httpRequestFinished);
    const missing = await observed(`${server.url}/nowhere`, { method: "PURGE" });
    await missing.arrayBuffer();
    const refusedPort = await freePort();
    await assert.rejects(observed(`http://127.0.0.1:${refusedPort}/mcp`));
    const counts = (await scrape()).filter((s) => s.name === "http_client_request_duration_seconds_count");
    assert.deepEqual(counts.find((s) => s.labels.http_route === "/nowhere")?.labels, {
      ...base,
      http_request_method: "_OTHER",
      server_port: port,
      http_response_status_code: "404",
      http_route: "/nowhere",
    });
    assert.deepEqual(counts.find((s) => s.labels.server_port === String(refusedPort))?.labels, {
      ...base,
      http_request_method: "GET",
      server_port: String(refusedPort),
      http_route: "/mcp",
    });
  });

  test("the scheme's default port is not a label", async () => {
    const seen: string[] = [];
    const observe = metrics.events.httpRequestFinished;
    observe({ method: "GET", url: "https://mcp.example:443/a", status: 200, bodyBytes: 0, seconds: 0.01 });
    for (const s of await scrape()) if (s.labels.server_address === "mcp.example") seen.push(...Object.keys(s.labels));
    assert.ok(seen.length > 0);
    assert.equal(seen.includes("server_port"), false);
  });
});
