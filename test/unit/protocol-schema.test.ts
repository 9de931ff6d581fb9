/**
 * docs/openapi.json is generated from shared/protocol and committed: it must be current,
 * and it must hold together on its own (every $ref resolves, every schema compiles, every
 * operation names its path parameters and the client headers) because the fake control
 * plane validates all traffic against it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { renderProtocolDocument } from "../../scripts/protocol-schema.ts";
import { CLIENT_HEADERS } from "../../shared/protocol/index.ts";
import { OPENAPI_URL, openapi, requiredHeaders, schemaValidator } from "../support/openapi.ts";

/** Every `$ref` anywhere in a JSON value. */
function refsIn(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) refsIn(item, out);
  else if (value && typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) {
      if (key === "$ref" && typeof inner === "string") out.push(inner);
      else refsIn(inner, out);
    }
  }
  return out;
}

describe("docs/openapi.json", () => {
  test("is current: regenerating from shared/protocol gives the committed bytes (else run npm run gen:schema)", () => {
    assert.equal(readFileSync(OPENAPI_URL, "utf8"), renderProtocolDocument());
  });

  test("every $ref resolves to a component and every component compiles", () => {
    const refs = refsIn(openapi);
    assert.ok(refs.length > 10, `only ${refs.length} refs`);
    for (const ref of refs) {
      const name = /^#\/components\/schemas\/(.+)$/.exec(ref)?.[1];
      assert.ok(name && openapi.components.schemas[name], `dangling ${ref}`);
    }
    for (const name of Object.keys(openapi.components.schemas))
      assert.equal(typeof schemaValidator(name), "function", name);
  });

  test("every operation declares its path parameters and requires the client headers", () => {
    const operations = Object.entries(openapi.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ path, method, op })),
    );
    assert.deepEqual(operations.map(({ path, method }) => `${method} ${path}`).sort(), [
      "get /v1/tunnels/{tunnel_id}",
      "get /v1/tunnels/{tunnel_id}/poll",
      "post /v1/tunnels/{tunnel_id}/response",
    ]);
    for (const { path, method, op } of operations) {
      const declared = (op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name);
      assert.deepEqual(
        declared,
        [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]),
        `${method} ${path}`,
      );
      const required = requiredHeaders(path, method);
      for (const name of [
        CLIENT_HEADERS.name,
        CLIENT_HEADERS.version,
        CLIENT_HEADERS.instanceId,
        CLIENT_HEADERS.serverInfo,
      ]) {
        assert.ok(required.includes(name), `${method} ${path} must require ${name}`);
      }
      assert.ok(op.responses?.["200"], `${method} ${path} has a 200`);
    }
    assert.ok(requiredHeaders("/v1/tunnels/{tunnel_id}/response", "post").includes(CLIENT_HEADERS.shardToken));
  });
});
