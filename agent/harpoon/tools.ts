/**
 * Harpoon's MCP surface: three tools, named, shaped and annotated as tunnel-client's, so the
 * tunnel service (its OAuth shim in particular) drives Airlock exactly as it drives
 * tunnel-client.
 *
 * - `list_targets` `{categories?, sources?, tags?}` → `{targets: [{label, description?,
 *   category?, source?, tags?, allowed_methods}]}`; never a URL.
 * - `call_target` `{label, method, headers?, body?, timeout_ms?, max_response_bytes?,
 *   follow_redirects?, max_redirects?}` → `{status_code, headers?, body_base64?,
 *   body_size_bytes, truncated?}` (see `call.ts` for the rules).
 * - `get_oauth_target_audience` `{label}` → `{audience}`: the exact upstream URL of an
 *   auto-registered OAuth token endpoint, for a `private_key_jwt` assertion's `aud`.
 *
 * A result carries the JSON both as `structuredContent` and as its one text block; a refusal
 * is `isError: true` with the text `label <label>: <what went wrong>`.
 */
import { z } from "zod";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import {
  ALLOWED_METHODS,
  CALLER_HEADER_ALLOWLIST,
  DEFAULT_TIMEOUT_MS,
  HEADER_NAME_PATTERN,
  HarpoonCallError,
  MAX_TIMEOUT_MS,
  MIN_TIMEOUT_MS,
  type Caller,
} from "./call.ts";
import { LABEL_PATTERN, hasAllTags, normalizeToken, type HarpoonRegistry } from "./registry.ts";

export const HARPOON_SERVER_INFO = { name: "harpoon", title: "Harpoon (Constrained HTTP Client)" } as const;

export const HARPOON_INSTRUCTIONS =
  "Harpoon is a constrained outbound HTTP client. list_targets shows the allowlisted targets by label; call_target sends a " +
  "GET, POST or PUT to one of them, with strict size, timeout and redirect limits. get_oauth_target_audience is a narrow " +
  "lookup of the private_key_jwt audience of an OAuth token-endpoint target. Harpoon cannot reach arbitrary hosts or " +
  "paths outside the configured allowlist.";

const labelSchema = (description: string) => ({
  type: "string",
  description,
  pattern: LABEL_PATTERN,
  minLength: 1,
  maxLength: 64,
});
const stringList = (description: string) => ({ type: "array", description, items: { type: "string" } });
const headerNames = { type: "string", pattern: HEADER_NAME_PATTERN };

