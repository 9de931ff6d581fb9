/**
 * Stands in for `airlock hub`, `airlock demo` and `airlock dev proxy` inside the single-file
 * executables (scripts/build.mjs swaps it in): all run the hub in workerd, a native binary of its own
 * that Miniflare starts from node_modules and that cannot be embedded in one file.
 */
import process from "node:process";
import { EXIT_USAGE } from "../config/errors.ts";

/** Say what is missing and where the command does exist; exit 2 (a usage error: wrong build, not a failure). */
export async function main(): Promise<number> {
  process.stderr.write(
    "airlock: `hub`, `demo` and `dev proxy` are not part of this single-file executable: the local hub runs workerd, a native\n" +
      "binary that cannot be embedded. Run them from the npm package on Node (`npx airlock hub`, `npm run build` then\n" +
      "`node dist/airlock.js hub`) or from the Docker image; this executable runs agents (`airlock run`) against any hub.\n",
  );
  return EXIT_USAGE;
}
