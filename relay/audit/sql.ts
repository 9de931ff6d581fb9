/**
 * The part of a SQLite-backed Durable Object's storage (`ctx.storage.sql`) the audit
 * log calls: the seam that lets tests run the audit service over `node:sqlite`. The
 * Workers runtime types (worker-configuration.d.ts) describe the full API; this subset
 * is checked against them where the `AuditLog` object passes its storage in.
 */

export type SqlValue = ArrayBuffer | string | number | null;

export interface SqlCursor<T> extends Iterable<T> {
  toArray(): T[];
  one(): T;
  readonly rowsWritten: number;
}

export interface SqlStorage {
  exec<T extends Record<string, SqlValue> = Record<string, SqlValue>>(
    query: string,
    ...bindings: unknown[]
  ): SqlCursor<T>;
}

/** The storage of a SQLite-backed Durable Object as the audit log uses it. */
export interface SqlDurableStorage {
  sql: SqlStorage;
  transactionSync<T>(callback: () => T): T;
}

/** The part of an R2 bucket binding the sealed-segment export uses. */
export interface ArchiveBucket {
  put(
    key: string,
    value: string,
    options?: { httpMetadata?: { contentType?: string }; customMetadata?: Record<string, string> },
  ): Promise<unknown>;
  get(key: string): Promise<{ text(): Promise<string> } | null>;
  list(options?: { prefix?: string }): Promise<{ objects: Array<{ key: string }> }>;
}
