/**
 * Secret flags (`--token`, `--agent-key`, …) take `env:NAME | file:/path`: a reference, never
 * the secret itself, so it stays out of the process list and shell history.
 */
import { readFile } from "node:fs/promises";
import { type ReferenceContext, referenceKind, resolveReference } from "../config/secrets.ts";
import { UsageError, type CliIo, type ParsedFlags } from "./options.ts";

/**
 * The secret `--<name>` refers to, or undefined when the flag is absent; a literal value is a
 * usage error that shows `example`. `noun` names what it is in that message.
 */
export async function secretFlag(
  flags: ParsedFlags,
  name: string,
  ctx: ReferenceContext,
  example: string,
  noun = "secret",
): Promise<string | undefined> {
  const ref = flags.strings.get(name);
  if (ref === undefined) return undefined;
  if (!referenceKind(ref)) {
    throw new UsageError(
      `--${name} takes a reference, env:NAME or file:/path, so the ${noun} stays out of the process list; e.g. --${name} ${example}`,
    );
  }
  return resolveReference(ref, `--${name}`, ctx, { secret: true });
}

/** The token `--token` names (for a hub's auditor/admin routes), or undefined when the flag is absent. */
export function tokenFlag(flags: ParsedFlags, io: CliIo, example: string): Promise<string | undefined> {
  const ctx = {
    env: io.env,
    cwd: io.cwd,
    readFile: (path: string) => readFile(path, "utf8"),
    secrets: new Set<string>(),
  };
  return secretFlag(flags, "token", ctx, example, "token");
}

/** The message of the hub's error envelope, or the start of the body when it is not one. */
export async function hubErrorDetail(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    return (JSON.parse(text) as { error: { message: string } }).error.message;
  } catch {
    return text.slice(0, 300);
  }
}
