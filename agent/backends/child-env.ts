/**
 * The environment a process the agent starts (a stdio MCP server, doctor's probe of one,
 * the browser opener) is given: an allowlist, never the agent's own environment.
 *
 * Why an allowlist. The agent's environment holds its credentials in many shapes: the key
 * itself (`CONTROL_PLANE_API_KEY`, or any variable an `env:` reference names, with or
 * without a trailing newline), and credentials embedded in other settings
 * (`CONTROL_PLANE_EXTRA_HEADERS`, `MCP_EXTRA_HEADERS`, `HARPOON_TARGETS` URLs,
 * `MCP_HTTP_PROXY` userinfo, …). No rule that recognises secrets can find them all, so a
 * child gets only what a program needs to run at all, plus what its backend's `env:` map
 * names explicitly (references allowed: `GITHUB_TOKEN: env:GITHUB_TOKEN`).
 */

/**
 * Variables every child may see: how to find programs, who and where it is, language and
 * time zone, scratch space, and where extra CA certificates live (a path, not a secret; a
 * server behind a TLS-inspecting proxy cannot connect anywhere without it). Proxy variables
 * are deliberately absent: proxy URLs carry credentials. Windows needs its system variables
 * to start anything, and names there are case-insensitive.
 */
const ALLOWED = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "TERM",
  "TZ",
  "LANG",
  "LANGUAGE",
  "TMPDIR",
  "TMP",
  "TEMP",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "SYSTEMROOT",
  "SYSTEMDRIVE",
  "WINDIR",
  "COMSPEC",
  "PATHEXT",
  "APPDATA",
  "LOCALAPPDATA",
  "USERPROFILE",
  "HOMEDRIVE",
  "HOMEPATH",
  "USERNAME",
  "PROGRAMFILES",
  "PROCESSOR_ARCHITECTURE",
]);

/** `LC_ALL`, `LC_CTYPE`, … */
const LOCALE = /^LC_[A-Z]+$/;

/** What a desktop opener (`xdg-open`) needs on top to reach the user's session. */
export const DESKTOP_SESSION_VARIABLES = [
  "DISPLAY",
  "WAYLAND_DISPLAY",
  "XAUTHORITY",
  "XDG_RUNTIME_DIR",
  "DBUS_SESSION_BUS_ADDRESS",
  "XDG_CURRENT_DESKTOP",
  "BROWSER",
] as const;

/** Below this length a "secret" would match inside ordinary paths; the allowlist is the control. */
const MIN_SECRET_MATCH = 8;

/**
 * The allowlisted part of `env`. As a second line of defence an allowlisted variable that
 * contains one of the agent's resolved `secrets` is dropped too (e.g. a key pasted into
 * `HOME` by mistake). `extra` widens the allowlist for one kind of child.
 */
export function childEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  secrets: Iterable<string> = [],
  extra: readonly string[] = [],
): Record<string, string> {
  const secretValues = [...secrets].filter((value) => value.length >= MIN_SECRET_MATCH);
  const extraNames = new Set(extra);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !(isAllowed(name) || extraNames.has(name))) continue;
    if (secretValues.some((secret) => value.includes(secret))) continue;
    out[name] = value;
  }
  return out;
}

function isAllowed(name: string): boolean {
  const canonical = process.platform === "win32" ? name.toUpperCase() : name;
  return ALLOWED.has(canonical) || LOCALE.test(canonical);
}
