import { test } from "node:test";
import assert from "node:assert/strict";
import { linkSignals } from "../../agent/runtime/signals.ts";

test("a linked signal aborts with its input, and after dispose an input no longer reaches it", () => {
  const long = new AbortController();
  const first = linkSignals([long.signal]);
  first.dispose();
  const second = linkSignals([long.signal]);
  long.abort(new Error("stop"));
  assert.equal(first.signal.aborted, false, "disposed: its listener is gone");
  assert.equal(second.signal.aborted, true);
  assert.equal((second.signal.reason as Error).message, "stop");
  assert.equal(second.timedOut, false);
  second.dispose();
});

test("the deadline aborts with a TimeoutError and says so; an aborted input aborts at once", async () => {
  const linked = linkSignals([undefined], 20);
  await new Promise((resolve) => linked.signal.addEventListener("abort", resolve, { once: true }));
  assert.equal(linked.timedOut, true);
  assert.equal((linked.signal.reason as DOMException).name, "TimeoutError");
  linked.dispose();
  const done = new AbortController();
  done.abort("already");
  const immediate = linkSignals([done.signal], 10_000);
  assert.equal(immediate.signal.aborted, true);
  assert.equal(immediate.timedOut, false);
  immediate.dispose();
});

test("stopDeadline cancels the timer only: the deadline no longer fires, an input still aborts", async () => {
  const input = new AbortController();
  const linked = linkSignals([input.signal], 1);
  linked.stopDeadline();
  // Well past the 1 ms deadline: had the timer survived it would have aborted by now.
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(linked.signal.aborted, false);
  assert.equal(linked.timedOut, false);
  input.abort(new Error("client gone"));
  assert.equal(linked.signal.aborted, true);
  assert.equal((linked.signal.reason as Error).message, "client gone");
  linked.dispose();
});
