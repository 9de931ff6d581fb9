/** Namespacing of tool/prompt names and the reversible resource-URI mapping of aggregated channels. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mapContentUris, mapUri, namespaced, splitNamespaced, unmapUri } from "../../agent/routing/names.ts";
import { BACKEND_NAME_PATTERN } from "../../shared/config/schema.ts";

describe("tool and prompt names", () => {
  test("backend__name splits at the first separator, so backend names own everything before it", () => {
    assert.equal(namespaced("github", "create_issue"), "github__create_issue");
    assert.deepEqual(splitNamespaced("github__create_issue"), { backend: "github", name: "create_issue" });
    // A tool may itself contain the separator; backend names never do.
    assert.deepEqual(splitNamespaced(namespaced("wiki", "a__b__c")), { backend: "wiki", name: "a__b__c" });
    assert.deepEqual(splitNamespaced(namespaced("my_wiki-2", "_x")), { backend: "my_wiki-2", name: "_x" });
  });

  test("names without a backend part or without a name are not namespaced", () => {
    for (const name of ["plain", "__tool", "wiki__", "", "_"]) assert.equal(splitNamespaced(name), undefined, name);
  });

  test("every valid backend name round-trips with awkward tool names", () => {
    for (const backend of ["a", "github", "k8s-prod", "my_wiki", "a1-b2_c3"]) {
      assert.match(backend, BACKEND_NAME_PATTERN);
      for (const name of ["x", "__", "a__b", "_lead", "trail_", "sp ace", "ünï"]) {
        assert.deepEqual(splitNamespaced(namespaced(backend, name)), { backend, name });
      }
    }
    assert.doesNotMatch("a__b", BACKEND_NAME_PATTERN, "a backend name with the separator would be ambiguous");
  });
});

describe("resource URIs", () => {
  const originals = [
    "file:///tmp/notes.txt",
    "demo://resource/static/document/architecture.md",
    "memory://knowledge-graph",
    "https://example.com/a/b?c=d&e=%2F#frag",
    "urn:isbn:0451450523",
    "airlock://other/file:///nested",
    "x:/ spaces and ünïcode",
  ];

  test("map and unmap are inverse for any original", () => {
    for (const uri of originals) {
      const mapped = mapUri("fs", uri);
      assert.ok(mapped.startsWith("airlock://fs/"), mapped);
      assert.deepEqual(unmapUri(mapped), { backend: "fs", uri });
    }
  });

  test("a mapped template expands to the mapped form of the backend's expansion", () => {
    const template = "demo://resource/dynamic/text/{resourceId}";
    const expand = (t: string, id: string) => t.replace("{resourceId}", id);
    assert.equal(expand(mapUri("everything", template), "7"), mapUri("everything", expand(template, "7")));
    assert.deepEqual(unmapUri(expand(mapUri("everything", template), "7")), {
      backend: "everything",
      uri: "demo://resource/dynamic/text/7",
    });
  });

  test("URIs that are not mapped are refused", () => {
    for (const uri of ["file:///x", "airlock://", "airlock://fs", "airlock://fs/", "airlock:///x", "AIRLOCK://fs/x"]) {
      assert.equal(unmapUri(uri), undefined, uri);
    }
  });

  test("resource links and embedded resources in content are mapped; other items are untouched", () => {
    const text = { type: "text", text: "airlock://x/y" };
    assert.equal(mapContentUris("b", text), text);
    assert.deepEqual(mapContentUris("b", { type: "resource_link", uri: "demo://r/1", name: "r" }), {
      type: "resource_link",
      uri: "airlock://b/demo://r/1",
      name: "r",
    });
    assert.deepEqual(mapContentUris("b", { type: "resource", resource: { uri: "demo://r/2", text: "t" } }), {
      type: "resource",
      resource: { uri: "airlock://b/demo://r/2", text: "t" },
    });
    assert.equal(mapContentUris("b", "not an object"), "not an object");
  });
});
