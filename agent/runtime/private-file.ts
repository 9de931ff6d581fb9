/**
 * Writing a file only its owner may read (state, profiles, URL files), whole. The text goes to
 * a fresh sibling created with O_EXCL — so neither a symlink nor a stale file planted under that
 * name is followed or reused with its own mode — and is renamed over the target, which a reader
 * therefore never sees half-written and which ends up 0600 whatever was there before.
 */
import { randomUUID } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";

export async function writePrivateFile(path: string, text: string): Promise<void> {
  const temporary = `${path}.${randomUUID()}.tmp`;
  try {
    await writeFile(temporary, text, { flag: "wx", mode: 0o600 });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
