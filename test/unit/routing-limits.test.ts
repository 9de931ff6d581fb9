/** The per-backend concurrency limit of aggregated channels. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSemaphore } from "../../agent/routing/limits.ts";

test("a semaphore grants up to its limit, then in arrival order as slots free up", async () => {
  const semaphore = createSemaphore(2);
  const signal = new AbortController().signal;
  const first = (await semaphore.acquire(signal))!;
  const second = (await semaphore.acquire(signal))!;
  const order: string[] = [];
  const third = semaphore.acquire(signal).then((release) => {
    order.push("third");
    return release;
  });
  const fourth = semaphore.acquire(signal).then((release) => {
    order.push("fourth");
    return release;
  });
  assert.equal(semaphore.active, 2);
  assert.equal(semaphore.waiting, 2);
  first();
  first(); // releasing twice frees one slot only
  const releaseThird = await third;
  assert.deepEqual(order, ["third"]);
  assert.equal(semaphore.active, 2);
  second();
  (await fourth)!();
  releaseThird!();
  assert.equal(semaphore.active, 0);
  assert.deepEqual(order, ["third", "fourth"]);
});

test("a waiter whose signal aborts gives up and holds nothing", async () => {
  const semaphore = createSemaphore(1);
  const held = (await semaphore.acquire(new AbortController().signal))!;
  const controller = new AbortController();
  const waiting = semaphore.acquire(controller.signal);
  controller.abort();
  assert.equal(await waiting, undefined);
  assert.equal(semaphore.waiting, 0);
  held();
  assert.equal(semaphore.active, 0);
  assert.equal(await semaphore.acquire(controller.signal), undefined, "an aborted signal never gets a slot");
});

test("without a limit nobody waits", async () => {
  const semaphore = createSemaphore();
  const signal = new AbortController().signal;
  const releases = await Promise.all(Array.from({ length: 100 }, () => semaphore.acquire(signal)));
  assert.equal(semaphore.active, 100);
  for (const release of releases) release!();
  assert.equal(semaphore.active, 0);
});
