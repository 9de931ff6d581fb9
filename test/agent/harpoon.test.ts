/**
 * Harpoon over its MCP surface (raw JSON-RPC through `exchange`, as the dispatcher drives
 * it) against real HTTP targets on 127.0.0.1: an OAuth-flavoured origin (protected-resource
 * metadata, a token endpoint, redirects, an oversized body, a stalled endpoint) and a second
 * origin that must never be reached.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import {
  CallToolResultSchema,
  InitializeResultSchema,
  ListToolsResultSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { createHarpoonBackend, type HarpoonBackendOptions } from "../../agent/backends/harpoon.ts";
import type { ExchangeResult } from "../../agent/backends/types.ts";
import { createHostClassifier, registerDiscovered } from "../../agent/harpoon/auto-register.ts";
import { HarpoonTargetError } from "../../agent/harpoon/registry.ts";
import { createLogger, silentLogger } from "../../shared/log.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { startForwardProxy, type ForwardProxy } from "../support/forward-proxy.ts";
import { exchangeOf, rpc } from "../support/everything.ts";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Origin {
  base: string;
  seen: Seen[];
  close(): Promise<void>;
}

async function origin(
  handler: (req: http.IncomingMessage, body: string, res: http.ServerResponse, base: string) => void,
): Promise<Origin> {
  const seen: Seen[] = [];
  let base = "";
  const server = http.createServer((req, res) => {
    let body = "";
    req
      .setEncoding("utf8")
      .on("data", (chunk: string) => {
        body += chunk;
      })
      .on("end", () => {
        seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
        handler(req, body, res, base);
      });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const SECRET_BODY = "client_secret=s3cr3t-body-value";

function json(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...headers });
  res.end(JSON.stringify(value));
}

const call = (id: number | string, name: string, args: Record<string, unknown>): JsonRpcMessage => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args },
});

function message(result: ExchangeResult): JsonRpcMessage {
  assert.equal(result.kind, "response", JSON.stringify(result));
  assert.ok(result.kind === "response");
  assert.equal(result.status, 200);
  return result.message;
}

interface ToolResult {
  isError?: boolean;
  content: Array<{ type: string; text: string }>;
  structuredContent?: Record<string, unknown>;
}

function toolResult(result: ExchangeResult): ToolResult {
  const answer = message(result);
  assert.ok(answer.result, `expected a result, got ${JSON.stringify(answer)}`);
  CallToolResultSchema.parse(answer.result);
  return answer.result as ToolResult;
}

/** A successful call's structured content, checked against the text block and the tool's output schema. */
function ok(result: ExchangeResult, validate?: (value: unknown) => boolean): Record<string, unknown> {
  const tool = toolResult(result);
  assert.notEqual(tool.isError, true, tool.content[0]?.text);
  const structured = tool.structuredContent!;
  const textual = JSON.parse(tool.content[0]!.text) as Record<string, unknown>;
  for (const [key, value] of Object.entries(textual)) assert.deepEqual(structured[key], value, key);
  if (validate) assert.ok(validate(structured), JSON.stringify((validate as { errors?: unknown }).errors));
  return structured;
}

function refused(result: ExchangeResult): string {
  const tool = toolResult(result);
  assert.equal(tool.isError, true, JSON.stringify(tool));
  assert.equal(tool.structuredContent, undefined);
  return tool.content[0]!.text;
}

const decode = (structured: Record<string, unknown>) =>
  Buffer.from(structured.body_base64 as string, "base64").toString("utf8");

