/**
 * `airlock profiles list` — the profiles `run --profile NAME` can find, in lookup order
 * (Airlock's directory first, then tunnel-client's); `profiles samples list` and
 * `profiles samples show NAME` — the built-in samples `init` starts from; `profiles add` and
 * `profiles edit` as tunnel-client's (profile-edit.ts).
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { profileDirs } from "../config/profiles.ts";
import { readSample, SAMPLES } from "../samples/catalog.ts";
import { defineCommand, helpText, UsageError } from "./options.ts";
import { addProfile, editProfile } from "./profile-edit.ts";
import type { CliIo, FlagSpec, ParsedFlags } from "./options.ts";

const FLAGS: Record<string, FlagSpec> = {
  "profile-dir": { kind: "string", value: "DIR", help: "look only in this directory" },
  json: { kind: "bool", help: "print JSON" },
  "from-file": { kind: "string", value: "FILE", help: "add: copy this profile YAML (validated first)" },
  sample: { kind: "string", value: "NAME", help: "add: generate from this built-in sample (as `init`)" },
  "tunnel-id": { kind: "string", value: "ID", help: "add --sample: the tunnel id" },
  "mcp-server-url": { kind: "string", value: "URL", help: "add --sample: the MCP server URL" },
  "mcp-command": { kind: "string", value: "CMD", help: "add --sample: the stdio MCP command" },
  force: { kind: "bool", help: "add: replace an existing profile" },
};

const SYNOPSIS =
  "airlock profiles list [--profile-dir DIR] [--json] | profiles samples list [--json] | profiles samples show NAME | profiles add NAME (--from-file FILE | --sample NAME --tunnel-id ID (--mcp-server-url URL | --mcp-command CMD)) [--force] | profiles edit NAME";
const DESCRIPTION = "Profiles are YAML files named NAME.yaml; `airlock run --profile NAME` loads the first one found.";

export interface ProfileEntry {
  name: string;
  path: string;
  /** Another profile of the same name earlier in the lookup order wins over this one. */
  shadowed: boolean;
}

/** Every `*.yaml` profile in lookup order. */
export async function listProfiles(dirs: readonly string[]): Promise<ProfileEntry[]> {
  const seen = new Set<string>();
  const out: ProfileEntry[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const file of names.filter((n) => n.endsWith(".yaml")).sort()) {
      const name = file.slice(0, -".yaml".length);
      out.push({ name, path: join(dir, file), shadowed: seen.has(name) });
      seen.add(name);
    }
  }
  return out;
}

export const main = defineCommand({
  name: "profiles",
  synopsis: SYNOPSIS,
  description: DESCRIPTION,
  flags: FLAGS,
  run: profiles,
});

async function profiles(flags: ParsedFlags, io: CliIo): Promise<number> {
  const [command, sub, name, ...extra] = flags.positionals;
  if (command === undefined) {
    io.stderr(helpText(SYNOPSIS, DESCRIPTION, FLAGS));
    return 2;
  }
  const json = flags.bools.has("json");
  if (command === "list" && sub === undefined) {
    const profileDir = flags.strings.get("profile-dir");
    const dirs = profileDirs({
      flags: profileDir !== undefined ? { "profile-dir": profileDir } : {},
      env: io.env,
      cwd: io.cwd,
      ...(io.homeDir !== undefined ? { homeDir: io.homeDir } : {}),
    });
    const found = await listProfiles(dirs);
    if (json) io.stdout(`${JSON.stringify({ directories: dirs, profiles: found }, null, 2)}\n`);
    else if (found.length === 0)
      io.stdout(
        `No profiles in ${dirs.join(" or ")}.\nCreate one: airlock init --tunnel-id ID --mcp-command "…" (or --mcp-server-url URL)\n`,
      );
    else {
      const width = Math.max(...found.map((p) => p.name.length));
      io.stdout(
        `${found
          .map((p) => `${p.name.padEnd(width)}  ${p.path}${p.shadowed ? "  (shadowed by the one above)" : ""}`)
          .join("\n")}\n`,
      );
    }
    return 0;
  }
  if (command === "samples" && sub === "list" && name === undefined) {
    if (json) io.stdout(`${JSON.stringify(SAMPLES, null, 2)}\n`);
    else {
      const width = Math.max(...SAMPLES.map((s) => s.name.length));
      io.stdout(
        `${SAMPLES.map(
          (s) => `${s.name.padEnd(width)}  ${s.summary}\n${" ".repeat(width)}  use when ${s.useWhen}`,
        ).join("\n")}\n`,
      );
    }
    return 0;
  }
  if (command === "add" && sub !== undefined && name === undefined) return addProfile(sub, flags, io);
  if (command === "edit" && sub !== undefined && name === undefined) return editProfile(sub, flags, io);
  if (command === "samples" && sub === "show" && name !== undefined && extra.length === 0) {
    io.stdout(await readSample(name));
    return 0;
  }
  throw new UsageError(`unknown command "${flags.positionals.join(" ")}"; usage: ${SYNOPSIS}`);
}
