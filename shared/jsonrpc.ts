/** Minimal JSON-RPC 2.0 classification; framing and transports are the MCP SDK's job. */
export type JsonRpcId = string | number;
export type JsonRpcMessage = Record<string, unknown>;

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** True for a JSON-RPC id as the spec allows it (string or number; null only in error responses). */
export function isJsonRpcId(value: unknown): value is JsonRpcId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

/** A request carries `method` and an id. */
export function isRequest(message: unknown): message is JsonRpcMessage & { id: JsonRpcId; method: string } {
  return isObject(message) && typeof message.method === "string" && isJsonRpcId(message.id);
}

/** A notification carries `method` and no id. */
export function isNotification(message: unknown): message is JsonRpcMessage & { method: string } {
  return isObject(message) && typeof message.method === "string" && !("id" in message);
}

/** A response carries an id and exactly one of `result` / `error`. */
export function isResponse(message: unknown): message is JsonRpcMessage & { id: JsonRpcId | null } {
  return (
    isObject(message) &&
    typeof message.method !== "string" &&
    "result" in message !== "error" in message &&
    (isJsonRpcId(message.id) || message.id === null)
  );
}

/** A valid JSON-RPC error response: `error` with an integer code and a string message. */
export function isErrorResponse(message: unknown): boolean {
  if (!isResponse(message)) return false;
  const error = message.error;
  return isObject(error) && Number.isInteger(error.code) && typeof error.message === "string";
}
