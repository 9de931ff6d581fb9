/**
 * The tunnel's metadata (`GET /v1/tunnels/{id}`) read once at start, in the background, as
 * tunnel-client does: its name and description go on the `🟢 tunnel-client started` line.
 * It is never fatal — a failure is one warning (`tunnel metadata fetch failed`, with the
 * service's status, code, message and the fix when known) and the started line says
 * `tunnel meta hasn't fetched`, tunnel-client's words.
 */
import type { Logger } from "../../shared/log.ts";
import {
  describeControlPlaneFailure,
  ERROR_MITIGATIONS,
  type ControlPlaneClient,
  type ControlPlaneFailure,
} from "./client.ts";

export interface TunnelMeta {
  name: string;
  description: string;
}

export interface TunnelMetadataFetch {
  /** The metadata once fetched, or `undefined` when it failed or did not arrive within `waitMs`. */
  wait(waitMs: number): Promise<TunnelMeta | undefined>;
  /** Abandon the request (the agent is stopping). */
  cancel(): void;
}

/** What tunnel-client's started line says when the metadata is not there (yet). */
export const META_NOT_FETCHED = "tunnel meta hasn't fetched";

export function startTunnelMetadataFetch(
  client: Pick<ControlPlaneClient, "getTunnel">,
  log: Logger,
): TunnelMetadataFetch {
  const controller = new AbortController();
  const result: Promise<TunnelMeta | undefined> = client.getTunnel(controller.signal).then(
    (answer) => {
      if (answer.kind === "ok") {
        const { id, name, description } = answer.tunnel;
        log.info("tunnel metadata fetched", { tunnel_id: id, name, description });
        return { name, description };
      }
      if (answer.kind !== "aborted") log.warn("tunnel metadata fetch failed", failureFields(answer));
      return undefined;
    },
    (error: unknown) => {
      log.warn("tunnel metadata fetch failed", { error: error instanceof Error ? error.message : String(error) });
      return undefined;
    },
  );
  return {
    wait: (waitMs) => {
      // The timer goes as soon as the answer is in, so a fast answer leaves nothing pending.
      const timeout = new Promise<undefined>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        void result.finally(() => clearTimeout(timer));
      });
      return Promise.race([result, timeout]);
    },
    cancel: () => controller.abort(),
  };
}

/** tunnel-client's fields on the warning: `status_code`, `error_code`, `error_message`, `mitigation`. */
function failureFields(failure: ControlPlaneFailure): Record<string, unknown> {
  const fields: Record<string, unknown> = { error: describeControlPlaneFailure(failure) };
  if (failure.kind !== "http_error") return fields;
  fields.status_code = failure.status;
  const code = failure.error?.code;
  if (code) fields.error_code = code;
  if (failure.error?.message) fields.error_message = failure.error.message;
  const mitigation = code ? ERROR_MITIGATIONS[code] : undefined;
  if (mitigation) fields.mitigation = mitigation;
  return fields;
}
