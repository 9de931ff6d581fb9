/**
 * The SQLite API of SQLite-backed Durable Objects (`ctx.storage.sql`), declared by hand
 * for the same reason as relay/platform.ts: only what the audit log calls.
 */

export type SqlValue = ArrayBuffer | string | number | null;

export interface SqlCursor<T> extends Iterable<T> {
  toArray(): T[];
  one(): T;
  readonly rowsWritten: number;
}

export interface SqlStorage {
  exec<T extends Record<string, SqlValue> = Record<string, SqlValue>>(query: string, ...bindings: unknown[]): SqlCursor<T>;
}

/** The storage of a SQLite-backed Durable Object as the audit log uses it. */
export interface SqlDurableStorage {
  sql: SqlStorage;
  transactionSync<T>(callback: () => T): T;
}

/** The part of an R2 bucket binding the sealed-segment export uses. */
export interface ArchiveBucket {
  put(key: string, value: string, options?: { httpMetadata?: { contentType?: string }; customMetadata?: Record<string, string> }): Promise<unknown>;
  get(key: string): Promise<{ text(): Promise<string> } | null>;
  list(options?: { prefix?: string }): Promise<{ objects: Array<{ key: string }> }>;
}
