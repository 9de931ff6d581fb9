/**
 * MCP's stdio framing: one JSON-RPC message per line, `\n`-terminated (a `\r` before it is
 * tolerated).
 *
 * Not the SDK's `ReadBuffer`/`serializeMessage`: `ReadBuffer.readMessage` throws on the first
 * line that is not a valid JSON-RPC message (servers print banners and debug output on
 * stdout, which must not break the backend), it holds a line of any length in memory, and
 * its schema parse would re-shape messages that Airlock forwards byte for byte. This reader
 * skips such lines and discards over-long ones instead.
 */
import { isObject } from "../../../shared/jsonrpc.ts";
import type { JsonRpcMessage } from "../../../shared/jsonrpc.ts";

/** Splits a child's stdout into lines; a line longer than `maxLineBytes` is dropped whole. */
export class LineReader {
  readonly #maxLineBytes: number;
  #buffer = "";
  /** The buffer held the start of an over-long line: drop everything up to its end. */
  #discarding = false;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /**
   * Add a chunk; returns the complete lines it finished (without `\n`), and whether the
   * unfinished rest was over-long (with its length) and has been dropped.
   */
  push(chunk: string): { lines: string[]; dropped?: number } {
    this.#buffer += chunk;
    const lines: string[] = [];
    for (let index = this.#buffer.indexOf("\n"); index !== -1; index = this.#buffer.indexOf("\n")) {
      const line = this.#buffer.slice(0, index);
      this.#buffer = this.#buffer.slice(index + 1);
      if (this.#discarding) {
        this.#discarding = false;
        continue;
      }
      lines.push(line);
    }
    if (this.#buffer.length <= this.#maxLineBytes) return { lines };
    const dropped = this.#buffer.length;
    this.#buffer = "";
    this.#discarding = true;
    return { lines, dropped };
  }

  /** The unterminated last line when the stream ends, if it holds anything worth reading. */
  flush(): string | undefined {
    const rest = this.#discarding || this.#buffer.trim() === "" ? undefined : this.#buffer;
    this.#buffer = "";
    return rest;
  }
}

/** A line as a JSON-RPC message; undefined for blank lines, and `"garbage"` for anything that is not a JSON object. */
export function parseLine(raw: string): JsonRpcMessage | "garbage" | undefined {
  const line = raw.replace(/\r$/, "");
  if (line.trim() === "") return undefined;
  try {
    const message: unknown = JSON.parse(line);
    return isObject(message) ? message : "garbage";
  } catch {
    return "garbage";
  }
}

/** One message as a line for the child's stdin. */
export function encodeLine(message: JsonRpcMessage): string {
  return `${JSON.stringify(message)}\n`;
}
