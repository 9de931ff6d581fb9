/**
 * The views of a name or path a policy compares. Allow rules compare the exact text
 * and only trust names that look like what they are; deny rules compare a folded
 * form, so `TOOLS/CALL`, `ｔｏｏｌｓ/call`, `tools/ca\u200Bll` or a Cyrillic `е` in
 * `dеlete` cannot slip past a rule written for the plain name, whatever a backend
 * later does with the text.
 */

// Characters that render as nothing (or reorder text) yet make two names differ:
// format (Cf: zero-width, bidi controls, tags, soft hyphen), controls (Cc), variation
// selectors, combining grapheme joiner, Mongolian selectors and the fillers that
// display blank (Hangul fillers, braille blank).
// biome-ignore lint/suspicious/noMisleadingCharacterClass: the class lists combining and invisible code points one by one, on purpose
const INVISIBLE = /[\p{Cf}\p{Cc}\u034F\u115F\u1160\u180B-\u180F\u2800\u3164\uFE00-\uFE0F\uFFA0\u{E0100}-\u{E01EF}]/u;
const INVISIBLE_ALL = new RegExp(INVISIBLE.source, "gu");

// Scripts whose letters pass for Latin ones; a name mixing two of them is a look-alike.
const CONFUSABLE_SCRIPTS: ReadonlyArray<[string, RegExp]> = [
  ["Latin", /\p{Script=Latin}/u],
  ["Cyrillic", /\p{Script=Cyrillic}/u],
  ["Greek", /\p{Script=Greek}/u],
  ["Armenian", /\p{Script=Armenian}/u],
  ["Cherokee", /\p{Script=Cherokee}/u],
  ["Coptic", /\p{Script=Coptic}/u],
];

// Common Cyrillic and Greek look-alikes of Latin letters (before lowercasing, so the
// capitals whose small forms differ, such as Cyrillic Н and Greek Η, map too).
const LOOKALIKES: Record<string, string> = Object.fromEntries(
  [
    "аa",
    "Аa",
    "вb",
    "Вb",
    "еe",
    "Еe",
    "ёe",
    "һh",
    "Нh",
    "іi",
    "Іi",
    "їi",
    "јj",
    "Јj",
    "кk",
    "Кk",
    "Мm",
    "оo",
    "Оo",
    "рp",
    "Рp",
    "сc",
    "Сc",
    "Тt",
    "уy",
    "Уy",
    "хx",
    "Хx",
    "ѕs",
    "Ѕs",
    "ԁd",
    "ԛq",
    "ԝw",
    "ӏl",
    "Ӏl",
    "үy",
    "ѵv",
    "αa",
    "Αa",
    "Βb",
    "εe",
    "Εe",
    "Ζz",
    "Ηh",
    "ιi",
    "Ιi",
    "κk",
    "Κk",
    "Μm",
    "νv",
    "Νn",
    "οo",
    "Οo",
    "ρp",
    "Ρp",
    "Τt",
    "υu",
    "Υy",
    "χx",
    "Χx",
  ].map((pair) => [pair.slice(0, 1), pair.slice(1)]),
);
const LOOKALIKE_CHARS = new RegExp(`[${Object.keys(LOOKALIKES).join("")}]`, "gu");

/**
 * The folded form deny rules compare: NFKC, invisible characters removed, common
 * Cyrillic/Greek look-alikes mapped to Latin, lowercased, surrounding whitespace trimmed.
 */
export function foldName(name: string): string {
  return name
    .normalize("NFKC")
    .replace(INVISIBLE_ALL, "")
    .replace(LOOKALIKE_CHARS, (char) => LOOKALIKES[char] ?? char)
    .toLowerCase()
    .trim();
}

