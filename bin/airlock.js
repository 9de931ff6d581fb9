#!/usr/bin/env node
// The `airlock` bin on Node. With a build (`npm run build` → dist/airlock.js, what the npm
// package and the Docker image ship) it runs the bundle in this process: plain Node, no
// TypeScript loader. In a checkout without a build it runs agent/main.ts through tsx in a
// child process, forwarding argv, signals and the exit code.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = new URL("../dist/airlock.js", import.meta.url);
if (existsSync(bundle) && process.env.AIRLOCK_FROM_SOURCE !== "1") {
  await import(bundle.href);
} else {
  const main = fileURLToPath(new URL("../agent/main.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", main, ...process.argv.slice(2)], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
