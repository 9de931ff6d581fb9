/**
 * MCP facts both halves use, kept once: which list methods exist and where their results
 * sit, and what a request targets (the tool, prompt or resource its params name). The
 * agent's routing and reports, the policy evaluator and the audit log all read them here.
 */
import { isObject } from "../jsonrpc.ts";

/** The list methods: the result field each fills, the key naming an entry, and the entries' kind. */
export const LIST_METHODS = {
  "tools/list": { field: "tools", key: "name", kind: "tool" },
  "prompts/list": { field: "prompts", key: "name", kind: "prompt" },
  "resources/list": { field: "resources", key: "uri", kind: "resource" },
  "resources/templates/list": { field: "resourceTemplates", key: "uriTemplate", kind: "resource" },
} as const;
export type ListMethod = keyof typeof LIST_METHODS;

/** True when `method` is one of {@link LIST_METHODS}. */
export function isListMethod(method: string): method is ListMethod {
  return Object.hasOwn(LIST_METHODS, method);
}

/** What a request can target. */
export type TargetKind = "tool" | "prompt" | "resource";
export interface Target {
  kind: TargetKind;
  name: string;
}

/**
 * The target a method names in its params; a string saying what is missing when the params
 * are malformed for that method; `undefined` for methods that target nothing.
 */
export function targetOf(method: string, params: Record<string, unknown>): Target | string | undefined {
  const need = (field: string, value: unknown) =>
    typeof value === "string" ? undefined : `${method} needs params.${field} as a string`;
  switch (method) {
    case "tools/call":
      return need("name", params.name) ?? { kind: "tool", name: params.name as string };
    case "prompts/get":
      return need("name", params.name) ?? { kind: "prompt", name: params.name as string };
    case "resources/read":
    case "resources/subscribe":
    case "resources/unsubscribe":
      return need("uri", params.uri) ?? { kind: "resource", name: params.uri as string };
    case "completion/complete": {
      const ref = params.ref;
      if (isObject(ref) && ref.type === "ref/prompt" && typeof ref.name === "string")
        return { kind: "prompt", name: ref.name };
      if (isObject(ref) && ref.type === "ref/resource" && typeof ref.uri === "string")
        return { kind: "resource", name: ref.uri };
      return "completion/complete needs params.ref as a ref/prompt with a name or a ref/resource with a uri";
    }
    default:
      return undefined;
  }
}

/** The JSON-RPC method and the tool/prompt name or resource URI a message targets, for logs and reports. */
export function describeCall(message: unknown): { method?: string; target?: string } {
  if (!isObject(message) || typeof message.method !== "string") return {};
  const target = targetOf(message.method, isObject(message.params) ? message.params : {});
  return typeof target === "object" ? { method: message.method, target: target.name } : { method: message.method };
}
