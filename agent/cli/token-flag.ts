/**
 * `--token env:NAME | file:/path`: a secret for a hub's auditor/admin routes. A reference,
 * never the token itself, so the token stays out of the process list and shell history.
 */
import { readFile } from "node:fs/promises";
import { referenceKind, resolveReference } from "../config/secrets.ts";
import { UsageError, type CliIo, type ParsedFlags } from "./options.ts";

/** The token `--token` names, or undefined when the flag is absent. */
export async function tokenFlag(flags: ParsedFlags, io: CliIo, example: string): Promise<string | undefined> {
  const ref = flags.strings.get("token");
  if (ref === undefined) return undefined;
  if (!referenceKind(ref)) {
    throw new UsageError(
      `--token takes a reference, env:NAME or file:/path, so the token stays out of the process list; e.g. --token ${example}`,
    );
  }
  const ctx = {
    env: io.env,
    cwd: io.cwd,
    readFile: (path: string) => readFile(path, "utf8"),
    secrets: new Set<string>(),
  };
  return resolveReference(ref, "--token", ctx, { secret: true });
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