/** The tool list, with the configured ceilings written into the schemas. */
export function harpoonTools(limits: { maxResponseBytes: number; maxRedirects: number }): Tool[] {
  return [
    {
      name: "list_targets",
      title: "List Harpoon targets",
      description: "List available Harpoon targets by label.",
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
      inputSchema: {
        type: "object",
        title: "List Harpoon targets",
        description: "List available allowlisted targets.",
        properties: {
          categories: stringList("Target categories to include."),
          sources: stringList("Target sources to include."),
          tags: stringList("Target tags to include (all tags must match)."),
        },
        additionalProperties: false,
      },
      outputSchema: {
        type: "object",
        title: "Harpoon target list",
        description: "Allowlisted targets available to call_target.",
        properties: {
          targets: {
            type: "array",
            description: "Allowlisted targets.",
            items: {
              type: "object",
              properties: {
                label: labelSchema("Target label."),
                description: { type: "string", description: "Target description." },
                category: { type: "string", description: "Target category." },
                source: { type: "string", description: "Target source." },
                tags: stringList("Target tags."),
                allowed_methods: {
                  type: "array",
                  description: "HTTP methods permitted for this target",
                  items: { type: "string", enum: [...ALLOWED_METHODS] },
                },
              },
              required: ["label", "allowed_methods"],
            },
          },
        },
        required: ["targets"],
      },
    },
    {
      name: "call_target",
      title: "Call Harpoon target",
      description: "Call an allowlisted HTTP target by label.",
      annotations: { openWorldHint: true },
      inputSchema: {
        type: "object",
        title: "Call Harpoon target",
        description: "Call an allowlisted HTTP target by label.",
        properties: {
          label: labelSchema("Allowlisted target label"),
          method: { type: "string", description: "HTTP method for the outbound request", enum: [...ALLOWED_METHODS] },
          headers: {
            type: "object",
            description: `HTTP headers to include in the request; only ${CALLER_HEADER_ALLOWLIST.join(", ")} are sent, and none that the request's own Connection header names`,
            default: {},
            additionalProperties: { type: "string" },
            propertyNames: headerNames,
          },
          body: { type: "string", description: "Request body as a raw string" },
          timeout_ms: {
            type: "integer",
            description: "Request timeout in milliseconds",
            minimum: MIN_TIMEOUT_MS,
            maximum: MAX_TIMEOUT_MS,
            default: DEFAULT_TIMEOUT_MS,
          },
          max_response_bytes: {
            type: "integer",
            description: "Maximum response bytes to read",
            minimum: 1,
            maximum: limits.maxResponseBytes,
            default: limits.maxResponseBytes,
          },
          follow_redirects: { type: "boolean", description: "Whether to follow HTTP redirects", default: true },
          max_redirects: {
            type: "integer",
            description: "Maximum redirects to follow when follow_redirects is true",
            minimum: 0,
            maximum: limits.maxRedirects,
            default: limits.maxRedirects,
          },
        },
        required: ["label", "method"],
        additionalProperties: false,
      },
      outputSchema: {
        type: "object",
        title: "Harpoon call result",
        description: "Response details from the target.",
        properties: {
          status_code: {
            type: "integer",
            description: "HTTP status code returned by the target.",
            minimum: 100,
            maximum: 599,
          },
          headers: {
            type: "object",
            description: "Response headers returned by the target.",
            additionalProperties: { type: "array", items: { type: "string" } },
            propertyNames: headerNames,
          },
          body_base64: {
            type: "string",
            description: "Base64-encoded response body bytes.",
            contentEncoding: "base64",
          },
          body_size_bytes: {
            type: "integer",
            description: "Number of bytes in body_base64.",
            minimum: 0,
            maximum: limits.maxResponseBytes,
          },
          truncated: { type: "boolean", description: "Whether the response body was truncated." },
        },
        required: ["status_code", "body_size_bytes"],
      },
    },
    {
      name: "get_oauth_target_audience",
      title: "Get OAuth target audience",
      description: "Resolve the exact private_key_jwt audience for an OAuth token endpoint target.",
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
      inputSchema: {
        type: "object",
        title: "Get OAuth target audience",
        description: "Resolve the exact upstream URL for an allowlisted OAuth token endpoint.",
        properties: { label: labelSchema("OAuth token-endpoint target label.") },
        required: ["label"],
        additionalProperties: false,
      },
      outputSchema: {
        type: "object",
        title: "OAuth target audience",
        description: "Exact private_key_jwt audience for an allowlisted OAuth token endpoint.",
        properties: {
          audience: {
            type: "string",
            description: "Exact upstream OAuth token endpoint URL to use as a private_key_jwt audience.",
            format: "uri",
          },
        },
        required: ["audience"],
      },
    },
  ];
}

/** Argument shapes, checked before anything runs (the JSON Schemas above say the same). */
const ListTargetsArgs = z.strictObject({
  categories: z.array(z.string()).optional(),
  sources: z.array(z.string()).optional(),
  tags: z.array(z.string()).optional(),
});
const CallTargetArgs = z.strictObject({
  label: z.string(),
  method: z.string(),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().optional(),
  timeout_ms: z.int().optional(),
  max_response_bytes: z.int().optional(),
  follow_redirects: z.boolean().optional(),
  max_redirects: z.int().optional(),
});
const AudienceArgs = z.strictObject({ label: z.string() });

