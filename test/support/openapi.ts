/**
 * Validators built straight from the repository's wire contract, `docs/openapi.json`
 * (generated from shared/protocol by `npm run gen:schema`, never re-typed by hand): the
 * fake control plane and the protocol tests check every path, header and body against them.
 */
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { ValidateFunction } from "ajv";

/** The committed contract. */
export const OPENAPI_URL = new URL("../../docs/openapi.json", import.meta.url);
const FIXTURES = new URL("../fixtures/protocol/", import.meta.url);

export interface OpenApiParameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: Record<string, unknown>;
}
export interface OpenApiOperation {
  parameters?: OpenApiParameter[];
  responses?: Record<string, unknown>;
  requestBody?: { content?: Record<string, { schema?: Record<string, unknown> }> };
}
export interface OpenApiDoc {
  components: { schemas: Record<string, Record<string, unknown>> };
  paths: Record<string, Record<string, OpenApiOperation>>;
}

export const openapi = JSON.parse(readFileSync(OPENAPI_URL, "utf8")) as OpenApiDoc;

const ajv = new Ajv2020({ strict: false, allErrors: true, discriminator: false });
ajv.addSchema({ $id: "openapi", components: openapi.components }, "openapi");

const cache = new Map<string, ValidateFunction>();

/** A validator for `#/components/schemas/<name>`. */
export function schemaValidator(name: string): ValidateFunction {
  let validate = cache.get(name);
  if (!validate) {
    if (!openapi.components.schemas[name]) throw new Error(`docs/openapi.json has no schema ${name}`);
    validate = ajv.compile({ $ref: `openapi#/components/schemas/${name}` });
    cache.set(name, validate);
  }
  return validate;
}

/** Throws with ajv's errors unless `value` is a valid `<name>`. */
export function assertSchema(name: string, value: unknown): void {
  const validate = schemaValidator(name);
  if (!validate(value))
    throw new Error(`${name} invalid: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
}

/** `error.data.tunnel_failure` of a synthesised failure (`TunnelFailureProvenance`). */
export function assertTunnelFailure(value: unknown): void {
  assertSchema("TunnelFailureProvenance", value);
}

/** A query/header parameter's schema for one operation, for checking `limit`, `timeout_ms` and headers. */
export function parameterSchema(path: string, method: string, name: string): Record<string, unknown> | undefined {
  return openapi.paths[path]?.[method]?.parameters?.find((p) => p.name === name)?.schema;
}

/** Validate a value against a parameter's schema. */
export function assertParameter(path: string, method: string, name: string, value: unknown): void {
  const schema = parameterSchema(path, method, name);
  if (!schema) throw new Error(`docs/openapi.json has no parameter ${name} on ${method} ${path}`);
  const key = `${method} ${path} ${name}`;
  let validate = cache.get(key);
  if (!validate) {
    // Compiled inside the document so a parameter schema's $ref (McpServerInfo) resolves.
    validate = ajv.compile({ $id: `param:${key}`, ...schema, components: openapi.components });
    cache.set(key, validate);
  }
  if (!validate(value)) throw new Error(`${name}=${JSON.stringify(value)} invalid: ${ajv.errorsText(validate.errors)}`);
}

/** One operation's parameters; throws when the contract has no such operation (the fake and the contract drifted). */
function parametersOf(path: string, method: string): OpenApiParameter[] {
  const operation = openapi.paths[path]?.[method];
  if (!operation) throw new Error(`docs/openapi.json has no operation ${method.toUpperCase()} ${path}`);
  return operation.parameters ?? [];
}

/** The header parameters the contract marks required on one operation. */
export function requiredHeaders(path: string, method: string): string[] {
  return parametersOf(path, method)
    .filter((p) => p.in === "header" && p.required)
    .map((p) => p.name);
}

/** The query parameters the contract allows on one operation. */
export function queryParameters(path: string, method: string): string[] {
  return parametersOf(path, method)
    .filter((p) => p.in === "query")
    .map((p) => p.name);
}

/** A vendored wire sample from `test/fixtures/protocol/`. */
export function fixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8"));
}