function codePoint(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Why a name (tool, prompt, resource URI, method) looks like something it is not, or
 * `undefined` when it is plain: invisible or control characters, text that NFKC would
 * change (full-width letters, ligatures), or letters from two look-alike scripts
 * (Latin with Cyrillic, …). Allow rules never match such a name. `mixedScripts: false`
 * skips the script check, for URIs whose paths legitimately mix a Latin scheme with
 * names in other scripts.
 */
export function nameSuspicion(name: string, options: { mixedScripts?: boolean } = {}): string | undefined {
  const invisible = INVISIBLE.exec(name);
  if (invisible) return `contains the invisible or control character ${codePoint(invisible[0])}`;
  if (name.normalize("NFKC") !== name) {
    const odd = Array.from(name).find((char) => char.normalize("NFKC") !== char) ?? "";
    return `contains ${odd ? `the character ${codePoint(odd)}, ` : ""}which Unicode treats as equivalent to another (not NFKC-normalised)`;
  }
  if (options.mixedScripts === false) return undefined;
  const scripts = CONFUSABLE_SCRIPTS.filter(([, pattern]) => pattern.test(name)).map(([script]) => script);
  if (scripts.length > 1) return `mixes ${scripts.join(" and ")} letters, a common look-alike trick`;
  return undefined;
}

/**
 * How a `prefix` reads values. A prefix with a scheme (`file:///srv/docs`,
 * `https://host/api`) makes the rule a URL rule; anything else (`/srv/docs`,
 * `C:\\data`) a path rule, and paths are paths: `?` and `#` are ordinary characters,
 * because a filesystem server reads `/srv/docs?/../secret` as `/srv/secret`.
 */
export type PrefixKind = "path" | "url";

/** A normalised prefix and how it reads values. */
export interface PathPrefix {
  readonly kind: PrefixKind;
  readonly text: string;
}

// A scheme of at least two characters: `C:` is a Windows drive, not a URL.
const URL_HEAD = /^([a-zA-Z][a-zA-Z0-9+.-]+:)(\/\/[^/?#\\]*)?/;
const FILE_HEAD = /^file:(\/\/[^/?#\\]*)?/i;
const MAX_DECODE_ROUNDS = 4;

/** Percent-decode until stable (double encoding like `%252e` included); `undefined` when malformed. */
function percentDecode(value: string): string | undefined {
  let current = value;
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    if (!/%[0-9a-fA-F]{2}/.test(current)) return current;
    try {
      current = decodeURIComponent(current);
    } catch {
      return undefined;
    }
  }
  return /%[0-9a-fA-F]{2}/.test(current) ? undefined : current;
}

/**
 * Resolve `.`, `..`, empty segments (`//`) and `\` separators (Windows reads `\` as
 * `/`); `undefined` when `..` climbs above the start. With `windows`, a name made only
 * of dots and spaces other than `.`/`..` (`...`, `.. `) cannot be judged, and `trim`
 * drops trailing dots and spaces from each name as Windows does (`docs.` is `docs`).
 */
function resolveDots(path: string, options: { windows: boolean; trim: boolean }): string | undefined {
  const absolute = /^[/\\]/.test(path);
  const out: string[] = [];
  for (const segment of path.split(/[/\\]/)) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (out.length === 0) return undefined;
      out.pop();
    } else if (options.windows && /^[. ]+$/.test(segment)) {
      return undefined;
    } else {
      out.push(options.trim ? segment.replace(/[. ]+$/, "") : segment);
    }
  }
  return (absolute ? "/" : "") + out.join("/");
}

/**
 * The readings of one text a backend might act on. A path is resolved whole (a
 * `file:` URL also as the path it names, for servers that accept one). A URL is read
 * both as a URL (the path ends at `?` or `#`, which stay as the tail) and as a naive
 * server reads it, everything after the authority taken as a path, so
 * `file:///srv/docs?/../secret` is also `file:///srv/secret`.
 */
function readings(text: string, kind: PrefixKind, trim: boolean): Array<string | undefined> {
  if (kind === "path") {
    const windows = { windows: true, trim };
    const file = FILE_HEAD.exec(text);
    return file
      ? [resolveDots(text, windows), resolveDots(text.slice(file[0].length), windows)]
      : [resolveDots(text, windows)];
  }
  const head = URL_HEAD.exec(text);
  const scheme = head ? head[0].toLowerCase() : "";
  const options = { windows: scheme.startsWith("file:"), trim: trim && scheme.startsWith("file:") };
  const rest = text.slice(scheme.length);
  const cut = rest.search(/[?#]/);
  const path = cut < 0 ? rest : rest.slice(0, cut);
  const url = resolveDots(head && path === "" ? "/" : path, options);
  const naive = resolveDots(head && rest === "" ? "/" : rest, options);
  return [
    url === undefined ? undefined : scheme + url + (cut < 0 ? "" : rest.slice(cut)),
    naive === undefined ? undefined : scheme + naive,
  ];
}

/**
 * The normalised views of a value a prefix (or a resource glob) is checked against:
 * every reading of the text as sent and percent-decoded (repeatedly, for double
 * encoding), with and without Windows' trailing-dot trimming. A backend may decode or
 * not, run on Windows or not, so an allow must hold for every view and a deny matches
 * any. `undefined` when the value cannot be judged: control characters (NUL included),
 * malformed percent-encoding, `..` climbing above the start, or a Windows name of only
 * dots and spaces.
 */
export function pathViews(value: string, kind: PrefixKind = "url"): string[] | undefined {
  const decoded = percentDecode(value);
  if (decoded === undefined || /\p{Cc}/u.test(decoded)) return undefined;
  const views = [value, decoded].flatMap((text) => [...readings(text, kind, false), ...readings(text, kind, true)]);
  if (views.some((view) => view === undefined)) return undefined;
  return [...new Set(views as string[])];
}

/** A prefix as written in a policy, normalised (no trailing slash); `undefined` when `..` climbs above its start. */
export function normalizePrefix(prefix: string): PathPrefix | undefined {
  const kind: PrefixKind = URL_HEAD.test(prefix) ? "url" : "path";
  const view = readings(prefix, kind, false)[0];
  if (view === undefined) return undefined;
  return { kind, text: view.length > 1 && view.endsWith("/") ? view.slice(0, -1) : view };
}

/**
 * True when `path` is `prefix` or lies below it, at a segment boundary: `/srv/docs-old`
 * is not under `/srv/docs`. For a URL prefix a query or fragment is a boundary too
 * (`https://host/api?x=1`); for a path prefix `?` and `#` are name characters.
 */
export function isUnderPrefix(path: string, prefix: string, kind: PrefixKind = "path"): boolean {
  if (path === prefix) return true;
  if (!path.startsWith(prefix)) return false;
  if (prefix.endsWith("/")) return true;
  const next = path.charAt(prefix.length);
  return next === "/" || (kind === "url" && (next === "?" || next === "#"));
}
