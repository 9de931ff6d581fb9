/** Client sessions of aggregated channels: expiry, eviction, notification carriers and server-request ids. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  addCarrier,
  createSessionStore,
  deliverToSession,
  MAX_BUFFERED_NOTIFICATIONS,
} from "../../agent/routing/sessions.ts";
import { silentLogger } from "../../shared/log.ts";
import { exchangeOf } from "../support/everything.ts";

function clock(start = 0) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe("session store", () => {
  test("sessions get random ids and one slot per backend", () => {
    const store = createSessionStore({ now: () => 0 });
    const a = store.create({ clientInfo: { name: "x" } }, ["one", "two"], "2025-06-18");
    const b = store.create({}, ["one"], "2025-06-18");
    assert.notEqual(a.id, b.id);
    assert.match(a.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual([...a.members.keys()], ["one", "two"]);
    assert.deepEqual(a.members.get("one"), { state: "new" });
    assert.equal(store.get(a.id), a);
    assert.equal(store.delete(a.id), a);
    assert.equal(store.get(a.id), undefined);
  });

  test("idle sessions are swept, used ones stay", () => {
    const time = clock();
    const store = createSessionStore({ now: time.now, idleMs: 1000 });
    const old = store.create({}, [], "v");
    const used = store.create({}, [], "v");
    time.advance(600);
    store.get(used.id);
    time.advance(600);
    assert.deepEqual(
      store.sweep().map((s) => s.id),
      [old.id],
    );
    assert.deepEqual(
      store.all().map((s) => s.id),
      [used.id],
    );
  });

  test("beyond the limit the least recently used session goes first, unless a request of it is in flight", () => {
    const store = createSessionStore({ now: () => 0, maxSessions: 2 });
    const [a, b] = [store.create({}, [], "v"), store.create({}, [], "v")];
    store.get(a.id);
    assert.deepEqual(
      store.sweep().map((s) => s.id),
      [b.id],
      "room is made for the next session",
    );
    b.carriers.add(exchangeOf({}));
    const c = store.create({}, [], "v");
    store.get(a.id);
    assert.deepEqual(
      store.sweep().map((s) => s.id),
      [c.id],
      "a is recently used; c is next in line",
    );
  });
});

describe("notification delivery", () => {
  test("a notification goes through the preferred carrier, else the newest, else it waits for the next request", () => {
    const store = createSessionStore({ now: () => 0 });
    const session = store.create({}, [], "v");
    const note = (n: number) => ({ jsonrpc: "2.0", method: "notifications/tools/list_changed", params: { n } });
    deliverToSession(session, note(1), silentLogger);
    deliverToSession(session, note(2), silentLogger);
    assert.equal(session.buffered.length, 2);

    const first = exchangeOf({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    addCarrier(session, first, silentLogger);
    assert.deepEqual(first.notified, [note(1), note(2)], "buffered ones are flushed in order");
    const second = exchangeOf({ jsonrpc: "2.0", id: 2, method: "tools/list" });
    addCarrier(session, second, silentLogger);
    deliverToSession(session, note(3), silentLogger);
    deliverToSession(session, note(4), silentLogger, first);
    deliverToSession(session, note(5), silentLogger, exchangeOf({}));
    assert.deepEqual(second.notified, [note(3), note(5)]);
    assert.deepEqual(first.notified.slice(2), [note(4)]);
  });

  test("the buffer keeps only the newest notifications", () => {
    const session = createSessionStore({ now: () => 0 }).create({}, [], "v");
    for (let n = 0; n < MAX_BUFFERED_NOTIFICATIONS + 10; n++)
      deliverToSession(session, { jsonrpc: "2.0", method: "m", params: { n } }, silentLogger);
    assert.equal(session.buffered.length, MAX_BUFFERED_NOTIFICATIONS);
    assert.deepEqual(session.buffered[0]!.params, { n: 10 });
  });
});

describe("server→client request ids", () => {
  test("each session aliases its backends' requests itself; the internal ids of calls come from the channel's one source", () => {
    let last = 100;
    const store = createSessionStore({ now: () => 0, ids: () => ++last });
    const one = store.create({}, [], "v");
    const two = store.create({}, [], "v");
    const a = one.mux.aliasServerRequest("one", { jsonrpc: "2.0", id: 0, method: "roots/list" });
    const b = one.mux.aliasServerRequest("two", { jsonrpc: "2.0", id: 0, method: "roots/list" });
    assert.notEqual(a.id, b.id);
    assert.equal(
      two.mux.serverAnswer({ jsonrpc: "2.0", id: a.id, result: {} }),
      undefined,
      "another session's alias leads nowhere",
    );
    assert.deepEqual(one.mux.serverAnswer({ jsonrpc: "2.0", id: b.id, result: {} }), {
      server: "two",
      message: { jsonrpc: "2.0", id: 0, result: {} },
    });
    const first = one.mux.send({ jsonrpc: "2.0", id: 1, method: "ping" }, { member: "one" }, 1);
    const second = two.mux.send({ jsonrpc: "2.0", id: 1, method: "ping" }, { member: "one" }, 1);
    assert.deepEqual([first.message.id, second.message.id], [101, 102]);
  });
});
