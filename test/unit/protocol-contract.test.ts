/**
 * Cross-check: Airlock's contract (docs/openapi.json, generated from shared/protocol)
 * against OpenAI's published client contract, when a copy sits beside the repository at
 * ../shared/protocol/openapi.json (as on the project's machines). This is the only code
 * that reads ../shared/. Without the file it says so plainly and checks what it can alone.
 *
 * Every deliberate difference is listed below with its reason; anything else fails.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { FAILURE_SOURCES, TRANSPORT_ERROR_KINDS } from "../../shared/protocol/index.ts";
import { assertSchema, fixture, openapi, type OpenApiDoc } from "../support/openapi.ts";

const UPSTREAM_DIR = new URL("../../../shared/protocol/", import.meta.url);
const UPSTREAM = new URL("openapi.json", UPSTREAM_DIR);
const FIXTURES = ["fixture-poll_command_envelope.json", "fixture-jsonrpc_notify_response.json"];

/** Upstream paths Airlock does not implement, and why. */
const NOT_IMPLEMENTED_PATHS: Record<string, string> = {
  "/v1/tunnels/{tunnel_id}/cloudflare/runtime":
    "managed Cloudflare runtime material for OpenAI's hosted tunnels; Airlock's hub and relay are the customer's own",
};
/** Upstream components that only those paths use. */
const NOT_IMPLEMENTED_SCHEMAS = new Set(["ManagedCloudflareRuntimeResponse", "CloudflareTunnelResponse"]);
/** Upstream parameters Airlock's agent never sends, and why. */
const NOT_SENT_PARAMETERS: Record<string, string> = {
  "X-Client-Request-Id": "optional diagnostics id; the agent's logs carry the request_id instead",
};
/** Fields Airlock requires that the upstream leaves optional (with a default), and why. */
const STRICTER_REQUIRED: Record<string, string[]> = {
  // Upstream defaults command_type to session_termination only inside its oneOf branch; an
  // absent command_type means jsonrpc to every reader, so a termination must name itself.
  SessionTerminationPolledCommand: ["command_type"],
};

/**
 * Values Airlock's contract has beyond the upstream's, and why: tunnel-client speaks them to
 * the service (its `oauth_discovery` command and answer), the published contract does not list them.
 */
const EXTRA_VALUES: Record<string, string[]> = {
  // tunnel-client answers `oauth_discovery` with `oauth_discovery_response` (pkg/controlplane/wiretypes).
  "TunnelResponsePayload.resp_type": ["oauth_discovery_response"],
  ResponsePayloadType: ["oauth_discovery_response"],
};

/** Our values without the deliberate extras under `key`. */
function withoutExtras(values: string[] | undefined, key: string): string[] | undefined {
  const extra = EXTRA_VALUES[key] ?? [];
  return values?.filter((value) => !extra.includes(value));
}

type Schema = Record<string, unknown> & {
  properties?: Record<string, Record<string, unknown>>;
  required?: string[];
  anyOf?: Schema[];
};

type Property = Record<string, unknown>;

/**
 * Fields and required fields of an object schema; for an anyOf of objects, every branch's
 * definitions of each field and the fields all branches require.
 */
function shape(schema: Schema): { properties: Record<string, Property[]>; required: string[] } {
  if (schema.anyOf && !schema.properties) {
    const branches = schema.anyOf.map(shape);
    const required = branches.map((b) => b.required).reduce((a, b) => a.filter((name) => b.includes(name)));
    const properties: Record<string, Property[]> = {};
    for (const branch of branches) {
      for (const [name, list] of Object.entries(branch.properties))
        properties[name] = [...(properties[name] ?? []), ...list];
    }
    return { properties, required };
  }
  return {
    properties: Object.fromEntries(Object.entries(schema.properties ?? {}).map(([name, p]) => [name, [p]])),
    required: schema.required ?? [],
  };
}

/** The closed set of values (const, enum or upstream's x-known-values) of a field's definitions, sorted; undefined when open. */
function valuesOf(definitions: Property[] | undefined, doc: OpenApiDoc): string[] | undefined {
  const values = new Set<string>();
  for (const property of definitions ?? []) {
    const ref = typeof property.$ref === "string" ? doc.components.schemas[property.$ref.split("/").pop()!] : undefined;
    const source = (ref ?? property) as Property;
    const list =
      source.const !== undefined
        ? [source.const]
        : ((source.enum ?? source["x-known-values"]) as unknown[] | undefined);
    if (!list) return undefined;
    for (const value of list) values.add(String(value));
  }
  return values.size ? [...values].sort() : undefined;
}

