/**
 * Find the program of a stdio command the way `spawn` will (no shell): a name with a
 * slash is a path (relative to the working directory), anything else is looked up on
 * PATH. Used by `doctor` and by `init`'s early warning.
 */
import { access, constants, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join, resolve } from "node:path";

export type CommandLookup = { found: true; path: string } | { found: false; reason: string };

export async function findProgram(program: string, options: { path?: string; cwd: string }): Promise<CommandLookup> {
  if (program.includes("/")) {
    const full = isAbsolute(program) ? program : resolve(options.cwd, program);
    return executable(full, program);
  }
  const dirs = (options.path ?? "").split(delimiter).filter(Boolean);
  if (dirs.length === 0) return { found: false, reason: `"${program}" cannot be looked up: PATH is empty` };
  let notExecutable: string | undefined;
  for (const dir of dirs) {
    const candidate = join(resolve(options.cwd, dir), program);
    const result = await executable(candidate, program);
    if (result.found) return result;
    if (!result.reason.includes("does not exist")) notExecutable ??= result.reason;
  }
  return { found: false, reason: notExecutable ?? `"${program}" was not found on PATH (${dirs.join(delimiter)})` };
}

async function executable(path: string, written: string): Promise<CommandLookup> {
  try {
    const info = await stat(path);
    if (info.isDirectory()) return { found: false, reason: `${path} is a directory, not a program` };
  } catch {
    return { found: false, reason: `${written === path ? path : `${written} (${path})`} does not exist` };
  }
  try {
    await access(path, constants.X_OK);
    return { found: true, path };
  } catch {
    return {
      found: false,
      reason: `${path} exists but is not executable (chmod +x it, or name its interpreter first)`,
    };
  }
}

/** A word as a POSIX shell would need it written, for commands doctor and init print. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}
