/** The hub's marks for multi round-trip requests: what counts as a mark, expiry and the bound (fake clock). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoundTripAffinity } from "../../relay/hub/round-trip-affinity.ts";

const owner = { credential: "sha256:a" };
const paused = (n: number) => ({
  jsonrpc: "2.0" as const,
  id: n,
  result: { resultType: "input_required", inputRequests: {}, requestState: `airlock-mrtr-${n}` },
});
const retry = (n: number) => ({
  jsonrpc: "2.0" as const,
  id: 99,
  method: "tools/call",
  params: { name: "t", requestState: `airlock-mrtr-${n}` },
});

test("only input_required results and questions with the bridge's marks are learnt", () => {
  const marks = new RoundTripAffinity(() => 0);
  marks.learn(
    { jsonrpc: "2.0", id: 1, result: { resultType: "complete", requestState: "airlock-mrtr-1" } },
    "main",
    "a",
    owner,
  );
  marks.learn(
    { jsonrpc: "2.0", id: 1, result: { resultType: "input_required", requestState: "other-1" } },
    "main",
    "a",
    owner,
  );
  marks.learn({ jsonrpc: "2.0", id: "srv-1", method: "elicitation/create" }, "main", "a", owner);
  assert.equal(marks.size, 0);
  marks.learn(paused(1), "main", "a", owner);
  marks.learn({ jsonrpc: "2.0", id: "airlock-input-q", method: "elicitation/create" }, "main", "b", owner);
  assert.equal(marks.size, 2);
  assert.equal(marks.held(retry(1), "main")?.instanceId, "a");
  assert.equal(marks.held({ jsonrpc: "2.0", id: "airlock-input-q", result: {} }, "main")?.instanceId, "b");
  // A request with the question's id is not an answer to it.
  assert.equal(marks.held({ jsonrpc: "2.0", id: "airlock-input-q", method: "ping" }, "main"), undefined);
});

test("a mark expires after the wait and is renewed when learnt again; beyond the bound the oldest go", () => {
  let now = 0;
  const marks = new RoundTripAffinity(() => now, 1000, 2);
  marks.learn(paused(1), "main", "a", owner);
  now = 600;
  marks.learn(paused(2), "main", "a", owner);
  now = 900;
  marks.learn(paused(1), "main", "a", owner);
  now = 1700;
  assert.equal(marks.held(retry(2), "main"), undefined, "expired");
  assert.equal(marks.held(retry(1), "main")?.instanceId, "a", "renewed at 900");
  marks.learn(paused(3), "main", "b", owner);
  marks.learn(paused(4), "main", "b", owner);
  assert.equal(marks.size, 2);
  assert.equal(marks.held(retry(1), "main"), undefined, "evicted as the oldest");
  assert.equal(marks.held(retry(4), "main")?.instanceId, "b");
});
