/** What an agent posts back: `TunnelResponsePayload` in docs/openapi.json. */
import { z } from "zod";
import { HeaderMap } from "./commands.ts";

export const ResponseType = z.enum([
  "jsonrpc_response",
  "jsonrpc_notify",
  "notify_ack",
  "session_termination_response",
  "oauth_discovery_response",
]);
export type ResponseType = z.infer<typeof ResponseType>;

/** Response types that end a command; only `jsonrpc_notify` is intermediate. */
export const FINAL_RESPONSE_TYPES: ReadonlySet<ResponseType> = new Set([
  "jsonrpc_response",
  "notify_ack",
  "session_termination_response",
  "oauth_discovery_response",
]);

export const TunnelResponsePayload = z.strictObject({
  request_id: z.string(),
  channel: z.string().nullish(),
  resp_json: z.record(z.string(), z.unknown()).nullish(),
  resp_headers: HeaderMap.optional(),
  resp_code: z.int(),
  resp_type: ResponseType.default("jsonrpc_response"),
});
export type TunnelResponsePayload = z.input<typeof TunnelResponsePayload>;

/** `200 {"status":"ok"}` acknowledging a response post. */
export const TunnelResponseAck = z.looseObject({ status: z.literal("ok").default("ok") });

/** The error envelope every tunnel-service error uses. */
export const APIErrorBody = z.looseObject({
  message: z.string(),
  type: z.string(),
  param: z.string().nullish(),
  code: z.string().nullish(),
});
export const APIErrorResponse = z.looseObject({ error: APIErrorBody });
export type APIErrorResponse = z.infer<typeof APIErrorResponse>;

/** Build an error envelope in the upstream service's shape. */
export function apiError(message: string, type: string, code: string | null = null): APIErrorResponse {
  return { error: { message, type, code } };
}
