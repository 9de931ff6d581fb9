/**
 * Builds Airlock's machine-readable wire contract, `docs/openapi.json`, from the zod
 * schemas in shared/protocol: the same schemas the agent and the hub decode with, so the
 * document cannot drift from the code. `scripts/gen-protocol-schema.ts` writes it;
 * test/unit/protocol-schema.test.ts fails when the committed file is stale.
 *
 * Where Airlock is stricter than OpenAI's published contract it says so here (the client
 * headers are required, the failure provenance is a closed set); the cross-check test
 * (test/unit/protocol-contract.test.ts) lists every difference from that contract.
 */
import { z } from "zod";
import {
  AIRLOCK_CAPABILITIES,
  AirlockCancelCommand,
  AirlockStreamOpenCommand,
  APIErrorBody,
  APIErrorResponse,
  CLIENT_HEADERS,
  FailureSource,
  HeaderMap,
  JsonRpcPolledCommand,
  MAX_SERVER_INFO_BYTES,
  POLL_LIMIT_MAX,
  PolledCommandListContract,
  ResponseType,
  ServerInfo,
  SessionTerminationPolledCommand,
  OAuthDiscoveryPolledCommand,
  TunnelClientMetadata,
  TunnelFailureProvenance,
  TunnelResponseAck,
  TunnelResponsePayload,
  TransportErrorKind,
} from "../shared/protocol/index.ts";

/** Where the document is committed, relative to the repository root. */
export const PROTOCOL_SCHEMA_PATH = "docs/openapi.json";

type Json = Record<string, unknown>;

/** Component name → zod schema. Names follow the upstream contract where it has the same object. */
const COMPONENTS: Record<string, z.ZodType> = {
  PolledCommandList: PolledCommandListContract,
  JsonRpcPolledCommand,
  SessionTerminationPolledCommand,
  OAuthDiscoveryPolledCommand,
  AirlockCancelCommand,
  AirlockStreamOpenCommand,
  HeaderMap,
  TunnelResponsePayload,
  ResponsePayloadType: ResponseType,
  TunnelResponseAck,
  TunnelFailureProvenance,
  FailureSource,
  TransportErrorKind,
  TunnelClientMetadata,
  APIErrorResponse,
  APIErrorBody,
  McpServerInfo: ServerInfo,
};

function componentSchemas(): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, { io: "input", uri: (id) => `#/components/schemas/${id}` });
  const out: Record<string, Json> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    // OpenAPI 3.1 names the dialect once (jsonSchemaDialect); per-component ids would only shadow the refs.
    const { $schema: _dialect, $id: _id, ...rest } = schema as Json;
    out[id] = rest;
  }
  return out;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonSchema = (schema: z.ZodType): Json => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: "input" }) as Json;
  return rest;
};

function header(name: string, required: boolean, description: string, schema: Json = { type: "string" }): Json {
  return { name, in: "header", required, description, schema };
}

/** Headers on every agent → control plane call. Airlock requires the client headers the upstream lists as optional. */
const CLIENT_HEADER_PARAMETERS: Json[] = [
  header(CLIENT_HEADERS.name, true, "Stable client implementation name, for diagnostics."),
  header(CLIENT_HEADERS.version, true, "Client implementation version, for diagnostics."),
  header(
    CLIENT_HEADERS.instanceId,
    true,
    "Random per agent process, stable for its life; the hub pins sessions of process-affine channels to it.",
  ),
  header(
    CLIENT_HEADERS.serverInfo,
    true,
    "Compact JSON McpServerInfo: the channels this agent serves, proc_affinity only where true.",
    {
      type: "string",
      maxLength: MAX_SERVER_INFO_BYTES,
      contentMediaType: "application/json",
      contentSchema: ref("McpServerInfo"),
    },
  ),
  header(
    CLIENT_HEADERS.capabilities,
    false,
    `Airlock extension: the extensions this agent implements, a comma list of ${AIRLOCK_CAPABILITIES.join(", ")}. Only an Airlock hub reads it.`,
  ),
];

const TUNNEL_ID: Json = {
  name: "tunnel_id",
  in: "path",
  required: true,
  description: "Opaque tunnel id (tunnel_ + 32 lowercase alphanumerics).",
  schema: { type: "string" },
};

function errorResponse(description: string): Json {
  return { description, content: { "application/json": { schema: ref("APIErrorResponse") } } };
}

