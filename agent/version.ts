/**
 * What is running: Airlock's version (from package.json, the single source) and the
 * JavaScript runtime underneath. Sent as `X-Tunnel-Client-Version`, shown by `/healthz`,
 * `airlock version` and the `airlock_build_info` metric.
 */
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

export type RuntimeName = "node" | "deno" | "bun";

export interface RuntimeInfo {
  name: RuntimeName;
  version: string;
}

type RuntimeGlobals = { Deno?: { version: { deno: string } }; Bun?: { version: string } };

/** Bun and Deno both emulate `process`, so look for their own globals first. */
export function detectRuntime(): RuntimeInfo {
  const globals = globalThis as unknown as RuntimeGlobals;
  if (globals.Bun) return { name: "bun", version: globals.Bun.version };
  if (globals.Deno) return { name: "deno", version: globals.Deno.version.deno };
  const node = (globalThis as unknown as { process?: { versions?: { node?: string } } }).process?.versions?.node;
  return { name: "node", version: node ?? "unknown" };
}

export const RUNTIME: RuntimeInfo = detectRuntime();
