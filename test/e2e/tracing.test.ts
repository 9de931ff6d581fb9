/**
 * One trace per call (docs/observability.md): a client's request with `traceparent`
 * through the hub (workerd) and a real agent process to a routing table of a stdio
 * server-everything, a stdio fixture that reports the `_meta.traceparent` it got, and an
 * HTTP server that records the `traceparent` header it got. An OTLP/HTTP receiver on
 * loopback collects the spans; the test checks one trace id end to end, the parent/child
 * chain up to the client's span, the span names, and that no span carries arguments,
 * results or secrets.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { SPAN, parseTraceparent } from "../../shared/telemetry/index.ts";
import { startTraceHttpServer, type TraceHttpServer } from "../fixtures/trace-http-server.ts";
import { everythingStdioCommand, fixtureServerCommand } from "../support/everything.ts";
import { startHubAgent, type HubAgent } from "../support/hub-stack.ts";
import { AGENT_KEY, CLIENT_TOKEN, mcpPost, startTestHub, type TestHub } from "../support/hub.ts";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../support/otlp-receiver.ts";
import type { RuntimeName } from "../support/agent-process.ts";

const SECRET_ARGUMENT = "secret-argument-4242";
const INIT = { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e-tracing", version: "1" } };

/** A client's own span, as it would send it. */
function clientSpan(sampled: boolean): { traceId: string; spanId: string; traceparent: string } {
  const hex = (bytes: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
  const traceId = hex(16);
  const spanId = hex(8);
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-${sampled ? "01" : "00"}` };
}

/** Span names from `span` up to the top of what was recorded, and the parent id the top names. */
function ancestry(spans: ReceivedSpan[], span: ReceivedSpan): { names: string[]; topParent: string } {
  const names = [span.name];
  let current = span;
  for (;;) {
    const parent = spans.find((s) => s.spanId === current.parentSpanId && s.traceId === current.traceId);
    if (!parent) return { names, topParent: current.parentSpanId };
    names.push(parent.name);
    current = parent;
  }
}

function one(
  spans: ReceivedSpan[],
  traceId: string,
  name: string,
  where: (span: ReceivedSpan) => boolean = () => true,
): ReceivedSpan {
  const found = spans.filter((span) => span.traceId === traceId && span.name === name && where(span));
  assert.equal(
    found.length,
    1,
    `one ${name} span in trace ${traceId}; got ${found.length} of: ${spans
      .filter((s) => s.traceId === traceId)
      .map((s) => s.name)
      .join(", ")}`,
  );
  return found[0]!;
}

/** The chain from a backend exchange up to the hub's ingress, the span whose parent is the client's. */
const CHAIN = [SPAN.backendExchange, SPAN.execute, SPAN.dispatch, SPAN.handoff, SPAN.ingress];

function tracingSuite(runtime: RuntimeName) {
  describe(`tracing through hub and agent (${runtime})`, { concurrency: false }, () => {
    let dir: string;
    let hub: TestHub;
    let otlp: OtlpReceiver;
    let web: TraceHttpServer;
    let agent: HubAgent;
    let url: URL;
    let session: string;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "airlock-e2e-tracing-"));
      [otlp, web] = await Promise.all([startOtlpReceiver(), startTraceHttpServer()]);
      hub = await startTestHub({ tunnels: 1, otlpEndpoint: otlp.url, settings: { maxRequestBytes: 64 * 1024 } });
      const tunnel = hub.tunnel();
      url = hub.mcpUrl(tunnel);
      const config = join(dir, "routes.yaml");
      writeFileSync(
        config,
        stringify({
          config_version: 1,
          routes: [
            {
              channel: "main",
              backends: [
                { name: "everything", command: everythingStdioCommand() },
                { name: "fixture", command: fixtureServerCommand() },
                { name: "web", url: web.url },
              ],
            },
          ],
        }),
      );
      agent = await startHubAgent(hub.url, tunnel, ["--config", config], {
        runtime,
        args: ["--control-plane.poll-timeout", "2s"],
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
          OTEL_SERVICE_NAME: `airlock-agent-${runtime}`,
          OTEL_BSP_SCHEDULE_DELAY: "50",
        },
      });
      const init = await mcpPost(url, { jsonrpc: "2.0", id: 1, method: "initialize", params: INIT });
      assert.equal(init.status, 200, await init.clone().text());
      session = init.headers.get("Mcp-Session-Id") ?? "";
      assert.ok(session, "the aggregate answers initialize with a session id");
      const initialized = await mcpPost(
        url,
        { jsonrpc: "2.0", method: "notifications/initialized" },
        { headers: { "Mcp-Session-Id": session } },
      );
      assert.equal(initialized.status, 202);
    });

    after(async () => {
      await agent?.stop("SIGTERM");
      await Promise.all([hub?.close(), otlp?.close(), web?.close()]);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** The spans received once every one of `names` has arrived for `traceId` (each side exports on its own schedule). */
    function traceOf(traceId: string, names: string[]): Promise<ReceivedSpan[]> {
      return otlp.waitFor((all) => names.every((name) => all.some((s) => s.traceId === traceId && s.name === name)));
    }

    async function call(
      id: number,
      name: string,
      args: Record<string, unknown>,
      headers: Record<string, string>,
      meta?: Record<string, string>,
    ) {
      const params = { name, arguments: args, ...(meta ? { _meta: meta } : {}) };
      const response = await mcpPost(
        url,
        { jsonrpc: "2.0", id, method: "tools/call", params },
        { headers: { "Mcp-Session-Id": session, ...headers } },
      );
      assert.equal(response.status, 200);
      const body = (await response.json()) as { result?: { content: Array<{ text: string }> } };
      assert.ok(body.result, JSON.stringify(body));
      return body.result.content[0]!.text;
    }

    test("an HTTP backend's call: one trace from the client's span to the backend, which gets the exchange span as traceparent", async () => {
      const client = clientSpan(true);
      assert.equal(
        await call(2, "web__echo", { message: SECRET_ARGUMENT }, { traceparent: client.traceparent }),
        `Echo: ${SECRET_ARGUMENT}`,
      );
      const spans = await traceOf(client.traceId, [SPAN.dispatch, SPAN.ingress, SPAN.hubQueueWait, SPAN.post]);
      const exchange = one(
        spans,
        client.traceId,
        SPAN.backendExchange,
        (s) => s.attributes["airlock.backend.name"] === "web",
      );
      assert.equal(exchange.attributes["airlock.backend.transport"], "http");
      assert.equal(exchange.attributes["mcp.method.name"], "tools/call");
      assert.equal(exchange.attributes["gen_ai.tool.name"], "echo");
      const { names, topParent } = ancestry(spans, exchange);
      assert.deepEqual(names, CHAIN);
      assert.equal(topParent, client.spanId, "the client's span is the parent of the hub's ingress span");
      const ingress = one(spans, client.traceId, SPAN.ingress);
      assert.equal(ingress.service, "airlock-hub");
      assert.equal(ingress.attributes["mcp.method.name"], "tools/call");
      assert.equal(ingress.attributes["gen_ai.tool.name"], "web__echo");
      assert.equal(ingress.attributes["http.response.status_code"], 200);
      const handoff = one(spans, client.traceId, SPAN.handoff);
      assert.equal(one(spans, client.traceId, SPAN.hubQueueWait).parentSpanId, handoff.spanId);
      assert.equal(one(spans, client.traceId, SPAN.policy).parentSpanId, ingress.spanId);
      const appends = spans.filter((s) => s.traceId === client.traceId && s.name === SPAN.auditAppend);
      assert.ok(
        appends.length >= 1 && appends.every((s) => s.parentSpanId === ingress.spanId),
        "audit appends are children of the ingress",
      );
      assert.equal(
        handoff.attributes["airlock.request_id"],
        one(spans, client.traceId, SPAN.dispatch).attributes["airlock.request_id"],
      );
      const dispatch = one(spans, client.traceId, SPAN.dispatch);
      assert.equal(dispatch.attributes["gen_ai.tool.name"], "web__echo");
      assert.equal(one(spans, client.traceId, SPAN.agentQueueWait).parentSpanId, dispatch.spanId);
      const execute = one(spans, client.traceId, SPAN.execute);
      assert.equal(one(spans, client.traceId, SPAN.route).parentSpanId, execute.spanId);
      const post = one(spans, client.traceId, SPAN.post);
      assert.equal(post.parentSpanId, execute.spanId);
      assert.equal(post.attributes["airlock.post.kind"], "jsonrpc_response");
      assert.ok(dispatch.start <= execute.start && execute.end <= dispatch.end, "execution lies within the dispatch");

      const ui = await fetch(`${agent.opsUrl}/ui`, { headers: agent.uiHeaders() });
      assert.match(
        await ui.text(),
        new RegExp(`<code>${client.traceId}</code>`),
        "the admin UI's recent calls show the trace id",
      );

      const seen = web.seen.find(
        (s) => s.method === "tools/call" && parseTraceparent(s.traceparent)?.traceId === client.traceId,
      );
      assert.ok(seen, `the HTTP server got the trace: ${JSON.stringify(web.seen)}`);
      assert.equal(parseTraceparent(seen.traceparent)!.spanId, exchange.spanId);
    });

    test("a stdio backend gets the exchange span in _meta; a client's unsampled flag does not stop the operator's always_on", async () => {
      const client = clientSpan(false);
      const got = await call(3, "fixture__trace", {}, { traceparent: client.traceparent });
      const spans = await traceOf(client.traceId, [SPAN.dispatch, SPAN.ingress, SPAN.backendExchange]);
      const exchange = one(
        spans,
        client.traceId,
        SPAN.backendExchange,
        (s) => s.attributes["airlock.backend.name"] === "fixture",
      );
      assert.equal(exchange.attributes["airlock.backend.transport"], "stdio");
      assert.deepEqual(parseTraceparent(got), { traceId: client.traceId, spanId: exchange.spanId, sampled: true });
    });

    test("trace context sent only in _meta is picked up at the hub; the client's own _meta is never overwritten", async () => {
      const client = clientSpan(true);
      const got = await call(4, "fixture__trace", {}, {}, { traceparent: client.traceparent });
      assert.equal(got, client.traceparent);
      const spans = await traceOf(client.traceId, [SPAN.dispatch, SPAN.ingress, SPAN.backendExchange]);
      const exchange = one(spans, client.traceId, SPAN.backendExchange);
      assert.equal(ancestry(spans, exchange).topParent, client.spanId);
      // server-everything over stdio answers in the same trace.
      const everything = clientSpan(true);
      assert.equal(
        await call(5, "everything__echo", { message: "hi" }, { traceparent: everything.traceparent }),
        "Echo: hi",
      );
      await otlp.waitFor((all) =>
        all.some(
          (s) =>
            s.traceId === everything.traceId &&
            s.name === SPAN.backendExchange &&
            s.attributes["airlock.backend.name"] === "everything",
        ),
      );
    });

    test("with tracing on, the hub still refuses an oversized body with 413 and a malformed one with 400", async () => {
      const big = await mcpPost(
        url,
        {
          jsonrpc: "2.0",
          id: 6,
          method: "tools/call",
          params: { name: "web__echo", arguments: { message: "x".repeat(100 * 1024) } },
        },
        { headers: { "Mcp-Session-Id": session } },
      );
      assert.equal(big.status, 413);
      const malformed = await mcpPost(url, "{not json", { headers: { "Mcp-Session-Id": session } });
      assert.equal(malformed.status, 400);
    });

    test("no span carries arguments, results or secrets", () => {
      assert.ok(otlp.bodies.length > 0);
      for (const body of otlp.bodies) {
        for (const forbidden of [SECRET_ARGUMENT, CLIENT_TOKEN, AGENT_KEY, "Echo:", session]) {
          assert.ok(!body.includes(forbidden), `an exported span contains ${JSON.stringify(forbidden)}`);
        }
      }
      assert.ok(
        otlp.spans.every(
          (span) => span.service === `airlock-agent-${runtime}` || span.service.startsWith("airlock-hub"),
        ),
      );
    });
  });
}

for (const runtime of ["node", "deno", "bun"] as const) tracingSuite(runtime);
