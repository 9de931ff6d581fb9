/**
 * `airlock` entry point. Same behaviour under `node --import tsx agent/main.ts`,
 * `deno run -A agent/main.ts`, `bun agent/main.ts` and the package bin.
 * Only wiring lives here; each subcommand is loaded lazily from `agent/cli/`.
 */
import process from "node:process";
import { runCli } from "./cli/index.ts";

process.exitCode = await runCli(process.argv.slice(2));
