/**
 * JSON as Go's `encoding/json` encoder writes it with `SetIndent("", "  ")`: two-space
 * indent, a trailing newline, and `<`, `>`, `&`, U+2028 and U+2029 escaped (Go's HTML-safe
 * default), so output a script compared against tunnel-client's is byte for byte the same.
 */
const GO_ESCAPED = /[<>&\u2028\u2029]/g;

export function goJson(value: unknown): string {
  const text = JSON.stringify(value, null, 2).replace(
    GO_ESCAPED,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `${text}\n`;
}
