#!/usr/bin/env node
// Runs the whole suite: type-check (`tsc -b`: shared/, relay/ and the Node side, each
// against its own runtime's types; errors counted), then the test files under Node (all of them),
// Deno and Bun (the portable ones: test/unit and test/agent). Prints one closing
// line `tests: N passed, N failed` and exits non-zero on any failure or when no test ran.
//
//   node scripts/test.mjs                 everything
//   node scripts/test.mjs --only node     one leg (node | deno | bun | typecheck | lint)
//   node scripts/test.mjs test/unit/x.test.ts   just these files, under Node
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);

function findTests(dir) {
  const out = [];
  let entries = [];
  try {
    entries = readdirSync(join(root, dir));
  } catch {
    return out;
  }
  for (const entry of entries.sort()) {
    const rel = join(dir, entry);
    if (statSync(join(root, rel)).isDirectory()) out.push(...findTests(rel));
    else if (entry.endsWith(".test.ts")) out.push(rel);
  }
  return out;
}

const args = process.argv.slice(2);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const explicit = args.filter((a, i) => a.endsWith(".ts") && args[i - 1] !== "--only");
const all = explicit.length ? explicit : findTests("test");
const portable = all.filter((f) => f.startsWith("test/unit/") || f.startsWith("test/agent/"));

function run(label, cmd, argv, parse, env = {}) {
  return new Promise((resolve) => {
    console.log(`\n=== ${label}: ${[cmd.replace(root, ""), ...argv].join(" ").slice(0, 300)}`);
    const child = spawn(cmd, argv, {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    const tee = (stream, out) =>
      stream.on("data", (chunk) => {
        text += chunk;
        out.write(chunk);
      });
    tee(child.stdout, process.stdout);
    tee(child.stderr, process.stderr);
    child.on("close", (code) => {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes, which start with ESC
      const counts = parse(text.replace(/\x1b\[[0-9;]*m/g, ""));
      resolve({ label, code: code ?? 1, ...counts });
    });
  });
}

const num = (text, re) => {
  const all = [...text.matchAll(re)];
  return all.length ? Number(all.at(-1)[1]) : 0;
};
const parseNode = (t) => ({
  passed: num(t, /^# pass (\d+)/gm),
  failed: num(t, /^# fail (\d+)/gm) + num(t, /^# cancelled (\d+)/gm),
});
const parseDeno = (t) => {
  const m = [...t.matchAll(/(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/g)].at(-1);
  return m ? { passed: Number(m[2]), failed: Number(m[3]) } : { passed: 0, failed: 0 };
};
const parseBun = (t) => ({ passed: num(t, /^\s*(\d+) pass$/gm), failed: num(t, /^\s*(\d+) fail$/gm) });
const parseTsc = (t) => ({ passed: 0, failed: (t.match(/error TS\d+/g) ?? []).length });
// Biome's closing line: "Found N errors." (absent when clean).
const parseBiome = (t) => ({ passed: 0, failed: num(t, /^Found (\d+) errors?\./gm) });

// One TAP file per run, so two runs at once never read each other's counts.
const tapDir = mkdtempSync(join(tmpdir(), "airlock-test-"));
const tapFile = join(tapDir, "node.tap");
process.on("exit", () => rmSync(tapDir, { recursive: true, force: true }));
const results = [];
const want = (name) => !only || only === name;
// `tsc -b` checks each side as its own project (tsconfig.json references shared/ and relay/),
// so Node-only code cannot creep into the web-standard core and Worker code is typed by the
// Workers runtime.
if (want("typecheck") && !explicit.length) results.push(await run("typecheck", bin("tsc"), ["-b"], parseTsc));
// Formatting and lint rules (biome.jsonc): `npm run format` fixes the formatting.
if (want("lint") && !explicit.length)
  results.push(await run("lint", bin("biome"), ["check", "--max-diagnostics=50", "."], parseBiome));
if (want("node"))
  results.push(
    await run(
      "node",
      process.execPath,
      [
        "--import",
        "tsx",
        "--test",
        "--test-reporter=spec",
        "--test-reporter-destination=stdout",
        "--test-reporter=tap",
        `--test-reporter-destination=${tapFile}`,
        ...all,
      ],
      () => ({}),
      {},
    ),
  );
// The spec reporter is for people; the TAP file carries the counts.
if (results.at(-1)?.label === "node") {
  Object.assign(results.at(-1), parseNode(readFileSync(tapFile, "utf8")));
}
// Least privilege, as deno.json's test task grants it (the one place those flags are written).
const DENO_TEST_FLAGS = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"))
  .tasks.test.split(/\s+/)
  .filter((arg) => arg.startsWith("--allow-"));
if (want("deno") && portable.length && !explicit.length)
  results.push(
    await run("deno", bin("deno"), ["test", ...DENO_TEST_FLAGS, "--no-check", "--quiet", ...portable], parseDeno, {
      AIRLOCK_TEST_RUNTIME: "deno",
    }),
  );
if (want("bun") && portable.length && !explicit.length)
  results.push(
    await run("bun", bin("bun"), ["test", "--timeout", "60000", ...portable.map((f) => `./${f}`)], parseBun, {
      AIRLOCK_TEST_RUNTIME: "bun",
    }),
  );

let passed = 0,
  failed = 0,
  broken = false;
console.log("\n=== summary");
for (const r of results) {
  console.log(`${r.label.padEnd(10)} exit ${r.code}  passed ${r.passed}  failed ${r.failed}`);
  passed += r.passed;
  failed += r.failed;
  if (r.code !== 0) broken = true;
  if (r.label !== "typecheck" && r.label !== "lint" && r.passed === 0) {
    console.log(`${r.label}: no test ran`);
    broken = true;
  }
}
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(broken || failed > 0 || passed === 0 ? 1 : 0);
