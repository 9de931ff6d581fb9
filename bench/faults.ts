/**
 * The fault matrix against real processes (`airlock hub` in workerd, real agents, real MCP
 * servers, a fake control plane where the control plane itself misbehaves): each case
 * prints what the MCP client (or operator) sees and the bound it must stay within.
 * docs/reliability.md lists the cases and bounds. Not part of `npm test`.
 *
 *   npm run faults                     every case
 *   npm run faults -- dead-agent …     only the named cases
 *   npm run faults -- --soak 600       the soak: 8 clients for 600 s, RSS every 30 s
 */
import process from "node:process";
import { CASES } from "./faults/cases.ts";
import { soak } from "./faults/soak.ts";

const args = process.argv.slice(2);
const print = (line: string) => console.log(line);

const soakAt = args.indexOf("--soak");
if (soakAt >= 0) {
  const seconds = Number(args[soakAt + 1]);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    console.error("--soak takes a duration in seconds, e.g. --soak 600");
    process.exit(2);
  }
  process.exit((await soak(seconds, print)) ? 0 : 1);
}

const unknown = args.filter((name) => !CASES.some((c) => c.name === name));
if (unknown.length) {
  console.error(`unknown case(s) ${unknown.join(", ")}; cases: ${CASES.map((c) => c.name).join(", ")}`);
  process.exit(2);
}
let failures = 0;
for (const fault of CASES.filter((c) => args.length === 0 || args.includes(c.name))) {
  const started = performance.now();
  let verdict: { ok: boolean; outcome: string };
  try {
    verdict = await fault.run();
  } catch (error) {
    verdict = { ok: false, outcome: `the case itself failed: ${(error as Error).stack ?? String(error)}` };
  }
  if (!verdict.ok) failures++;
  print(
    `${verdict.ok ? "ok  " : "FAIL"} ${fault.name.padEnd(22)} ${(performance.now() - started).toFixed(0).padStart(6)} ms`,
  );
  print(`     bound:   ${fault.bound}`);
  print(`     outcome: ${verdict.outcome}`);
}
process.exit(failures ? 1 : 0);
