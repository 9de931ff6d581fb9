/**
 * Validators built straight from `../shared/protocol/openapi.json` (never re-typed by
 * hand): the fake control plane and the protocol tests check every body against them.
 */
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { ValidateFunction } from "ajv";

/** Where the contract lives: `../shared` beside the repo (read-only), as CI lays it out. */
export const SHARED_DIR = new URL("../../../shared/", import.meta.url);
export const OPENAPI_URL = new URL("protocol/openapi.json", SHARED_DIR);

interface OpenApiDoc {
  components: { schemas: Record<string, Record<string, unknown>> };
  paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string; schema?: Record<string, unknown> }> }>>;
}

export const openapi = JSON.parse(readFileSync(OPENAPI_URL, "utf8")) as OpenApiDoc;

const ajv = new Ajv2020({ strict: false, allErrors: true, discriminator: false });
ajv.addSchema({ $id: "openapi", components: openapi.components }, "openapi");

const cache = new Map<string, ValidateFunction>();

/** A validator for `#/components/schemas/<name>`. */
export function schemaValidator(name: string): ValidateFunction {
  let validate = cache.get(name);
  if (!validate) {
    if (!openapi.components.schemas[name]) throw new Error(`openapi.json has no schema ${name}`);
    validate = ajv.compile({ $ref: `openapi#/components/schemas/${name}` });
    cache.set(name, validate);
  }
  return validate;
}

/** Throws with ajv's errors unless `value` is a valid `<name>`. */
export function assertSchema(name: string, value: unknown): void {
  const validate = schemaValidator(name);
  if (!validate(value)) throw new Error(`${name} invalid: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
}

/** The `tunnel_failure` provenance schema published in `x-tunnel-failure-schema`. */
export function assertTunnelFailure(value: unknown): void {
  const payload = openapi.components.schemas.TunnelResponsePayload as { properties: { resp_json: Record<string, unknown> } };
  const schema = payload.properties.resp_json["x-tunnel-failure-schema"] as Record<string, unknown>;
  let validate = cache.get("tunnel_failure");
  if (!validate) {
    const { $schema: _ignored, ...rest } = schema;
    validate = ajv.compile(rest);
    cache.set("tunnel_failure", validate);
  }
  if (!validate(value)) throw new Error(`tunnel_failure invalid: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
}

/** A query/header parameter's schema for one operation, for checking `limit`, `timeout_ms` and headers. */
export function parameterSchema(path: string, method: string, name: string): Record<string, unknown> | undefined {
  return openapi.paths[path]?.[method]?.parameters?.find((p) => p.name === name)?.schema;
}

/** Validate a value against a parameter's schema. */
export function assertParameter(path: string, method: string, name: string, value: unknown): void {
  const schema = parameterSchema(path, method, name);
  if (!schema) throw new Error(`openapi.json has no parameter ${name} on ${method} ${path}`);
  const key = `${method} ${path} ${name}`;
  let validate = cache.get(key);
  if (!validate) {
    validate = ajv.compile(schema);
    cache.set(key, validate);
  }
  if (!validate(value)) throw new Error(`${name}=${JSON.stringify(value)} invalid: ${ajv.errorsText(validate.errors)}`);
}

/** A fixture from `../shared/protocol/`. */
export function fixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`protocol/${name}`, SHARED_DIR), "utf8"));
}