describe("Harpoon backend", () => {
  let auth: Origin;
  let elsewhere: Origin;
  let options: HarpoonBackendOptions;
  const logLines: string[] = [];

  before(async () => {
    elsewhere = await origin((_req, _body, res) => json(res, 200, { escaped: true }));
    auth = await origin((req, body, res, base) => {
      switch (req.url) {
        case "/.well-known/oauth-protected-resource/mcp":
          return json(res, 200, {
            resource: `${base}/mcp`,
            authorization_servers: [`${base}/`],
            bearer_methods_supported: ["header"],
          });
        case "/token":
          if (req.method !== "POST") return json(res, 405, { error: "method" });
          return json(
            res,
            200,
            { access_token: "at-1", token_type: "Bearer", got: body },
            { "Cache-Control": "no-store" },
          );
        case "/echo-headers":
          return json(res, 200, req.headers);
        case "/to-elsewhere":
          res.writeHead(302, { Location: `${elsewhere.base}/escape` });
          return res.end();
        case "/to-token":
          res.writeHead(307, { Location: "/token" });
          return res.end();
        case "/post-redirect":
          res.writeHead(303, { Location: `${base}/echo-headers` });
          return res.end();
        case "/loop":
          res.writeHead(302, { Location: "/loop" });
          return res.end();
        case "/big":
          res.writeHead(200, { "Content-Type": "text/plain" });
          return res.end("x".repeat(5000));
        case "/big-chunked":
          res.writeHead(200, { "Content-Type": "text/plain" });
          res.write("y".repeat(600));
          return res.end("y".repeat(600));
        case "/exact":
          res.writeHead(200, { "Content-Type": "application/octet-stream" });
          return res.end(Buffer.alloc(1024, 7));
        case "/slow":
          return; // never answers
        default:
          return json(res, 404, { error: "not found" });
      }
    });
    const targets = [
      "/.well-known/oauth-protected-resource/mcp",
      "/token",
      "/echo-headers",
      "/to-elsewhere",
      "/to-token",
      "/post-redirect",
      "/loop",
      "/big",
      "/big-chunked",
      "/exact",
      "/slow",
    ].map((path) => ({
      label: path
        .replace(/^\/(\.well-known\/)?/, "")
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/-$/, ""),
      url: `${auth.base}${path}`,
    }));
    targets.push({ label: "auth", url: `${auth.base}/` });
    targets[0]!.label = "prmd";
    options = {
      targets: targets.map((t) => (t.label === "prmd" ? { ...t, description: "protected resource metadata" } : t)),
      allowPlaintextHttp: true,
      maxResponseBytes: 1024,
      maxRedirects: 5,
      log: createLogger({ level: "debug", sink: (line) => logLines.push(line) }),
    };
  });
  after(async () => {
    await Promise.all([auth?.close(), elsewhere?.close()]);
  });

  test("initialize: serverInfo harpoon, tools capability, instructions; ids are kept as sent", async () => {
    const backend = createHarpoonBackend(options);
    await backend.start();
    const answer = message(await backend.exchange(exchangeOf(rpc.initialize("init-7"))));
    assert.equal(answer.id, "init-7");
    const init = InitializeResultSchema.parse(answer.result);
    assert.equal(init.serverInfo.name, "harpoon");
    assert.equal(init.serverInfo.title, "Harpoon (Constrained HTTP Client)");
    assert.deepEqual(init.capabilities.tools, { listChanged: false });
    assert.match(init.instructions ?? "", /cannot reach arbitrary hosts/);
    const ack = await backend.exchange(exchangeOf(rpc.initialized()));
    assert.deepEqual(ack, { kind: "ack", status: 202, headers: {} });
    assert.deepEqual(backend.health(), { name: "harpoon", transport: "memory", state: "up", restarts: 0, inflight: 0 });
    assert.equal(backend.procAffinity, true);
    await backend.close();
    assert.equal(backend.health().state, "stopped");
  });

  test("tools/list: list_targets, call_target, get_oauth_target_audience with tunnel-client's schemas and the configured ceilings", async () => {
    const backend = createHarpoonBackend(options);
    const list = ListToolsResultSchema.parse(message(await backend.exchange(exchangeOf(rpc.toolsList(2)))).result);
    assert.deepEqual(
      list.tools.map((tool) => tool.name),
      ["list_targets", "call_target", "get_oauth_target_audience"],
    );
    const callTarget = list.tools[1]!;
    assert.deepEqual(callTarget.inputSchema.required, ["label", "method"]);
    const props = callTarget.inputSchema.properties as Record<string, Record<string, unknown>>;
    assert.deepEqual(props.method!.enum, ["GET", "POST", "PUT"]);
    assert.deepEqual([props.max_response_bytes!.maximum, props.max_response_bytes!.default], [1024, 1024]);
    assert.deepEqual(
      [props.max_redirects!.maximum, props.timeout_ms!.minimum, props.timeout_ms!.maximum, props.timeout_ms!.default],
      [5, 100, 120000, 30000],
    );
    assert.equal(list.tools[0]!.annotations?.readOnlyHint, true);
    assert.equal(list.tools[2]!.annotations?.idempotentHint, true);
    await backend.close();
  });

  describe("tools", () => {
    let backend: ReturnType<typeof createHarpoonBackend>;
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    let validateCall: (value: unknown) => boolean;
    let validateList: (value: unknown) => boolean;
    before(async () => {
      backend = createHarpoonBackend(options);
      await backend.start();
      const tools = ListToolsResultSchema.parse(
        message(await backend.exchange(exchangeOf(rpc.toolsList(1)))).result,
      ).tools;
      validateList = ajv.compile(tools[0]!.outputSchema!);
      validateCall = ajv.compile(tools[1]!.outputSchema!);
    });
    after(() => backend.close());

    test("list_targets: labels, descriptions, category config, methods — never a URL; filters narrow it", async () => {
      const all = ok(await backend.exchange(exchangeOf(call(1, "list_targets", {}))), validateList);
      const targets = all.targets as Array<Record<string, unknown>>;
      assert.equal(targets.length, 12);
      assert.deepEqual(targets[0], {
        label: "prmd",
        description: "protected resource metadata",
        category: "config",
        source: "config",
        allowed_methods: ["GET", "POST", "PUT"],
      });
      assert.ok(!JSON.stringify(all).includes("127.0.0.1"), "list_targets leaks no URL");
      assert.deepEqual(ok(await backend.exchange(exchangeOf(call(2, "list_targets", { categories: ["OAuth"] })))), {
        targets: [],
      });
      assert.equal(
        (ok(await backend.exchange(exchangeOf(call(3, "list_targets", { sources: ["config"] })))).targets as unknown[])
          .length,
        12,
      );
    });

    test("call_target GET: protected-resource metadata, headers canonical, target URLs rewritten to harpoon://", async () => {
      const structured = ok(
        await backend.exchange(exchangeOf(call(4, "call_target", { label: "prmd", method: "GET" }))),
        validateCall,
      );
      assert.equal(structured.status_code, 200);
      assert.equal(structured.truncated, false);
      const headers = structured.headers as Record<string, string[]>;
      assert.deepEqual(headers["Content-Type"], ["application/json; charset=utf-8"]);
      assert.equal(headers["Content-Length"], undefined, "the rewritten body has another length");
      const body = JSON.parse(decode(structured)) as Record<string, unknown>;
      assert.deepEqual(body, {
        resource: `${auth.base}/mcp`,
        authorization_servers: ["harpoon://auth"],
        bearer_methods_supported: ["header"],
      });
      const original = JSON.stringify({
        resource: `${auth.base}/mcp`,
        authorization_servers: [`${auth.base}/`],
        bearer_methods_supported: ["header"],
      });
      assert.equal(structured.body_size_bytes, Buffer.byteLength(original));
    });

    test("call_target POST: body and allowed headers reach the token endpoint; blocked and Connection-nominated ones do not", async () => {
      const before = auth.seen.length;
      const structured = ok(
        await backend.exchange(
          exchangeOf(
            call(5, "call_target", {
              label: "token",
              method: "post",
              body: SECRET_BODY,
              headers: {
                "Content-Type": "application/x-www-form-urlencoded",
                Authorization: "Basic Y2xpZW50OnNlY3JldA==",
                Accept: "application/json",
                "X-Forwarded-For": "1.2.3.4",
                Cookie: "a=b",
                "User-Agent": "evil",
                Connection: "X-Drop-Me",
                "X-Drop-Me": "1",
                Host: "evil.example",
              },
            }),
          ),
        ),
        validateCall,
      );
      assert.equal(structured.status_code, 200);
      assert.deepEqual(JSON.parse(decode(structured)), {
        access_token: "at-1",
        token_type: "Bearer",
        got: SECRET_BODY,
      });
      assert.deepEqual((structured.headers as Record<string, string[]>)["Cache-Control"], ["no-store"]);
      const seen = auth.seen.slice(before);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.method, "POST");
      assert.equal(seen[0]!.body, SECRET_BODY);
      const h = seen[0]!.headers;
      assert.equal(h["content-type"], "application/x-www-form-urlencoded");
      assert.equal(h.authorization, "Basic Y2xpZW50OnNlY3JldA==");
      assert.equal(h.accept, "application/json");
      assert.match(h["user-agent"] ?? "", /^airlock\//);
      assert.equal(h.host, new URL(auth.base).host);
      for (const name of ["x-forwarded-for", "cookie", "x-drop-me"]) assert.equal(h[name], undefined, name);
    });

    test("call_target sends only allowlisted headers (attack: X-Forwarded-* beyond four names, X-Original-URL, X-Rewrite-URL)", async () => {
      const before = auth.seen.length;
      const smuggled = {
        "X-Forwarded-Prefix": "/admin",
        "X-Forwarded-Server": "internal",
        "X-Forwarded-Scheme": "https",
        "X-Forwarded-Ssl": "on",
        "X-Original-URL": "/admin",
        "X-Rewrite-URL": "/admin",
        "X-Original-Host": "admin.internal",
        "X-Host": "admin.internal",
        "X-Middleware-Subrequest": "middleware",
        "X-Envoy-Original-Path": "/admin",
        "Fastly-Client-IP": "10.0.0.1",
        "Client-IP": "10.0.0.1",
        "X-HTTP-Method": "DELETE",
        "X-Anything-New": "1",
      };
      ok(
        await backend.exchange(
          exchangeOf(
            call(50, "call_target", {
              label: "token",
              method: "POST",
              body: "x=1",
              headers: {
                ...smuggled,
                "Content-Type": "application/x-www-form-urlencoded",
                "If-None-Match": '"v1"',
                Connection: "If-None-Match",
              },
            }),
          ),
        ),
      );
      const seen = auth.seen.slice(before);
      assert.equal(seen.length, 1);
      const h = seen[0]!.headers;
      for (const name of Object.keys(smuggled))
        assert.equal(h[name.toLowerCase()], undefined, `${name} reached the target`);
      assert.equal(h["content-type"], "application/x-www-form-urlencoded", "an allowlisted header passes");
      assert.equal(h["if-none-match"], undefined, "an allowlisted header the caller's Connection nominates is dropped");
    });

    test("an unknown label is refused before any request, naming the labels that exist", async () => {
      const before = auth.seen.length;
      const text = refused(
        await backend.exchange(exchangeOf(call(6, "call_target", { label: "nope", method: "GET" }))),
      );
      assert.match(text, /^label nope: unknown target; known labels: prmd, token, /);
      assert.match(text, /list_targets/);
      assert.equal(auth.seen.length, before);
    });

    test("a redirect to another origin is refused before it is followed, without echoing the destination", async () => {
      const text = refused(
        await backend.exchange(exchangeOf(call(7, "call_target", { label: "to-elsewhere", method: "GET" }))),
      );
      assert.match(text, /^label to-elsewhere: redirect blocked/);
      assert.ok(!text.includes(elsewhere.base), text);
      assert.equal(elsewhere.seen.length, 0, "the other origin was never contacted");
    });

    test("a redirect to an allowlisted target is followed (307 keeps POST and body; 303 turns POST into GET)", async () => {
      const kept = ok(
        await backend.exchange(
          exchangeOf(call(8, "call_target", { label: "to-token", method: "POST", body: "grant_type=x" })),
        ),
      );
      assert.deepEqual(JSON.parse(decode(kept)), { access_token: "at-1", token_type: "Bearer", got: "grant_type=x" });
      const before = auth.seen.length;
      const switched = ok(
        await backend.exchange(
          exchangeOf(
            call(9, "call_target", {
              label: "post-redirect",
              method: "POST",
              body: "a=1",
              headers: { "Content-Type": "text/plain" },
            }),
          ),
        ),
      );
      assert.equal(switched.status_code, 200);
      const hops = auth.seen.slice(before);
      assert.deepEqual(
        hops.map((s) => [s.method, s.url, s.body]),
        [
          ["POST", "/post-redirect", "a=1"],
          ["GET", "/echo-headers", ""],
        ],
      );
      assert.equal(hops[1]!.headers["content-type"], undefined);
    });

    test("follow_redirects false returns the redirect itself; a Location that is a target URL reads harpoon://<label>", async () => {
      const relative = ok(
        await backend.exchange(
          exchangeOf(call(10, "call_target", { label: "to-token", method: "GET", follow_redirects: false })),
        ),
        validateCall,
      );
      assert.equal(relative.status_code, 307);
      assert.deepEqual((relative.headers as Record<string, string[]>).Location, ["/token"]);
      const target = ok(
        await backend.exchange(
          exchangeOf(call(11, "call_target", { label: "post-redirect", method: "GET", follow_redirects: false })),
        ),
      );
      assert.equal(target.status_code, 303);
      assert.deepEqual((target.headers as Record<string, string[]>).Location, ["harpoon://echo-headers"]);
      const foreign = ok(
        await backend.exchange(
          exchangeOf(call(12, "call_target", { label: "to-elsewhere", method: "GET", follow_redirects: false })),
        ),
      );
      assert.deepEqual((foreign.headers as Record<string, string[]>).Location, [`${elsewhere.base}/escape`]);
      assert.equal(elsewhere.seen.length, 0);
    });

    test("redirect limits: max_redirects hops at most, and never above the configured ceiling", async () => {
      assert.match(
        refused(
          await backend.exchange(
            exchangeOf(call(12, "call_target", { label: "loop", method: "GET", max_redirects: 2 })),
          ),
        ),
        /^label loop: redirect limit exceeded \(max_redirects 2\)$/,
      );
      assert.equal(auth.seen.filter((s) => s.url === "/loop").length, 3);
      assert.match(
        refused(
          await backend.exchange(
            exchangeOf(call(13, "call_target", { label: "loop", method: "GET", max_redirects: 6 })),
          ),
        ),
        /max_redirects must be less than or equal to 5/,
      );
      assert.match(
        refused(
          await backend.exchange(
            exchangeOf(call(14, "call_target", { label: "to-token", method: "GET", max_redirects: 0 })),
          ),
        ),
        /redirect limit exceeded/,
      );
    });

    test("a response over max_response_bytes is an error, not a truncation (declared length or streamed); exactly the limit is fine", async () => {
      assert.equal(
        refused(await backend.exchange(exchangeOf(call(15, "call_target", { label: "big", method: "GET" })))),
        "label big: response exceeds size limit (max_response_bytes 1024)",
      );
      assert.match(
        refused(await backend.exchange(exchangeOf(call(16, "call_target", { label: "big-chunked", method: "GET" })))),
        /response exceeds size limit/,
      );
      const exact = ok(
        await backend.exchange(exchangeOf(call(17, "call_target", { label: "exact", method: "GET" }))),
        validateCall,
      );
      assert.equal(exact.body_size_bytes, 1024);
      assert.equal(Buffer.from(exact.body_base64 as string, "base64").length, 1024);
      assert.match(
        refused(
          await backend.exchange(
            exchangeOf(call(18, "call_target", { label: "exact", method: "GET", max_response_bytes: 100 })),
          ),
        ),
        /response exceeds size limit \(max_response_bytes 100\)/,
      );
      assert.match(
        refused(
          await backend.exchange(
            exchangeOf(call(19, "call_target", { label: "exact", method: "GET", max_response_bytes: 4096 })),
          ),
        ),
        /max_response_bytes must be less than or equal to 1024/,
      );
      assert.match(
        refused(
          await backend.exchange(
            exchangeOf(call(20, "call_target", { label: "token", method: "POST", body: "z".repeat(1025) })),
          ),
        ),
        /request body exceeds size limit/,
      );
    });

    test("timeouts: timeout_ms ends a stalled call; out-of-range values are refused", async () => {
      const started = Date.now();
      assert.equal(
        refused(
          await backend.exchange(
            exchangeOf(call(21, "call_target", { label: "slow", method: "GET", timeout_ms: 150 })),
          ),
        ),
        "label slow: request failed (timed out after 150 ms)",
      );
      assert.ok(Date.now() - started < 5000);
      assert.match(
        refused(
          await backend.exchange(exchangeOf(call(22, "call_target", { label: "slow", method: "GET", timeout_ms: 50 }))),
        ),
        /timeout_ms must be at least 100ms/,
      );
      assert.match(
        refused(
          await backend.exchange(
            exchangeOf(call(23, "call_target", { label: "slow", method: "GET", timeout_ms: 120001 })),
          ),
        ),
        /timeout_ms must be less than or equal to 120000ms/,
      );
    });

    test("notifications/cancelled aborts the call it names", async () => {
      const slowHits = () => auth.seen.filter((s) => s.url === "/slow").length;
      const before = slowHits();
      const pending = backend.exchange(exchangeOf(call("c-1", "call_target", { label: "slow", method: "GET" })));
      // Cancel only once the request has reached the target, so the abort has a fetch to end.
      while (slowHits() === before) await new Promise((r) => setTimeout(r, 10));
      assert.equal(backend.health().inflight, 1);
      const ack = await backend.exchange(
        exchangeOf({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: "c-1" } }),
      );
      assert.equal(ack.kind, "ack");
      const result = await pending;
      assert.equal(result.kind, "failure");
      assert.ok(result.kind === "failure" && result.failure.source === "client_internal");
      assert.equal(backend.health().inflight, 0);
    });

    test("bad arguments are tool errors; an unknown tool is a JSON-RPC error", async () => {
      assert.match(
        refused(await backend.exchange(exchangeOf(call(24, "call_target", { label: "token" })))),
        /^label token: invalid parameters \(method\)/,
      );
      assert.match(
        refused(
          await backend.exchange(exchangeOf(call(25, "call_target", { label: "token", method: "GET", bogus: 1 }))),
        ),
        /invalid parameters/,
      );
      assert.match(
        refused(await backend.exchange(exchangeOf(call(26, "call_target", { label: "token", method: "DELETE" })))),
        /invalid method "DELETE"; use GET, POST or PUT/,
      );
      assert.match(
        refused(
          await backend.exchange(exchangeOf(call(27, "call_target", { label: "token", method: "GET", body: "x" }))),
        ),
        /a GET request cannot carry a body/,
      );
      assert.match(
        refused(await backend.exchange(exchangeOf(call(28, "call_target", { label: "", method: "GET" })))),
        /^label unknown: label is required$/,
      );
      const unknown = message(await backend.exchange(exchangeOf(call(29, "fetch_anything", {}))));
      assert.equal((unknown.error as { code: number }).code, -32602);
      assert.match((unknown.error as { message: string }).message, /unknown tool "fetch_anything"/);
    });

    test("get_oauth_target_audience: only auto-registered OAuth token endpoints, answered with the URL as discovered", async () => {
      assert.equal(
        refused(await backend.exchange(exchangeOf(call(30, "get_oauth_target_audience", { label: "token" })))),
        "label token: target is not an OAuth token endpoint",
      );
      assert.equal(
        refused(await backend.exchange(exchangeOf(call(31, "get_oauth_target_audience", { label: "nope" })))),
        "label nope: unknown target",
      );
      const classify = createHostClassifier({
        includeLoopback: true,
        includePrivate: true,
        suffixes: [],
        patterns: [],
      });
      const tokenUrl = `${auth.base.replace("127.0.0.1", "127.0.0.1")}/token?tenant=a`;
      const [registered] = registerDiscovered(
        backend.registry,
        classify,
        [{ url: tokenUrl, role: "token-endpoint", source: "oauth", index: 0 }],
        silentLogger,
      );
      assert.equal(registered?.label, "oauth-token-endpoint-0");
      assert.deepEqual(
        ok(
          await backend.exchange(
            exchangeOf(call(32, "get_oauth_target_audience", { label: "oauth-token-endpoint-0" })),
          ),
        ),
        { audience: tokenUrl },
      );
    });

    test("bodies stay out of the log and out of the call history unless capture_payloads", async () => {
      assert.ok(
        logLines.some((line) => line.includes("harpoon call completed")),
        "calls are logged",
      );
      assert.ok(
        !logLines.some((line) => line.includes("s3cr3t-body-value") || line.includes("at-1")),
        "no body in the log",
      );
      const history = backend.calls();
      assert.ok(
        history.some(
          (entry) => entry.label === "token" && entry.status === 200 && entry.requestBytes === SECRET_BODY.length,
        ),
      );
      assert.ok(history.every((entry) => entry.requestBody === undefined && entry.responseBody === undefined));

      const capturing = createHarpoonBackend({ ...options, capturePayloads: true, log: silentLogger });
      ok(
        await capturing.exchange(
          exchangeOf(call(33, "call_target", { label: "token", method: "POST", body: SECRET_BODY })),
        ),
      );
      const [entry] = capturing.calls();
      assert.equal(entry?.requestBody, SECRET_BODY);
      assert.match(entry?.responseBody ?? "", /"access_token":"at-1"/);
      await capturing.close();
    });
  });

  describe("routes: Unix socket targets and harpoon.http_proxy", () => {
    let dir: string;
    let socketServer: http.Server;
    let proxy: ForwardProxy;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "harpoon-"));
      // Deno's Unix-socket transport writes the request line in absolute form; servers must accept both.
      socketServer = http.createServer((req, res) =>
        json(res, 200, { via: "socket", path: new URL(req.url ?? "", "http://x").pathname, host: req.headers.host }),
      );
      await new Promise<void>((resolve) => socketServer.listen(join(dir, "target.sock"), resolve));
      proxy = await startForwardProxy();
    });
    after(async () => {
      socketServer.closeAllConnections();
      await Promise.all([new Promise((resolve) => socketServer.close(resolve)), proxy.close()]);
      rmSync(dir, { recursive: true, force: true });
    });

    test("a target with unix_socket is dialled over the socket, its URL kept as the logical address", async () => {
      // A just-released loopback port refuses TCP: reaching the answer proves the socket was used.
      const spare = net.createServer();
      await new Promise<void>((resolve) => spare.listen(0, "127.0.0.1", resolve));
      const port = (spare.address() as AddressInfo).port;
      await new Promise((resolve) => spare.close(resolve));
      const backend = createHarpoonBackend({
        ...options,
        targets: [{ label: "sock", url: `http://127.0.0.1:${port}/status`, unixSocket: join(dir, "target.sock") }],
      });
      const structured = ok(
        await backend.exchange(exchangeOf(call(1, "call_target", { label: "sock", method: "GET" }))),
      );
      assert.deepEqual(JSON.parse(decode(structured)), { via: "socket", path: "/status", host: `127.0.0.1:${port}` });
      await backend.close();
    });

    test("with http_proxy every call goes through the proxy", async () => {
      const proxyUrl = proxy.url;
      const backend = createHarpoonBackend({ ...options, httpProxy: proxyUrl });
      const structured = ok(
        await backend.exchange(exchangeOf(call(2, "call_target", { label: "token", method: "POST", body: "a=1" }))),
      );
      assert.equal(JSON.parse(decode(structured)).got, "a=1");
      const host = new URL(auth.base).host;
      assert.ok(
        proxy.seen.some((line) => line === `CONNECT ${host}` || line === `POST ${auth.base}/token`),
        `proxy saw: ${proxy.seen.join("; ")}`,
      );
      await backend.close();
    });
  });

  test("plaintext targets are refused unless allow_plaintext_http", () => {
    assert.throws(
      () => createHarpoonBackend({ ...options, allowPlaintextHttp: false }),
      (error: unknown) =>
        error instanceof HarpoonTargetError &&
        /^harpoon\.targets\[0\]: .*plaintext http; use https or set harpoon\.allow_plaintext_http/.test(error.message),
    );
  });
});