/** Check the structure; without the upstream file, the in-repo half alone. */
test("docs/openapi.json agrees with ../shared/protocol/openapi.json on paths, methods, parameters, required fields and enums", () => {
  for (const name of FIXTURES) {
    const body = fixture(name);
    assertSchema(name.includes("poll") ? "PolledCommandList" : "TunnelResponsePayload", body);
  }
  assert.deepEqual(
    valuesOf(shape(openapi.components.schemas.TunnelFailureProvenance as Schema).properties.source, openapi),
    [...FAILURE_SOURCES].sort(),
  );

  if (!existsSync(UPSTREAM)) {
    console.log(
      "skipped cross-check: ../shared/protocol/openapi.json not present (checked the in-repo schema against its vendored fixtures only)",
    );
    return;
  }
  const upstream = JSON.parse(readFileSync(UPSTREAM, "utf8")) as OpenApiDoc;

  for (const name of FIXTURES) {
    assert.equal(
      readFileSync(new URL(`../fixtures/protocol/${name}`, import.meta.url), "utf8"),
      readFileSync(new URL(name, UPSTREAM_DIR), "utf8"),
      `vendored ${name} differs from upstream`,
    );
  }

  const ours = Object.keys(openapi.paths).sort();
  const theirs = Object.keys(upstream.paths)
    .filter((p) => !(p in NOT_IMPLEMENTED_PATHS))
    .sort();
  assert.deepEqual(ours, theirs, "paths");
  for (const path of ours) {
    assert.deepEqual(
      Object.keys(openapi.paths[path]!).sort(),
      Object.keys(upstream.paths[path]!).sort(),
      `methods of ${path}`,
    );
    for (const [method, theirOp] of Object.entries(upstream.paths[path]!)) {
      const ourOp = openapi.paths[path]![method]!;
      const where = `${method.toUpperCase()} ${path}`;
      const ourParams = new Map((ourOp.parameters ?? []).map((p) => [`${p.in} ${p.name}`, p]));
      for (const param of theirOp.parameters ?? []) {
        const mine = ourParams.get(`${param.in} ${param.name}`);
        if (!mine) {
          assert.ok(
            param.name in NOT_SENT_PARAMETERS && !param.required,
            `${where}: upstream parameter ${param.in} ${param.name} is missing`,
          );
          continue;
        }
        if (param.required) assert.equal(mine.required, true, `${where}: ${param.name} is required upstream`);
      }
      const statuses = Object.keys(ourOp.responses ?? {});
      for (const status of Object.keys(theirOp.responses ?? {}))
        assert.ok(statuses.includes(status), `${where}: upstream answers ${status}`);
      const body = (op: typeof ourOp) => op.requestBody?.content?.["application/json"]?.schema?.$ref;
      assert.equal(body(ourOp), body(theirOp), `${where}: request body`);
    }
  }

  for (const [name, theirSchema] of Object.entries(upstream.components.schemas)) {
    if (NOT_IMPLEMENTED_SCHEMAS.has(name)) continue;
    const ourSchema = openapi.components.schemas[name];
    assert.ok(ourSchema, `component ${name} is missing`);
    const theirs = shape(theirSchema as Schema);
    const mine = shape(ourSchema as Schema);
    for (const field of theirs.required)
      assert.ok(mine.required.includes(field), `${name}.${field} is required upstream`);
    const extra = mine.required.filter((field) => !theirs.required.includes(field));
    assert.deepEqual(extra, STRICTER_REQUIRED[name] ?? [], `${name}: fields Airlock requires beyond the upstream`);
    for (const [field, property] of Object.entries(theirs.properties)) {
      assert.ok(field in mine.properties, `${name}.${field} is missing`);
      assert.deepEqual(
        withoutExtras(valuesOf(mine.properties[field], openapi), `${name}.${field}`),
        valuesOf(property, upstream),
        `${name}.${field}: values`,
      );
    }
    assert.deepEqual(
      withoutExtras(valuesOf([ourSchema], openapi), name),
      valuesOf([theirSchema], upstream),
      `${name}: values`,
    );
  }

  // The failure provenance is published inside TunnelResponsePayload.resp_json.
  const payload = upstream.components.schemas.TunnelResponsePayload as {
    properties: { resp_json: Record<string, unknown> };
  };
  const provenance = shape(payload.properties.resp_json["x-tunnel-failure-schema"] as Schema);
  const ourProvenance = shape(openapi.components.schemas.TunnelFailureProvenance as Schema);
  assert.deepEqual(ourProvenance.required.sort(), provenance.required.sort(), "tunnel_failure: required");
  assert.deepEqual(
    Object.keys(ourProvenance.properties).sort(),
    Object.keys(provenance.properties).sort(),
    "tunnel_failure: fields",
  );
  assert.deepEqual(
    valuesOf(ourProvenance.properties.source, openapi),
    valuesOf(provenance.properties.source, upstream),
    "tunnel_failure.source",
  );
  assert.deepEqual(
    [...TRANSPORT_ERROR_KINDS].sort(),
    valuesOf(provenance.properties.transport_error_kind, upstream),
    "tunnel_failure.transport_error_kind",
  );
});
