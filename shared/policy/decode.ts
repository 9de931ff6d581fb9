/**
 * Opt-in decoding for text patterns (`decode: [base64, data-url]`). A deny pattern sees
 * text; a backend can hand the same bytes back base64-encoded (`read_media_file`, a
 * resource's `blob`) or inside a `data:` URL, and the pattern never sees them. With
 * decoding on, such strings are also decoded (one level, as UTF-8 with replacement
 * characters) and the pattern runs over the decoded text too. Web-standard (`atob`,
 * `TextDecoder`), so it runs wherever the policy does.
 */

/** The decodings a policy may ask for. */
export const DECODINGS = ["base64", "data-url"] as const;
export type Decoding = (typeof DECODINGS)[number];

// Whole-string base64 (standard or URL-safe alphabet, optional padding, line breaks allowed).
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
/** Shorter strings are words more often than encodings; 8 characters carry 6 bytes. */
const MIN_BASE64_LENGTH = 8;
const DATA_URL = /data:([^,"'\s]*),([^"'\s<>]*)/gi;
const utf8 = new TextDecoder("utf-8");
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function fromBase64(text: string, textOnly: boolean): string | undefined {
  // Encoders wrap lines; spaces are not part of base64 (and would make any sentence "decodable").
  const compact = text.replace(/[\r\n]+/g, "");
  if (compact.length < MIN_BASE64_LENGTH || !BASE64.test(compact) || compact.replace(/=+$/, "").length % 4 === 1)
    return undefined;
  const standard = compact.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  try {
    const binary = atob(standard + "=".repeat((4 - (standard.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    if (!textOnly) return utf8.decode(bytes);
    const decoded = strictUtf8.decode(bytes);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: text with control characters is not text
    return /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/.test(decoded) ? undefined : decoded;
  } catch {
    return undefined;
  }
}

function fromPercent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The decoded texts `text` also stands for, under the decodings asked for (none when
 * nothing decodes). Bytes are read as UTF-8 with replacement characters, so a secret
 * inside binary still shows; `textOnly` keeps only decodings that are plain text (valid
 * UTF-8, no control characters) — what an allow pattern should be held to, since any
 * word of base64 letters decodes to some bytes.
 */
export function decodedViews(
  text: string,
  decode: readonly Decoding[],
  options: { textOnly?: boolean } = {},
): string[] {
  const textOnly = options.textOnly ?? false;
  const views: string[] = [];
  if (decode.includes("base64")) {
    const decoded = fromBase64(text, textOnly);
    if (decoded !== undefined) views.push(decoded);
  }
  if (decode.includes("data-url") && /data:/i.test(text)) {
    for (const [, header = "", payload = ""] of text.matchAll(DATA_URL)) {
      const decoded = /;base64$/i.test(header) ? fromBase64(fromPercent(payload), textOnly) : fromPercent(payload);
      if (decoded !== undefined) views.push(decoded);
    }
  }
  return views;
}
