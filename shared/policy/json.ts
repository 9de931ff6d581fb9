/**
 * Strict JSON for bodies a policy judges. `JSON.parse` keeps the last of two equal
 * keys while other decoders keep the first (or merge them), so
 * `{"name":"echo","name":"delete_all"}` could be judged as one tool and run as
 * another. The relay parses every raw body with {@link parseJsonStrict} and refuses
 * what it rejects.
 */

/** Deepest nesting accepted by default; MCP messages are shallow and deep input only costs stack. */
export const MAX_JSON_DEPTH = 100;

export type StrictJsonResult =
  | { ok: true; value: unknown }
  | { ok: false; reason: string };

interface Frame {
  /** Keys seen so far in an object; `null` for an array. */
  keys: Set<string> | null;
  expectingKey: boolean;
  /** The member being read: a key in an object, an index in an array. */
  member: string | number;
}

function pathOf(stack: Frame[]): string {
  let path = "$";
  for (const frame of stack) {
    if (typeof frame.member === "number") path += `[${frame.member}]`;
    else path += /^[A-Za-z_$][\w$]*$/.test(frame.member) ? `.${frame.member}` : `[${JSON.stringify(frame.member)}]`;
  }
  return path;
}

/** Index of the quote that closes the string opening at `start`. Input is already valid JSON. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  for (;;) {
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === 92) slashes++;
    if (slashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

/**
 * Parse JSON, rejecting duplicate object keys at any depth (keys compare after
 * unescaping, so `"a"` and `"\u0061"` are the same key) and nesting deeper than
 * `maxDepth`. The reason names the JSON path, e.g. `duplicate key "name" at $.params`.
 */
export function parseJsonStrict(text: string, options: { maxDepth?: number } = {}): StrictJsonResult {
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `invalid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (code === 34 /* " */) {
      const end = stringEnd(text, i);
      if (top?.keys && top.expectingKey) {
        const raw = text.slice(i, end + 1);
        const key = raw.includes("\\") ? JSON.parse(raw) as string : raw.slice(1, -1);
        if (top.keys.has(key)) return { ok: false, reason: `duplicate key ${JSON.stringify(key)} at ${pathOf(stack.slice(0, -1)) }` };
        top.keys.add(key);
        top.member = key;
        top.expectingKey = false;
      }
      i = end;
    } else if (code === 123 /* { */ || code === 91 /* [ */) {
      if (stack.length >= maxDepth) return { ok: false, reason: `JSON nested deeper than ${maxDepth} levels at ${pathOf(stack)}` };
      stack.push(code === 123 ? { keys: new Set(), expectingKey: true, member: "" } : { keys: null, expectingKey: false, member: 0 });
    } else if (code === 125 /* } */ || code === 93 /* ] */) {
      stack.pop();
    } else if (code === 44 /* , */ && top) {
      if (top.keys) top.expectingKey = true;
      else top.member = (top.member as number) + 1;
    }
  }
  return { ok: true, value };
}
