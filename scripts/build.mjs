#!/usr/bin/env node
// Builds what users run.
//
//   node scripts/build.mjs                     dist/airlock.js: the agent and CLI bundled for plain Node
//   node scripts/build.mjs deno [TARGET…]      dist/bin/airlock-deno-<target>: single-file executables (deno compile)
//   node scripts/build.mjs bun [TARGET…]       dist/bin/airlock-bun-<target>: single-file executables (bun build --compile)
//
// TARGET is linux-x64 or linux-arm64 (default: this machine's). The Node bundle keeps every
// subcommand a lazily loaded chunk (code splitting), so `airlock run` loads neither Miniflare
// nor the hub. Packages with native binaries stay external and load from node_modules:
// miniflare (workerd) and esbuild (the hub bundles relay/ when it starts). Chunks sit beside
// dist/airlock.js, so a module's `new URL("./x", import.meta.url)` lands in dist/, where the
// sample profiles are copied.
//
// The executables are compiled from one more esbuild bundle (dist/standalone/airlock.mjs)
// with no external package: `hub` and `demo` are swapped for agent/cli/not-in-executable.ts
// (workerd cannot be embedded) and the samples are embedded as text.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { arch } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "dist");
const samplesDir = join(root, "agent/samples");
const samples = readdirSync(samplesDir).filter((file) => file.endsWith(".yaml"));

/** The runtime's own target names for the two platforms the executables are built for. */
const TARGETS = {
  "linux-x64": { deno: "x86_64-unknown-linux-gnu", bun: "bun-linux-x64" },
  "linux-arm64": { deno: "aarch64-unknown-linux-gnu", bun: "bun-linux-arm64" },
};
const HOST_TARGET = arch() === "arm64" ? "linux-arm64" : "linux-x64";

const common = {
  absWorkingDir: root,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // CommonJS packages (prom-client, …) call require() for Node builtins; ESM has none.
  banner: {
    js: 'import { createRequire as __airlockRequire } from "node:module"; const require = __airlockRequire(import.meta.url);',
  },
  legalComments: "none",
  // V8 keeps every loaded module's source text in memory, and one non-ASCII character in a
  // comment (zod's locales, an arrow in a JSDoc line) stores a whole chunk as two bytes per
  // character. Without whitespace and comments the idle agent holds ~2 MiB less; names stay
  // (no identifier minification), so stack traces still name the functions.
  minifyWhitespace: true,
  // Lines of at most ~200 characters: Node prints the source line of an uncaught error.
  lineLimit: 200,
  logLevel: "warning",
};

/**
 * zod's `z.locales` namespace (its error messages in 40 languages, half of zod's source) is
 * swapped for an empty module in the Node bundle: ~1 MiB of idle RSS (bench/startup.ts,
 * docs/performance.md). English, the default, is imported by zod's schemas directly and stays;
 * nothing here calls `z.config(z.locales.xx())`, which in the bundle would find no locale.
 */
const withoutZodLocales = {
  name: "airlock-without-zod-locales",
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]/.test(args.importer) ? { path: "zod-locales", namespace: "airlock-empty" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "airlock-empty" }, () => ({ contents: "export {};", loader: "js" }));
  },
};

async function buildNodeBundle() {
  for (const file of readdirSync(dist, { withFileTypes: true }).filter((e) => e.isFile()))
    rmSync(join(dist, file.name));
  await build({
    ...common,
    entryPoints: { airlock: "agent/main.ts" },
    outdir: dist,
    splitting: true,
    chunkNames: "[name]-[hash]",
    // The OAuth library runs only inside the hub's Worker (workerd imports `cloudflare:workers`
    // for it), which the hub bundles from relay/ at start; the agent's chunk never loads it.
    // oidc-provider is the test IdP of `airlock demo --login` (a devDependency, imported lazily).
    external: ["miniflare", "esbuild", "@cloudflare/workers-oauth-provider", "oidc-provider"],
    plugins: [withoutZodLocales],
  });
  for (const file of samples) cpSync(join(samplesDir, file), join(dist, file));
  return join(dist, "airlock.js");
}

/**
 * Replaces `hub` and `demo` (loaded by agent/cli/index.ts) and `dev proxy` (loaded by
 * agent/cli/dev.ts) with the stub that says why they are missing.
 */
const withoutHub = {
  name: "airlock-without-hub",
  setup(b) {
    b.onResolve({ filter: /^\.\/(hub|demo|dev-proxy)\.ts$/ }, (args) =>
      args.importer.endsWith(join("agent", "cli", "index.ts")) || args.importer.endsWith(join("agent", "cli", "dev.ts"))
        ? { path: join(root, "agent/cli/not-in-executable.ts") }
        : undefined,
    );
  },
};

async function buildStandaloneBundle() {
  const outfile = join(dist, "standalone", "airlock.mjs");
  const embedded = Object.fromEntries(
    samples.map((file) => [file.replace(/\.yaml$/, ""), readFileSync(join(samplesDir, file), "utf8")]),
  );
  await build({
    ...common,
    entryPoints: ["agent/main.ts"],
    outfile,
    plugins: [withoutHub],
    define: { "globalThis.AIRLOCK_EMBEDDED_SAMPLES": JSON.stringify(embedded) },
  });
  return outfile;
}

/** Run a command; false when it failed (its own output says why). */
function run(cmd, args) {
  return spawnSync(cmd, args, { cwd: root, stdio: "inherit" }).status === 0;
}

function compile(runtime, entry, target) {
  const names = TARGETS[target];
  if (!names) throw new Error(`unknown target "${target}": use ${Object.keys(TARGETS).join(" or ")}`);
  const outfile = join(dist, "bin", `airlock-${runtime}-${target}`);
  mkdirSync(join(dist, "bin"), { recursive: true });
  const bin = join(root, "node_modules", ".bin", runtime);
  if (runtime === "bun") {
    // For another platform Bun fetches that platform's bun from the npm registry.
    if (!run(bin, ["build", "--compile", `--target=${names.bun}`, entry, "--outfile", outfile])) {
      throw new Error(
        `bun build --compile for ${target} failed (see above); another platform's bun comes from the npm registry (@oven/bun-*)`,
      );
    }
  } else if (
    !run(bin, ["compile", "-A", "--no-check", "--quiet", "--target", names.deno, "--output", outfile, entry])
  ) {
    // `deno compile` appends the program to denort, a slim runtime it downloads from Deno's
    // release server for every target, the host's included; no npm package carries it.
    throw new Error(
      `deno compile for ${target} failed (see above). It needs denort for ${names.deno}: it downloads it from Deno's release server, or set DENORT_BIN to a denort binary already on disk. Meanwhile \`deno run -A dist/standalone/airlock.mjs\` runs the same program.`,
    );
  }
  return outfile;
}

const [mode = "node", ...targets] = process.argv.slice(2);
process.on("uncaughtException", (error) => {
  console.error(`build: ${error.message}`);
  process.exit(1);
});
mkdirSync(dist, { recursive: true });
const started = performance.now();
if (mode === "node") {
  await buildNodeBundle();
  console.log(`dist/airlock.js built in ${Math.round(performance.now() - started)} ms`);
} else if (mode === "deno" || mode === "bun") {
  const entry = await buildStandaloneBundle();
  for (const target of targets.length ? targets : [HOST_TARGET]) {
    const out = compile(mode, entry, target);
    console.log(`${out.slice(root.length)} built (${target})`);
  }
} else {
  console.error(`unknown build "${mode}": use node, deno or bun`);
  process.exit(2);
}
