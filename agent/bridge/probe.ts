/**
 * Which era one backend speaks, found out the way the spec tells a client to: send a
 * modern `server/discover`. A result (or a −32022 naming the versions it does serve) means
 * a modern server; anything else — Method not found, HTTP 400 "no session", silence on a
 * stdio pipe until the probe's timeout — means a legacy one. Asked only when the first
 * modern request arrives, so a backend that only ever sees legacy clients is never probed
 * (a dual-era stdio child would otherwise be switched to the modern era by the probe).
 */
import { isObject } from "../../shared/jsonrpc.ts";
import { UNSUPPORTED_PROTOCOL_VERSION } from "../../shared/mcp/era.ts";
import { VERSION } from "../version.ts";
import type { Backend } from "../backends/types.ts";
import { modernRequestHeaders, withEnvelope } from "./translate.ts";

export type Era = "legacy" | "modern";

/**
 * How long a server may stay silent on the probe before it counts as legacy. The wait
 * includes a stdio child's start-up; a modern server judged legacy because it started
 * slowly refuses the bridge's `initialize` with −32022, and the bridge corrects itself.
 */
export const PROBE_TIMEOUT_MS = 10_000;

const noop = () => {};

/** Probe `inner` once; never throws (a broken backend reads as legacy and fails on the real request). */
export async function probeEra(inner: Backend, timeoutMs = PROBE_TIMEOUT_MS): Promise<Era> {
  const discover = { jsonrpc: "2.0", id: "airlock-era-probe", method: "server/discover" };
  const message = withEnvelope(discover, {
    capabilities: {},
    clientInfo: { name: "airlock-era-probe", version: VERSION },
  });
  const headers = modernRequestHeaders(message, {});
  try {
    const answer = await inner.exchange({ message, headers, signal: AbortSignal.timeout(timeoutMs), notify: noop });
    if (answer.kind !== "response") return "legacy";
    if (isObject(answer.message.result) && Array.isArray(answer.message.result.supportedVersions)) return "modern";
    const error = answer.message.error;
    return isObject(error) && error.code === UNSUPPORTED_PROTOCOL_VERSION ? "modern" : "legacy";
  } catch {
    return "legacy";
  }
}
