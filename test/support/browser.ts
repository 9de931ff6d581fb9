/**
 * A Chromium for browser tests that installs from the npm registry alone:
 * `@sparticuz/chromium` ships a brotli-packed headless Chromium inside its tarball (no
 * download at install or run time), unpacked once into the temp directory. A system
 * `chromium` is used only when that package cannot run on this platform.
 */
import { access, constants } from "node:fs/promises";

const SYSTEM_CHROMIUM = "/usr/bin/chromium";

/** Flags for a headless browser on a loopback test page: no sandbox (root in CI), nothing phoning home. */
export const BROWSER_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The Chromium executable to launch, and where it came from. */
export async function chromiumExecutable(): Promise<{ path: string; source: string }> {
  let packaged: unknown;
  try {
    const { default: chromium } = await import("@sparticuz/chromium");
    return { path: await chromium.executablePath(), source: "@sparticuz/chromium (npm)" };
  } catch (error) {
    packaged = error;
  }
  try {
    await access(SYSTEM_CHROMIUM, constants.X_OK);
    return { path: SYSTEM_CHROMIUM, source: SYSTEM_CHROMIUM };
  } catch {
    const reason = packaged instanceof Error ? packaged.message : String(packaged);
    throw new Error(
      `no browser: @sparticuz/chromium could not be unpacked (${reason}) and ${SYSTEM_CHROMIUM} is missing. Run npm ci.`,
    );
  }
}
