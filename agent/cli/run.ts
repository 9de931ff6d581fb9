/**
 * `airlock run`: the tunnel agent. Reads tunnel-client's flags, environment and profiles,
 * serves until SIGINT/SIGTERM, then drains in-flight work and exits 0.
 */
import process from "node:process";
import { createWriteStream } from "node:fs";
import { createLogger } from "../../shared/log.ts";
import { loadConfig } from "../config/load.ts";
import { ConfigError } from "../config/errors.ts";
import { flagUsage } from "../config/flags.ts";
import { startAgent } from "../agent.ts";

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`usage: airlock run [flags]\n\n${flagUsage()}\n`);
    return 0;
  }
  let loaded;
  try {
    loaded = await loadConfig({ argv, env: process.env, cwd: process.cwd() });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`airlock: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
  const { config } = loaded;
  const file = config.log.file ? createWriteStream(config.log.file, { flags: "a" }) : undefined;
  const log = createLogger({
    level: config.log.level,
    format: config.log.format,
    secrets: () => loaded.secrets,
    sink: (line) => file ? file.write(line + "\n") : process.stderr.write(line + "\n"),
  });
  for (const warning of loaded.warnings) log.warn(warning);

  let agent;
  try {
    agent = await startAgent(loaded, { log });
  } catch (error) {
    log.error("the agent could not start", { error });
    return 1;
  }
  const signal = await new Promise<string>((resolve) => {
    for (const name of ["SIGINT", "SIGTERM"] as const) process.once(name, () => resolve(name));
  });
  log.info("signal received", { signal });
  await agent.stop();
  file?.end();
  return 0;
}
