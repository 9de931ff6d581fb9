/**
 * Where Airlock's own files are: the directory holding its package.json. Modules find
 * `relay/` (the hub bundles it at start) and `node_modules/` from here rather than from
 * their own location, because that differs between the sources (`agent/x/y.ts`) and the
 * esbuild bundle (`dist/chunk.js`).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let found: string | undefined;

/** The package root, or an error naming what is missing (a single-file executable has none). */
export function packageRoot(): string {
  if (found) return found;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "airlock") {
      found = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(
        `no Airlock package.json above ${fileURLToPath(import.meta.url)}: run this command from the npm package or a checkout, not a single-file executable`,
      );
    dir = parent;
  }
}
