/**
 * Deno runs code with no permissions unless granted. Without this check `deno run
 * agent/main.ts` would die deep inside config loading with an uncaught `NotCapable` stack
 * trace; instead the entry point asks Deno up front (`Deno.permissions.query`, which never
 * prompts) and, when something is missing, prints one message naming the least-privilege
 * flags and exits 2 (a usage error). Node and Bun have no permission model: nothing to check.
 *
 * Why each flag: `--allow-net` reaches the control plane, HTTP backends and serves the health
 * listener; `--allow-env` reads tunnel-client's environment variables and `env:` secrets;
 * `--allow-read` loads profiles, `file:` secrets and CA files; `--allow-run` starts stdio MCP
 * servers. Writing is needed only for files the operator names, so it is granted per path.
 * `airlock doctor` also needs `--allow-sys=uid` (Deno's `fs.access` asks for the user id).
 */

/** The flags every `deno run agent/main.ts …` needs, in the order the docs write them. */
export const DENO_FLAGS = ["--allow-net", "--allow-env", "--allow-read", "--allow-run"] as const;
/** `airlock doctor` also checks whether a stdio program is executable, which Deno answers only with the user id. */
export const DOCTOR_DENO_FLAG = "--allow-sys=uid";

type Descriptor = { name: "net" | "env" | "read" | "run" } | { name: "sys"; kind: "uid" };
const REQUIRED: ReadonlyArray<{ descriptor: Descriptor; flag: string }> = [
  { descriptor: { name: "net" }, flag: "--allow-net" },
  { descriptor: { name: "env" }, flag: "--allow-env" },
  { descriptor: { name: "read" }, flag: "--allow-read" },
  { descriptor: { name: "run" }, flag: "--allow-run" },
];
const DOCTOR = { descriptor: { name: "sys", kind: "uid" } as Descriptor, flag: DOCTOR_DENO_FLAG };

interface DenoPermissions {
  query(descriptor: Descriptor): Promise<{ state: "granted" | "prompt" | "denied" }>;
}

/** Subcommands that touch nothing (help, version) run without any permission. */
const HARMLESS = new Set(["help", "--help", "-h", "version", "--version"]);

/**
 * The message to print when running under Deno without the permissions the agent needs;
 * `undefined` on Node and Bun, or when everything is granted.
 */
export async function missingPermissionsMessage(argv: readonly string[]): Promise<string | undefined> {
  const deno = (globalThis as unknown as { Deno?: { permissions?: DenoPermissions } }).Deno;
  if (!deno?.permissions || (argv[0] !== undefined && HARMLESS.has(argv[0]))) return undefined;
  const required = argv[0] === "doctor" ? [...REQUIRED, DOCTOR] : REQUIRED;
  const missing: string[] = [];
  for (const { descriptor, flag } of required) {
    if ((await deno.permissions.query(descriptor)).state !== "granted") missing.push(flag);
  }
  if (missing.length === 0) return undefined;
  return [
    `airlock: Deno has not granted ${missing.join(", ")}. Run the agent with exactly these permissions:`,
    "",
    `  deno run ${required.map((r) => r.flag).join(" ")} agent/main.ts ${argv.join(" ") || "run …"}`,
    "",
    "--allow-net for the control plane, HTTP backends and the health listener; --allow-env for",
    "tunnel-client's environment and env: secrets; --allow-read for profiles, file: secrets and CA",
    "files; --allow-run to start stdio MCP servers. Add --allow-write=PATH only for files you ask",
    "for (health.url_file, process.pid_file, `airlock init`'s profile, `airlock hub --state-dir`).",
  ].join("\n");
}
