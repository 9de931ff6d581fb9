import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { connectingAddress } from "../../agent/ops/access.ts";
import {
  baseUrl,
  ipv6Unavailable,
  listenAttempts,
  listenFirst,
  parseListenAddr,
  serve,
  unixBaseUrl,
  unixSocketOf,
  type ListenAttempt,
} from "../../agent/runtime/serve.ts";
import { createHttpClient } from "../../agent/runtime/http-client.ts";
import { detectRuntime } from "../../agent/version.ts";

describe("parseListenAddr", () => {
  test("reads tunnel-client listen addresses", () => {
    assert.deepEqual(parseListenAddr("127.0.0.1:8080"), { hostname: "127.0.0.1", port: 8080 });
    assert.deepEqual(parseListenAddr(":0"), { hostname: "", port: 0 }, "empty host: all interfaces");
    assert.deepEqual(parseListenAddr("0.0.0.0:8080"), { hostname: "0.0.0.0", port: 8080 });
    assert.deepEqual(parseListenAddr("[::1]:9090"), { hostname: "::1", port: 9090 });
    assert.deepEqual(parseListenAddr("localhost:1"), { hostname: "localhost", port: 1 });
  });

  test("rejects addresses without a usable port", () => {
    for (const bad of ["127.0.0.1", "127.0.0.1:http", "::1:80", "host:70000", ""]) {
      assert.throws(() => parseListenAddr(bad), /listen address/, bad);
    }
  });

  test("wildcard binds are reached through loopback", () => {
    assert.equal(baseUrl("", 8080), "http://127.0.0.1:8080", "the dual-stack wildcard takes IPv4 loopback too");
    assert.equal(baseUrl("0.0.0.0", 80), "http://127.0.0.1:80");
    assert.equal(baseUrl("::", 80), "http://[::1]:80");
    assert.equal(baseUrl("::1", 80), "http://[::1]:80");
  });
});

/**
 * `:8080` as Go binds it: one dual-stack socket, or IPv4 where the host has no IPv6. Only the
 * listen options are checked here (with a recording `listen`); tests never bind a wildcard.
 */
describe("listen address resolution (tunnel-client's :8080)", () => {
  test("an empty host is :: with ipv6Only false, then 0.0.0.0; any other host is bound as written", () => {
    assert.deepEqual(listenAttempts(""), [{ hostname: "::", ipv6Only: false }, { hostname: "0.0.0.0" }]);
    for (const host of ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost"])
      assert.deepEqual(listenAttempts(host), [{ hostname: host }], host);
  });

  const refuse = (code: string, message = code) => Object.assign(new Error(message), { code });

  test("falls back to 0.0.0.0 when IPv6 is unavailable (Node's and Bun's codes, Deno's message)", async () => {
    for (const error of [
      refuse("EAFNOSUPPORT"),
      refuse("EADDRNOTAVAIL"),
      new Error("Address family not supported by protocol (os error 97)"),
    ]) {
      const tried: ListenAttempt[] = [];
      const bound = await listenFirst(listenAttempts(""), async (attempt) => {
        tried.push(attempt);
        if (attempt.hostname === "::") throw error;
        return attempt.hostname;
      });
      assert.equal(bound, "0.0.0.0", error.message);
      assert.deepEqual(tried, [{ hostname: "::", ipv6Only: false }, { hostname: "0.0.0.0" }]);
    }
  });

  test("a port in use is reported as it is, not retried on IPv4", async () => {
    const tried: string[] = [];
    await assert.rejects(
      listenFirst(listenAttempts(""), async (attempt) => {
        tried.push(attempt.hostname);
        throw refuse("EADDRINUSE", "listen EADDRINUSE: address already in use :::8080");
      }),
      /EADDRINUSE/,
    );
    assert.deepEqual(tried, ["::"]);
    assert.equal(ipv6Unavailable(refuse("EADDRINUSE")), false);
    assert.equal(ipv6Unavailable(undefined), false);
  });
});

describe(`serve under ${detectRuntime().name}`, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test("binds 127.0.0.1:0, answers, writes and removes the url file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airlock-serve-"));
    dirs.push(dir);
    const urlFile = join(dir, "health.url");
    const server = await serve((request) => Response.json({ path: new URL(request.url).pathname }), {
      hostname: "127.0.0.1",
      port: 0,
      urlFile,
    });
    try {
      assert.ok(server.port > 0);
      assert.equal(server.url, `http://127.0.0.1:${server.port}`);
      assert.equal((await readFile(urlFile, "utf8")).trim(), server.url);
      assert.equal((await stat(urlFile)).mode & 0o777, 0o600);
      const response = await fetch(`${server.url}/readyz`);
      assert.deepEqual(await response.json(), { path: "/readyz" });
    } finally {
      await server.close();
    }
    await assert.rejects(stat(urlFile), { code: "ENOENT" });
    await assert.rejects(fetch(`${server.url}/healthz`));
  });

  test("health.unix_socket: serves on the socket, publishes http+unix://, refuses a live socket, removes it on close", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airlock-serve-"));
    dirs.push(dir);
    const socket = join(dir, "sub", "health.sock");
    const urlFile = join(dir, "health.url");
    const app = (request: Request) => Response.json({ path: new URL(request.url).pathname });
    const server = await serve(app, { hostname: "127.0.0.1", port: 0, unixSocket: socket, urlFile });
    const client = createHttpClient({ unixSocket: socket });
    try {
      assert.equal(server.url, unixBaseUrl(socket));
      assert.equal(unixSocketOf(server.url), socket, "the URL names the socket");
      assert.equal((await readFile(urlFile, "utf8")).trim(), server.url);
      assert.deepEqual(await (await client.fetch("http://localhost/readyz")).json(), { path: "/readyz" });
      await assert.rejects(
        serve(app, { hostname: "127.0.0.1", port: 0, unixSocket: socket }),
        /already accepting connections: another agent serves it/,
      );
    } finally {
      await client.close();
      await server.close();
    }
    await assert.rejects(stat(socket), { code: "ENOENT" });
    await assert.rejects(stat(urlFile), { code: "ENOENT" });
    assert.equal(unixSocketOf("http://127.0.0.1:8080"), undefined);
  });

  test("the connecting address comes from Hono's getConnInfo for this runtime; unknown without a server", async () => {
    const app = new Hono();
    app.get("/", (c) => c.text(connectingAddress(c) ?? "unknown"));
    const server = await serve(app.fetch, { hostname: "127.0.0.1", port: 0 });
    try {
      assert.match(await (await fetch(server.url)).text(), /^(::ffff:)?127\.0\.0\.1$/);
    } finally {
      await server.close();
    }
    assert.equal(
      await (await app.request("/")).text(),
      "unknown",
      "a request that came through no server has no peer address",
    );
  });

  test("a port in use is an error that says what to do", async () => {
    const first = await serve(() => new Response("one"), { hostname: "127.0.0.1", port: 0 });
    try {
      await assert.rejects(
        serve(() => new Response("two"), { hostname: "127.0.0.1", port: first.port }),
        /cannot listen on 127\.0\.0\.1:\d+.*health\.listen_addr/,
      );
    } finally {
      await first.close();
    }
  });
});
