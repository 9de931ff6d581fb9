/**
 * Tool pins on Durable Object storage: the tunnel's `AuditLog` object keeps them in its
 * SQLite database, so the first definition seen survives restarts and every Worker
 * isolate sees the same pins.
 */
import type { PinStore, ToolPin } from "../../shared/policy/index.ts";
import type { SqlStorage } from "../audit/sql.ts";

/** Create the table (idempotent). */
export function createPinTable(sql: SqlStorage): void {
  sql.exec(
    "CREATE TABLE IF NOT EXISTS pins (tunnel TEXT NOT NULL, channel TEXT NOT NULL, name TEXT NOT NULL, pin TEXT NOT NULL, PRIMARY KEY (tunnel, channel, name))",
  );
}

/** A {@link PinStore} over SQLite; `list()` shows every pin (for auditors). */
export function sqlPinStore(sql: SqlStorage): PinStore & { list(): ToolPin[] } {
  return {
    get(tunnel, channel, name) {
      const row = sql
        .exec<{ pin: string }>(
          "SELECT pin FROM pins WHERE tunnel = ? AND channel = ? AND name = ?",
          tunnel,
          channel,
          name,
        )
        .toArray()[0];
      return row ? (JSON.parse(row.pin) as ToolPin) : undefined;
    },
    put(pin) {
      sql.exec(
        "INSERT OR REPLACE INTO pins (tunnel, channel, name, pin) VALUES (?, ?, ?, ?)",
        pin.tunnel,
        pin.channel,
        pin.name,
        JSON.stringify(pin),
      );
    },
    list() {
      return sql
        .exec<{ pin: string }>("SELECT pin FROM pins ORDER BY tunnel, channel, name")
        .toArray()
        .map((row) => JSON.parse(row.pin) as ToolPin);
    },
  };
}