/** The error statuses each operation can answer, with what they mean to an agent. */
const ERRORS: Record<string, string> = {
  "400": "Bad request, e.g. invalid_tunnel_id_format or a missing X-Tunnel-Shard-Token.",
  "401": "Wrong or missing key: needs an operator; do not retry in a loop.",
  "403": "tunnel_use_forbidden: the key may not use this tunnel; needs an operator.",
  "404": "pending_request_not_found: already answered, expired or unknown. Done; never replay the MCP work.",
  "413": "request_body_too_large.",
  "429": "rate_limit_exceeded: back off, honouring Retry-After.",
  "503": "Temporarily unavailable: back off, honouring Retry-After.",
};
const errors = (...codes: string[]) => Object.fromEntries(codes.map((code) => [code, errorResponse(ERRORS[code]!)]));

function paths(): Json {
  const base = "/v1/tunnels/{tunnel_id}";
  const security = [{ BearerAuth: [] }];
  return {
    [base]: {
      get: {
        operationId: "getTunnelMetadata",
        summary: "Tunnel metadata (id, name, description), for diagnostics",
        security,
        parameters: [TUNNEL_ID, ...CLIENT_HEADER_PARAMETERS],
        responses: {
          "200": {
            description: "The tunnel.",
            content: { "application/json": { schema: ref("TunnelClientMetadata") } },
          },
          ...errors("401", "403", "429"),
        },
      },
    },
    [`${base}/poll`]: {
      get: {
        operationId: "pollTunnelCommands",
        summary: "Long-poll for commands",
        security,
        parameters: [
          TUNNEL_ID,
          {
            name: "limit",
            in: "query",
            required: false,
            description: "A hint, not a concurrency limit: process every command returned.",
            schema: jsonSchema(z.int().min(1).max(POLL_LIMIT_MAX)),
          },
          {
            name: "timeout_ms",
            in: "query",
            required: false,
            description: "Requested hold; the server bounds it.",
            schema: jsonSchema(z.int().min(1)),
          },
          {
            name: "channel",
            in: "query",
            required: false,
            explode: true,
            description: "Airlock hub: only commands for these channels (repeatable).",
            schema: { type: "array", items: { type: "string" } },
          },
          ...CLIENT_HEADER_PARAMETERS,
        ],
        responses: {
          "200": {
            description: "Every command the agent must process (an empty list means the same as 204).",
            content: { "application/json": { schema: ref("PolledCommandList") } },
          },
          "204": { description: "No work: poll again." },
          ...errors("400", "401", "403", "429", "503"),
        },
      },
    },
    [`${base}/response`]: {
      post: {
        operationId: "postTunnelResponse",
        summary: "Post one intermediate or final result for one command",
        security,
        parameters: [
          TUNNEL_ID,
          ...CLIENT_HEADER_PARAMETERS,
          header(CLIENT_HEADERS.shardToken, true, "The command's shard_token, exactly; never in the body."),
        ],
        requestBody: { required: true, content: { "application/json": { schema: ref("TunnelResponsePayload") } } },
        responses: {
          "200": { description: "Accepted.", content: { "application/json": { schema: ref("TunnelResponseAck") } } },
          ...errors("400", "401", "403", "404", "413", "429", "503"),
        },
      },
    },
  };
}

/** The whole document, as committed in {@link PROTOCOL_SCHEMA_PATH}. */
export function buildProtocolDocument(): Json {
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "Airlock tunnel protocol",
      version: "1",
      description:
        "The agent ↔ control plane contract Airlock's agent, hub and relay implement (OpenAI's Secure MCP Tunnel client contract plus Airlock's extensions). Generated from shared/protocol by scripts/gen-protocol-schema.ts; prose in docs/protocol.md.",
    },
    "x-airlock-capabilities": [...AIRLOCK_CAPABILITIES],
    security: [{ BearerAuth: [] }],
    paths: paths(),
    components: {
      securitySchemes: {
        BearerAuth: { type: "http", scheme: "bearer", description: "Authorization: Bearer <runtime key>." },
      },
      schemas: componentSchemas(),
    },
  };
}

/** The file's exact text: two-space JSON and a final newline. */
export function renderProtocolDocument(): string {
  return `${JSON.stringify(buildProtocolDocument(), null, 2)}\n`;
}
