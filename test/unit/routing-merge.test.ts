/** Merging of initialize answers and list pages across the backends of an aggregated channel. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  assemblePage,
  commonProtocolVersion,
  decodeCursor,
  encodeCursor,
  mergeCapabilities,
  mergeInstructions,
} from "../../agent/routing/merge.ts";
import type { MemberPage, PagePosition } from "../../agent/routing/merge.ts";

describe("initialize merging", () => {
  test("capabilities are the union of what the aggregate routes, with listChanged announced", () => {
    const merged = mergeCapabilities([
      {
        name: "a",
        protocolVersion: "2025-06-18",
        capabilities: { tools: {}, logging: {}, experimental: { x: {} }, tasks: { list: {} } },
      },
      { name: "b", protocolVersion: "2025-06-18", capabilities: { resources: { subscribe: true }, completions: {} } },
      { name: "c", protocolVersion: "2025-06-18", capabilities: { prompts: { listChanged: false }, resources: {} } },
    ]);
    assert.deepEqual(merged, {
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      logging: {},
      completions: {},
    });
  });

  test("a feature no backend offers is not announced; subscribe only when a backend supports it", () => {
    assert.deepEqual(
      mergeCapabilities([{ name: "a", protocolVersion: "v", capabilities: { tools: { listChanged: true } } }]),
      { tools: { listChanged: true } },
    );
    assert.deepEqual(
      mergeCapabilities([{ name: "a", protocolVersion: "v", capabilities: { resources: { subscribe: false } } }]),
      { resources: { listChanged: true } },
    );
    assert.deepEqual(mergeCapabilities([]), {});
  });

  test("the protocol version is the highest one every backend speaks", () => {
    assert.equal(commonProtocolVersion(["2025-06-18", "2025-03-26", "2025-11-25"], "x"), "2025-03-26");
    assert.equal(commonProtocolVersion(["2025-06-18"], "x"), "2025-06-18");
    assert.equal(commonProtocolVersion([], "2025-06-18"), "2025-06-18");
  });

  test("instructions are kept per backend, under its name and namespace", () => {
    const text = mergeInstructions([
      { name: "a", protocolVersion: "v", capabilities: {}, instructions: "  Use a wisely.\n" },
      { name: "b", protocolVersion: "v", capabilities: {} },
      { name: "c", protocolVersion: "v", capabilities: {}, instructions: "   " },
      { name: "d", protocolVersion: "v", capabilities: {}, instructions: "D things." },
    ]);
    assert.equal(
      text,
      "## a (tools and prompts prefixed a__)\n\nUse a wisely.\n\n## d (tools and prompts prefixed d__)\n\nD things.",
    );
    assert.equal(mergeInstructions([{ name: "b", protocolVersion: "v", capabilities: {} }]), undefined);
  });
});

describe("cursors", () => {
  test("encode → decode round-trips positions, including backend cursors with any characters", () => {
    const positions: PagePosition[] = [
      { name: "a", offset: 3 },
      { name: "b", cursor: 'c/+=ü"{}', offset: 0 },
    ];
    const cursor = encodeCursor("tools/list", positions);
    assert.match(cursor, /^[A-Za-z0-9_-]+$/, "opaque and URL-safe");
    assert.deepEqual(decodeCursor("tools/list", cursor), positions);
  });

  test("a cursor is only valid for the list it came from, and garbage is refused", () => {
    const cursor = encodeCursor("tools/list", [{ name: "a", offset: 0 }]);
    assert.equal(decodeCursor("prompts/list", cursor), undefined);
    const bad = [
      "",
      "not base64!",
      "e30", // {}
      btoa(JSON.stringify({ v: 2, m: "tools/list", p: [["a", null, 0]] })),
      btoa(JSON.stringify({ v: 1, m: "tools/list", p: [] })),
      btoa(JSON.stringify({ v: 1, m: "tools/list", p: [["a", null, -1]] })),
      btoa(JSON.stringify({ v: 1, m: "tools/list", p: [["a", 5, 0]] })),
      btoa(JSON.stringify({ v: 1, m: "tools/list", p: [[1, null, 0]] })),
      btoa(JSON.stringify({ v: 1, m: "tools/list", p: [["a", null]] })),
      "_w", // invalid UTF-8
    ];
    for (const text of bad) assert.equal(decodeCursor("tools/list", text.replace(/=+$/, "")), undefined, text);
  });
});

/** Backends with paged lists: `pages[name][k]` is that backend's k-th page; cursors are `"<k>"`. */
function pagedBackends(pages: Record<string, string[][]>) {
  const fetched: string[] = [];
  return {
    fetched,
    fetch(position: PagePosition): MemberPage | undefined {
      const k = position.cursor === undefined ? 0 : Number(position.cursor);
      fetched.push(`${position.name}:${k}`);
      const list = pages[position.name];
      if (!list) return undefined;
      const items = list[k]!;
      return k + 1 < list.length ? { items, nextCursor: String(k + 1) } : { items };
    },
  };
}

