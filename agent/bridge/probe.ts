/**
 * Which era one backend speaks, found out the way the spec tells a client to: send a
 * modern `server/discover`. A result (or a −32022 naming the versions it does serve) means
 * a modern server; anything else — Method not found, HTTP 400 "no session", silence on a
 * stdio pipe until the probe's timeout — means a legacy one. Asked only when the first
 * modern request arrives, so a backend that only ever sees legacy clients is never probed
 * (a dual-era stdio child would otherwise be switched to the modern era by the probe).
 */
import { isObject } from "../../shared/jsonrpc.ts";
import {
  CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, FIRST_MODERN_VERSION, MCP_METHOD_HEADER, MCP_PROTOCOL_VERSION_HEADER,
  PROTOCOL_VERSION_META_KEY, UNSUPPORTED_PROTOCOL_VERSION,
} from "../../shared/mcp/era.ts";
import { VERSION } from "../version.ts";
import type { Backend } from "../backends/types.ts";

export type Era = "legacy" | "modern";

/** How long a stdio server may stay silent on the probe before it counts as legacy. */
export const PROBE_TIMEOUT_MS = 5_000;

const noop = () => {};

/** Probe `inner` once; never throws (a broken backend reads as legacy and fails on the real request). */
export async function probeEra(inner: Backend, timeoutMs = PROBE_TIMEOUT_MS): Promise<Era> {
  const message = {
    jsonrpc: "2.0", id: "airlock-era-probe", method: "server/discover",
    params: {
      _meta: {
        [PROTOCOL_VERSION_META_KEY]: FIRST_MODERN_VERSION,
        [CLIENT_CAPABILITIES_META_KEY]: {},
        [CLIENT_INFO_META_KEY]: { name: "airlock-era-probe", version: VERSION },
      },
    },
  };
  const headers = { [MCP_PROTOCOL_VERSION_HEADER]: [FIRST_MODERN_VERSION], [MCP_METHOD_HEADER]: ["server/discover"] };
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