export const HARPOON_TOOL_NAMES = ["list_targets", "call_target", "get_oauth_target_audience"] as const;

/** Thrown for a tool name Harpoon does not have (a JSON-RPC error, not a tool result). */
export class UnknownToolError extends Error {
  override name = "UnknownToolError";
}

/** `text` defaults to the structured payload; tunnel-client's text omits empty fields the structured form keeps. */
function success(payload: Record<string, unknown>, text: unknown = payload): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(text) }], structuredContent: payload };
}

function failure(label: string, reason: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: `label ${label || "unknown"}: ${reason}` }] };
}

function invalid(error: z.ZodError): string {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? ` (${issue.path.join(".")})` : "";
  return `invalid parameters${where}: ${issue?.message ?? "malformed arguments"}`;
}

export interface ToolRunner {
  call(name: string, args: unknown, signal: AbortSignal): Promise<CallToolResult>;
}

/** Dispatch `tools/call` to the three tools. */
export function createToolRunner(registry: HarpoonRegistry, caller: Caller): ToolRunner {
  return {
    async call(name, rawArgs, signal) {
      const args = rawArgs ?? {};
      if (name === "list_targets") {
        const parsed = ListTargetsArgs.safeParse(args);
        if (!parsed.success) return failure("", invalid(parsed.error));
        const wanted = (values?: string[]) =>
          new Set((values ?? []).map(normalizeToken).filter((value) => value !== ""));
        const categories = wanted(parsed.data.categories);
        const sources = wanted(parsed.data.sources);
        const tags = [...wanted(parsed.data.tags)];
        const targets = registry
          .targets()
          .filter(
            (target) =>
              (categories.size === 0 || categories.has(target.category)) &&
              (sources.size === 0 || sources.has(target.source)) &&
              hasAllTags(target.tags, tags),
          )
          .map((target) => ({
            label: target.label,
            ...(target.description ? { description: target.description } : {}),
            ...(target.category ? { category: target.category } : {}),
            ...(target.source ? { source: target.source } : {}),
            ...(target.tags.length > 0 ? { tags: target.tags } : {}),
            allowed_methods: [...ALLOWED_METHODS],
          }));
        return success({ targets });
      }
      if (name === "call_target") {
        const parsed = CallTargetArgs.safeParse(args);
        if (!parsed.success) {
          const label =
            typeof (args as { label?: unknown }).label === "string" ? (args as { label: string }).label : "";
          return failure(label, invalid(parsed.error));
        }
        try {
          const result = await caller(parsed.data, signal);
          const { headers, body_base64, truncated, ...always } = result;
          return success(
            { ...result },
            {
              status_code: always.status_code,
              ...(Object.keys(headers).length > 0 ? { headers } : {}),
              ...(body_base64 !== "" ? { body_base64 } : {}),
              body_size_bytes: always.body_size_bytes,
              ...(truncated ? { truncated } : {}),
            },
          );
        } catch (error) {
          if (error instanceof HarpoonCallError) return failure(error.label, error.reason);
          throw error;
        }
      }
      if (name === "get_oauth_target_audience") {
        const parsed = AudienceArgs.safeParse(args);
        if (!parsed.success) return failure("", invalid(parsed.error));
        const label = parsed.data.label.trim();
        if (label === "") return failure(label, "label is required");
        const target = registry.lookup(label);
        if (!target) return failure(label, "unknown target");
        if (target.category !== "oauth" || !hasAllTags(target.tags, ["auth-server-metadata", "token-endpoint"])) {
          return failure(label, "target is not an OAuth token endpoint");
        }
        if (target.url.username !== "" || target.url.password !== "" || target.url.hash !== "") {
          return failure(label, "target URL cannot be used as an OAuth audience");
        }
        return success({ audience: target.written });
      }
      throw new UnknownToolError(`unknown tool "${name}"; Harpoon's tools are ${HARPOON_TOOL_NAMES.join(", ")}`);
    },
  };
}