/** Page through everything the way the aggregate does, through encoded cursors. */
function listAll(
  pages: Record<string, string[][]>,
  pageSize: number | undefined,
  accept: (b: string, item: unknown) => string | undefined = (b, item) => `${b}__${String(item)}`,
) {
  const backends = pagedBackends(pages);
  let positions: PagePosition[] = Object.keys(pages).map((name) => ({ name, offset: 0 }));
  const seen: string[][] = [];
  while (positions.length > 0) {
    const result = assemblePage(
      positions,
      positions.map((p) => backends.fetch(p)),
      accept,
      pageSize,
    );
    seen.push(result.items);
    positions = result.next.length ? decodeCursor("tools/list", encodeCursor("tools/list", result.next))! : [];
    assert.ok(seen.length < 1000, "paging terminates");
  }
  return { seen, fetched: backends.fetched };
}

describe("pages across backends", () => {
  const pages = {
    a: [
      ["1", "2", "3"],
      ["4", "5"],
    ],
    b: [["1"]],
    c: [[], ["1", "2", "3", "4"], ["5"]],
  };
  const everything = ["a__1", "a__2", "a__3", "a__4", "a__5", "b__1", "c__1", "c__2", "c__3", "c__4", "c__5"];

  test("without a page size, each request hands out every pending backend's current page", () => {
    const { seen } = listAll(pages, undefined);
    assert.deepEqual(seen, [
      ["a__1", "a__2", "a__3", "b__1"],
      ["a__4", "a__5", "c__1", "c__2", "c__3", "c__4"],
      ["c__5"],
    ]);
  });

  test("every item exactly once, and never more than a page's worth, for every page size", () => {
    for (let size = 1; size <= 12; size++) {
      const { seen } = listAll(pages, size);
      assert.ok(
        seen.every((page) => page.length <= size),
        `size ${size}`,
      );
      assert.deepEqual(seen.flat().sort(), [...everything].sort(), `size ${size}`);
      assert.equal(new Set(seen.flat()).size, everything.length);
    }
  });

  test("items an accept function drops (filtered tools) are skipped without losing others", () => {
    const accept = (b: string, item: unknown) => (String(item) === "2" ? undefined : `${b}__${String(item)}`);
    for (const size of [1, 2, 3, undefined]) {
      const { seen } = listAll(pages, size, accept);
      assert.deepEqual(seen.flat().sort(), everything.filter((n) => !n.endsWith("__2")).sort(), `size ${size}`);
    }
  });

  test("a backend that cannot be asked drops out; the others are still listed", () => {
    const positions: PagePosition[] = [
      { name: "a", offset: 0 },
      { name: "down", offset: 0 },
      { name: "b", offset: 0 },
    ];
    const result = assemblePage(
      positions,
      [{ items: [1] }, undefined, { items: [2], nextCursor: "n" }],
      (b, i) => `${b}${String(i)}`,
    );
    assert.deepEqual(result, { items: ["a1", "b2"], next: [{ name: "b", cursor: "n", offset: 0 }] });
  });

  test("a full page keeps the position of every backend it did not reach", () => {
    const positions: PagePosition[] = [
      { name: "a", offset: 1 },
      { name: "b", cursor: "x", offset: 0 },
    ];
    const result = assemblePage(positions, [{ items: [0, 1, 2] }, { items: [9] }], (_b, i) => i, 2);
    assert.deepEqual(result, { items: [1, 2], next: [{ name: "b", cursor: "x", offset: 0 }] });
  });
});
