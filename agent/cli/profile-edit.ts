/**
 * tunnel-client's `profiles add NAME (--from-file FILE | --sample NAME …) [--force]` and
 * `profiles edit NAME`: a profile is written only after it loads the way `run` would load it,
 * so a typo never replaces a working profile. `--sample` is `init` under another name.
 */
import process from "node:process";
import { spawn } from "node:child_process";
import { access, copyFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { planConfigSource } from "../config/profiles.ts";
import { splitCommand } from "../config/routes.ts";
import { main as initMain, validateProfileText } from "./init.ts";
import { UsageError } from "./options.ts";
import type { CliIo, ParsedFlags } from "./options.ts";

/** Where `--profile NAME` (with `--profile-dir`) is written, and the existing file it would load, if any. */
async function profilePaths(
  name: string,
  flags: ParsedFlags,
  io: CliIo,
): Promise<{ target: string; existing?: string }> {
  const dir = flags.strings.get("profile-dir");
  const plan = planConfigSource({
    flags: { profile: name, ...(dir !== undefined ? { "profile-dir": dir } : {}) },
    env: io.env,
    cwd: io.cwd,
    ...(io.homeDir !== undefined ? { homeDir: io.homeDir } : {}),
  })!;
  for (const candidate of plan.candidates) {
    if (
      await access(candidate).then(
        () => true,
        () => false,
      )
    )
      return { target: plan.candidates[0]!, existing: candidate };
  }
  return { target: plan.candidates[0]! };
}

export async function addProfile(name: string, flags: ParsedFlags, io: CliIo): Promise<number> {
  const fromFile = flags.strings.get("from-file");
  const sample = flags.strings.get("sample");
  if ((fromFile === undefined) === (sample === undefined))
    throw new UsageError("set exactly one of --from-file FILE or --sample NAME");
  if (sample !== undefined) {
    const pass = (flag: string) => (flags.strings.has(flag) ? [`--${flag}`, flags.strings.get(flag)!] : []);
    return initMain(
      [
        "--profile",
        name,
        "--sample",
        sample,
        ...pass("tunnel-id"),
        ...pass("mcp-server-url"),
        ...pass("mcp-command"),
        ...pass("profile-dir"),
        ...(flags.bools.has("force") ? ["--force"] : []),
      ],
      io,
    );
  }
  const { target, existing } = await profilePaths(name, flags, io);
  if (existing === target && !flags.bools.has("force"))
    throw new UsageError(`profile "${name}" already exists at ${target}; pass --force to replace it`);
  let text: string;
  try {
    text = await readFile(fromFile!, "utf8");
  } catch (error) {
    throw new UsageError(
      `--from-file ${fromFile}: cannot read it (${(error as { code?: string }).code ?? String(error)})`,
    );
  }
  await validateProfileText(text, target, io);
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  await writeFile(target, text, { mode: 0o600 });
  io.stdout(
    `Added profile ${name} at ${target}.\nNext:\n  airlock doctor --profile ${name} --explain\n  airlock run --profile ${name}\n`,
  );
  return 0;
}

/** Run `$VISUAL` / `$EDITOR` on `path`; resolves with its exit code. */
function runEditor(path: string, io: CliIo): Promise<number> {
  const editor = (io.env.VISUAL ?? "").trim() || (io.env.EDITOR ?? "").trim();
  if (!editor) throw new UsageError("set VISUAL or EDITOR to edit profiles");
  const [program, ...args] = splitCommand(editor, "VISUAL/EDITOR");
  return new Promise((resolve, reject) => {
    const child = spawn(program!, [...args, path], { stdio: "inherit", env: { ...io.env } });
    child.once("error", (error) => reject(new UsageError(`cannot start the editor ${program}: ${error.message}`)));
    child.once("exit", (code) => resolve(code ?? 1));
  });
}

export async function editProfile(name: string, flags: ParsedFlags, io: CliIo): Promise<number> {
  const { existing } = await profilePaths(name, flags, io);
  if (!existing)
    throw new UsageError(
      `profile "${name}" not found; create it with \`airlock profiles add ${name} --sample …\` or \`airlock init\``,
    );
  // Edit a copy beside it, so the profile is replaced in one rename, and only when it is valid.
  const draft = join(dirname(existing), `.${basename(existing, ".yaml")}.edit-${process.pid}.yaml`);
  await copyFile(existing, draft);
  try {
    const code = await runEditor(draft, io);
    if (code !== 0) {
      io.stderr(`airlock profiles edit: the editor exited with ${code}; ${existing} is unchanged\n`);
      return 1;
    }
    try {
      await validateProfileText(await readFile(draft, "utf8"), existing, io);
    } catch (error) {
      io.stderr(
        `airlock profiles edit: not saved, the profile does not load: ${(error as Error).message}\n${existing} is unchanged; run the command again to fix it\n`,
      );
      return 1;
    }
    await rename(draft, existing);
    io.stdout(`Saved ${existing}.\n`);
    return 0;
  } finally {
    await rm(draft, { force: true });
  }
}
