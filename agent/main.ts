/**
 * `airlock` entry point. Same behaviour under `node --import tsx agent/main.ts`,
 * `deno run --allow-net --allow-env --allow-read --allow-run agent/main.ts`, `bun agent/main.ts`
 * and the package bin. Only wiring lives here; each subcommand is loaded lazily from `agent/cli/`.
 * Under Deno the permissions are checked before any other module is loaded, so a missing one
 * is one clear message (exit 2), never a stack trace from deep inside.
 */
import process from "node:process";
import { missingPermissionsMessage } from "./runtime/permissions.ts";
import { EXIT_USAGE } from "./config/errors.ts";

const argv = process.argv.slice(2);
const refusal = await missingPermissionsMessage(argv);
if (refusal) {
  process.stderr.write(`${refusal}\n`);
  process.exitCode = EXIT_USAGE;
} else {
  const { runCli } = await import("./cli/index.ts");
  process.exitCode = await runCli(argv);
}
