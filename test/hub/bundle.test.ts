/**
 * `wrangler deploy --dry-run` bundles the hub Worker from wrangler.toml without an
 * account or network, and the local runner uses the same compatibility settings.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, run } from "../support/run.ts";
import { COMPATIBILITY_DATE, COMPATIBILITY_FLAGS } from "../../agent/hub-local/run.ts";

test("wrangler deploy --dry-run bundles the Worker with its Durable Object, offline and logged out", async (t) => {
  const outdir = await mkdtemp(join(tmpdir(), "airlock-wrangler-"));
  t.after(() => rm(outdir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_HIDE_BANNER: "true",
    CI: "1",
  };
  for (const name of ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_ACCOUNT_ID"]) delete env[name];
  const { code, output } = await run(
    join(ROOT, "node_modules/.bin/wrangler"),
    ["deploy", "--dry-run", "--outdir", outdir],
    env,
  );
  assert.equal(code, 0, output);
  assert.match(output, /env\.TUNNEL_HUB \(TunnelHub\)\s+Durable Object/);
  const bundle = await readFile(join(outdir, "index.js"), "utf8");
  assert.ok(
    /TunnelHub = class extends DurableObject|class TunnelHub extends DurableObject/.test(bundle),
    "the bundle defines the TunnelHub class",
  );
  assert.ok(/export\s*\{[^}]*TunnelHub/.test(bundle), "the bundle exports TunnelHub");
});

test("the local runner uses wrangler.toml's compatibility date and flags", async () => {
  const toml = await readFile(join(ROOT, "wrangler.toml"), "utf8");
  assert.equal(/^compatibility_date = "([^"]+)"/m.exec(toml)?.[1], COMPATIBILITY_DATE);
  const flags = /^compatibility_flags = \[([^\]]*)\]/m.exec(toml)?.[1] ?? "";
  assert.deepEqual(
    [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]),
    COMPATIBILITY_FLAGS,
  );
});
