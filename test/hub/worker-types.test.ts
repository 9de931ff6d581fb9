/**
 * The Worker is type-checked against relay/worker-configuration.d.ts, which `wrangler types`
 * generates from wrangler.toml (`npm run cf-typegen`). A binding or variable added to
 * wrangler.toml without regenerating would leave the checked types stale.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { run } from "../support/run.ts";

test("relay/worker-configuration.d.ts is what npm run cf-typegen makes of wrangler.toml", async () => {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const { code, output } = await run(npm, ["run", "--silent", "cf-typegen", "--", "--check"], {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
  });
  assert.equal(code, 0, `${output}\nRun \`npm run cf-typegen\` and commit relay/worker-configuration.d.ts.`);
  assert.match(output, /up to date/);
});
