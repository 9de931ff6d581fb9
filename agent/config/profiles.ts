/**
 * Which YAML file (if any) configures this run: `--config FILE`, `--profile NAME` (looked up
 * in the profile directory) or `--profile-file FILE`, or the same through the environment.
 * tunnel-client keeps profiles in `$XDG_CONFIG_HOME/tunnel-client/NAME.yaml`; Airlock reads
 * its own `$XDG_CONFIG_HOME/airlock/profiles/NAME.yaml` first and then tunnel-client's, so
 * existing profiles run unchanged.
 */
import { isAbsolute, join, resolve } from "node:path";
import { SOURCE_FLAGS } from "./flags.ts";
import { ConfigError, configError } from "./errors.ts";

export interface ConfigSourcePlan {
  kind: "config" | "profile" | "profile-file";
  /** Files to try in order; the first that exists is used. */
  candidates: string[];
  profileName?: string;
  /** Where the choice came from: `--profile`, `TUNNEL_CLIENT_PROFILE`, … */
  origin: string;
}

export interface SourceInputs {
  flags: Partial<Record<keyof typeof SOURCE_FLAGS, string>>;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  homeDir?: string;
}

/** tunnel-client's rule: one file name, no separators. */
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The config file choice, or `undefined` when none was made (flags and environment only). */
export function planConfigSource(inputs: SourceInputs): ConfigSourcePlan | undefined {
  const chosen: Array<{ kind: ConfigSourcePlan["kind"]; value: string; origin: string }> = [];
  for (const kind of ["config", "profile", "profile-file"] as const) {
    const value = inputs.flags[kind];
    if (value !== undefined) chosen.push({ kind, value, origin: `--${kind}` });
  }
  if (chosen.length === 0) {
    for (const kind of ["config", "profile", "profile-file"] as const) {
      const found = firstEnv(inputs.env, SOURCE_FLAGS[kind].env);
      if (found) chosen.push({ kind, ...found });
    }
  }
  if (chosen.length > 1) {
    throw new ConfigError(
      [
        {
          path: chosen[0]!.origin,
          message: `${chosen.map((c) => c.origin).join(" and ")} are mutually exclusive; choose one`,
        },
      ],
      { kind: "usage" },
    );
  }
  const choice = chosen[0];
  if (!choice) return undefined;
  const value = choice.value.trim();
  if (!value) throw new ConfigError([{ path: choice.origin, message: "needs a value" }], { kind: "usage" });

  if (choice.kind === "config") return { kind: "config", candidates: [absolute(value, inputs)], origin: choice.origin };
  if (choice.kind === "profile-file") {
    const file = absolute(value, inputs);
    if (!/\.ya?ml$/.test(file)) throw configError(choice.origin, `profile file ${file} must end with .yaml`);
    const name = file.slice(file.lastIndexOf("/") + 1).replace(/\.ya?ml$/, "");
    return { kind: "profile-file", candidates: [file], profileName: name, origin: choice.origin };
  }
  if (!PROFILE_NAME.test(value) || value === "." || value === "..") {
    throw configError(
      choice.origin,
      `invalid profile name "${value}": use letters, digits, '.', '_' or '-' (no path separators)`,
    );
  }
  return {
    kind: "profile",
    candidates: profileDirs(inputs).map((dir) => join(dir, `${value}.yaml`)),
    profileName: value,
    origin: choice.origin,
  };
}

/** Profile directories in lookup order. An explicit directory (flag or environment) is the only one. */
export function profileDirs(inputs: SourceInputs): string[] {
  const explicit = inputs.flags["profile-dir"] ?? firstEnv(inputs.env, SOURCE_FLAGS["profile-dir"].env)?.value;
  if (explicit !== undefined) {
    if (!explicit.trim())
      throw new ConfigError([{ path: "--profile-dir", message: "needs a directory" }], { kind: "usage" });
    return [absolute(explicit.trim(), inputs)];
  }
  const home = inputs.homeDir ?? inputs.env.HOME;
  const xdg = inputs.env.XDG_CONFIG_HOME?.trim() || (home ? join(home, ".config") : undefined);
  if (!xdg)
    throw configError("--profile-dir", "no profile directory: HOME and XDG_CONFIG_HOME are unset; pass --profile-dir");
  return [join(xdg, "airlock", "profiles"), join(xdg, "tunnel-client")];
}

function firstEnv(env: SourceInputs["env"], names: readonly string[]): { value: string; origin: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value.trim() !== "") return { value, origin: name };
  }
  return undefined;
}

function absolute(path: string, inputs: SourceInputs): string {
  const home = inputs.homeDir ?? inputs.env.HOME;
  const expanded = home && (path === "~" || path.startsWith("~/")) ? join(home, path.slice(1)) : path;
  return isAbsolute(expanded) ? expanded : resolve(inputs.cwd, expanded);
}
