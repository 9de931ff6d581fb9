import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  foldName,
  globProblem,
  isUnderPrefix,
  matchGlob,
  nameSuspicion,
  normalizePrefix,
  pathViews,
  patternProblem,
} from "../../shared/policy/index.ts";

describe("globs", () => {
  test("* spans slashes, ? is one character, \\ escapes, the whole name must match", () => {
    assert.ok(matchGlob("notifications/*", "notifications/resources/updated"));
    assert.ok(matchGlob("get-?um", "get-sum"));
    assert.ok(!matchGlob("get-?um", "get-summ"));
    assert.ok(matchGlob("a\\*b", "a*b"));
    assert.ok(!matchGlob("a\\*b", "axb"));
    assert.ok(!matchGlob("echo", "echo2"));
    assert.ok(!matchGlob("echo", "xecho"));
    assert.ok(matchGlob("*", ""));
    assert.ok(matchGlob("t?st", "t😀st"), "? is one code point");
  });

  test("many stars against a long hostile name stay linear-ish, not exponential", () => {
    const started = performance.now();
    assert.equal(matchGlob("*a*a*a*a*a*a*a*b", "a".repeat(5000)), false);
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
  });

  test("bad globs are named", () => {
    assert.equal(globProblem(""), "a glob cannot be empty");
    assert.equal(globProblem("abc\\"), "a glob cannot end with a lone '\\'");
    assert.equal(globProblem("abc\\\\"), undefined);
    assert.match(globProblem("x".repeat(513)) ?? "", /limited to 512/);
  });
});

describe("names", () => {
  test("foldName removes case, width, invisible characters and common look-alikes", () => {
    assert.equal(foldName("Tools/Call"), "tools/call");
    assert.equal(foldName("ｔｏｏｌｓ/ｃａｌｌ"), "tools/call");
    assert.equal(foldName("to\u200Bols/c\u2060all"), "tools/call");
    assert.equal(foldName(" tools/call\u00A0"), "tools/call");
    assert.equal(foldName("d\u0435l\u0435t\u0435"), "delete");
    assert.equal(foldName("\u0420\u0410\u0421\u0422"), "pact"); // Cyrillic capitals
  });

  test("nameSuspicion flags invisible characters, NFKC changes and mixed scripts, and leaves plain names alone", () => {
    for (const plain of ["echo", "get-sum", "read_file", "поиск", "検索", "café"])
      assert.equal(nameSuspicion(plain), undefined, plain);
    assert.match(nameSuspicion("ec\u200Bho") ?? "", /U\+200B/);
    assert.match(nameSuspicion("echo\u202E") ?? "", /U\+202E/);
    assert.match(nameSuspicion("ec\u0000ho") ?? "", /U\+0000/);
    assert.match(nameSuspicion("ｅcho") ?? "", /not NFKC/);
    assert.match(nameSuspicion("\u0435cho") ?? "", /mixes Latin and Cyrillic/);
  });
});

describe("paths", () => {
  test("pathViews resolves dots, separators and percent-encoding (repeatedly)", () => {
    assert.deepEqual(pathViews("/srv/docs/./a//b/../c"), ["/srv/docs/a/c"]);
    assert.deepEqual(pathViews("/srv/docs/%2e%2e/x"), ["/srv/docs/%2e%2e/x", "/srv/x"]);
    assert.deepEqual(pathViews("/srv/docs/%252e%252e/x"), ["/srv/docs/%252e%252e/x", "/srv/x"]);
    assert.deepEqual(pathViews("C:\\srv\\docs\\..\\x"), ["C:/srv/x"], "a drive letter is not a URL scheme");
    // The second view trims trailing dots from names, as Windows does (`x?q=..` read as one name).
    assert.deepEqual(pathViews("file:///srv/docs/../x?q=../y"), ["file:///srv/x?q=../y", "file:///srv/x?q=/y"]);
    assert.deepEqual(pathViews("HTTPS://Host.example/a/../b"), ["https://host.example/b"]);
  });

  test("pathViews refuses what cannot be judged", () => {
    assert.equal(pathViews("/../etc"), undefined);
    assert.equal(pathViews("a/../../b"), undefined);
    assert.equal(pathViews("/srv/a\u0000b"), undefined);
    assert.equal(pathViews("/srv/%00"), undefined);
    assert.equal(pathViews("/srv/%E0%A4%A"), undefined);
  });

  test("isUnderPrefix respects segment boundaries", () => {
    const { kind, text: prefix } = normalizePrefix("/srv/docs/")!;
    assert.deepEqual([kind, prefix], ["path", "/srv/docs"]);
    assert.ok(isUnderPrefix("/srv/docs", prefix));
    assert.ok(isUnderPrefix("/srv/docs/a", prefix));
    assert.ok(!isUnderPrefix("/srv/docs2", prefix));
    assert.ok(isUnderPrefix("/anything", "/"));
  });
});

describe("patterns", () => {
  test("patterns run on RE2: nested quantifiers are fine, lookaround and backreferences are refused", () => {
    for (const ok of [
      "AKIA[0-9A-Z]{16}",
      "(?i)secret",
      "(ab)+",
      "(a{2,3})+",
      "[(a+)]+",
      "\\(a+\\)+",
      "ghp_[A-Za-z0-9]{36}",
      "(a+)+",
      "(x+x+)+y",
    ])
      assert.equal(patternProblem(ok), undefined, ok);
    for (const bad of ["(a)\\1", "a(?=b)", "(?<!a)b", "(?!x)"])
      assert.match(patternProblem(bad) ?? "", /lookaround and backreferences are not supported/, bad);
    assert.match(patternProblem("[") ?? "", /not a regular expression RE2 can match/);
    assert.match(
      patternProblem("[a-z]{1000}[0-9]{1000}[A-Z]{1000}[a-f]{1000}[a-f]{1000}") ?? "",
      /instructions, over the limit of 4096/,
    );
  });
});
