/** One span per response post, a child of the execution of the command it answers. */
import { ATTR, SPAN, inSpan } from "../../shared/telemetry/index.ts";
import type { ControlPlaneClient } from "../control-plane/client.ts";
import type { Tracing } from "./tracing.ts";

type PostClient = Pick<ControlPlaneClient, "postResponse">;

/** `client` with each `postResponse` traced; `client` itself when tracing is off. */
export function tracePosts<C extends PostClient>(client: C, tracing: Tracing): C {
  if (!tracing.enabled) return client;
  return {
    ...client,
    async postResponse(payload, shardToken, signal, clientRequestId) {
      const parent = tracing.running.get(payload.request_id);
      if (!parent) return client.postResponse(payload, shardToken, signal, clientRequestId);
      const span = tracing.start(SPAN.post, {
        parent,
        kind: "client",
        attributes: { [ATTR.requestId]: payload.request_id, [ATTR.postKind]: payload.resp_type ?? "jsonrpc_response" },
      });
      return inSpan(
        span,
        () => client.postResponse(payload, shardToken, signal, clientRequestId),
        (result) => {
          if ("status" in result && typeof result.status === "number") span.set({ [ATTR.httpStatus]: result.status });
          if (result.kind !== "ok") span.fail(result.kind);
        },
      );
    },
  };
}
