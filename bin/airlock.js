#!/usr/bin/env node
// The `airlock` bin on Node: run agent/main.ts through tsx's loader, forwarding argv and exit code.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../agent/main.ts", import.meta.url));
const child = spawn(process.execPath, ["--import", "tsx", main, ...process.argv.slice(2)], { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
