import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { classifyBodyError, classifyFetchError, describeErrno } from "../../agent/backends/failure-kind.ts";
import { tunnelFailure } from "../../shared/protocol/index.ts";
import { assertTunnelFailure } from "../support/openapi.ts";

/** An error shaped as a runtime throws it: name, optional code, optional cause. */
function err(name: string, message: string, extra: { code?: string; cause?: unknown } = {}): Error {
  const error = new Error(message, extra.cause === undefined ? undefined : { cause: extra.cause });
  error.name = name;
  if (extra.code) Object.assign(error, { code: extra.code });
  return error;
}

const nodeFetch = (cause: Error) => err("TypeError", "fetch failed", { cause });

// Shapes recorded from Node 20 (undici), Deno 2 and Bun 1 against loopback servers.
const CASES: Array<[string, unknown, string, string]> = [
  [
    "node refused",
    nodeFetch(err("Error", "connect ECONNREFUSED 127.0.0.1:1", { code: "ECONNREFUSED" })),
    "connect",
    "connection_refused",
  ],
  [
    "deno refused",
    nodeFetch(
      err(
        "Error",
        "error sending request for url (http://127.0.0.1:9/): client error (Connect): tcp connect error: Connection refused (os error 111)",
      ),
    ),
    "connect",
    "connection_refused",
  ],
  [
    "bun refused",
    err("TypeError", "ECONNREFUSED: Unable to connect.", { code: "ECONNREFUSED" }),
    "connect",
    "connection_refused",
  ],
  [
    "node tls",
    nodeFetch(err("Error", "self-signed certificate", { code: "DEPTH_ZERO_SELF_SIGNED_CERT" })),
    "tls",
    "tls",
  ],
  [
    "deno tls",
    nodeFetch(err("Error", "client error (Connect): invalid peer certificate: UnknownIssuer")),
    "tls",
    "tls",
  ],
  [
    "bun tls",
    err("TypeError", "unable to verify the first certificate", { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }),
    "tls",
    "tls",
  ],
  ["node dns", nodeFetch(err("Error", "getaddrinfo ENOTFOUND mcp.invalid", { code: "ENOTFOUND" })), "dns", "dns"],
  [
    "deno dns",
    nodeFetch(
      err(
        "Error",
        "client error (Connect): dns error: failed to lookup address information: Name or service not known",
      ),
    ),
    "dns",
    "dns",
  ],
  [
    "node reset",
    nodeFetch(err("Error", "read ECONNRESET", { code: "ECONNRESET" })),
    "transport_closed",
    "connection_reset",
  ],
  [
    "deno reset",
    nodeFetch(err("Error", "Connection reset by peer (os error 104)")),
    "transport_closed",
    "connection_reset",
  ],
  [
    "node closed",
    nodeFetch(err("SocketError", "other side closed", { code: "UND_ERR_SOCKET" })),
    "transport_closed",
    "connection_closed",
  ],
  [
    "deno closed",
    nodeFetch(err("Error", "client error (SendRequest): connection closed before message completed")),
    "transport_closed",
    "connection_closed",
  ],
  [
    "unreachable",
    nodeFetch(err("Error", "connect EHOSTUNREACH", { code: "EHOSTUNREACH" })),
    "connect",
    "host_unreachable",
  ],
  ["timeout", err("TimeoutError", "The operation was aborted due to timeout"), "timeout", "timeout"],
  ["unknown", new TypeError("something odd"), "connect", "unknown"],
];

describe("classifyFetchError", () => {
  for (const [label, error, source, kind] of CASES) {
    test(label, () => {
      const { failure, detail } = classifyFetchError(error);
      assert.equal(failure.source, source);
      assert.equal(failure.kind, kind);
      assertTunnelFailure(tunnelFailure(failure));
      assert.doesNotMatch(detail, /https?:\/\//, "URLs never reach the detail");
    });
  }

  test("the backend's own timeout wins over whatever the runtime said", () => {
    assert.deepEqual(classifyFetchError(new Error("aborted"), true).failure, { source: "timeout", kind: "timeout" });
  });
});

describe("classifyBodyError", () => {
  test("a reset after the status line is a protocol failure with the response received", () => {
    const { failure } = classifyBodyError(nodeFetch(err("Error", "read ECONNRESET", { code: "ECONNRESET" })));
    assert.deepEqual(tunnelFailure(failure), {
      version: 1,
      source: "protocol",
      transport_error_kind: "connection_reset",
      upstream_response_received: true,
    });
  });
  test("an unknown read error is an unreadable body", () => {
    assert.equal(classifyBodyError(new Error("??")).failure.kind, "response_body_unreadable");
  });
});

describe("describeErrno", () => {
  test("spawn errors name the fix", () => {
    assert.match(describeErrno(err("Error", "spawn x ENOENT", { code: "ENOENT" })), /command not found/);
    assert.match(describeErrno(err("Error", "spawn x EACCES", { code: "EACCES" })), /permission denied/);
  });
});
