/**
 * Types for the Workers runtime objects the relay touches (Durable Object state and
 * storage, bindings, the execution context). Declared here rather than pulled from
 * `@cloudflare/workers-types`, which would replace the DOM lib the rest of the repo uses.
 */

/** The synchronous KV API of SQLite-backed Durable Objects (`ctx.storage.kv`). */
export interface SyncKvStorage {
  get<T = unknown>(key: string): T | undefined;
  put(key: string, value: unknown): void;
  delete(key: string): boolean;
  list<T = unknown>(options?: { prefix?: string; start?: string; limit?: number }): Iterable<[string, T]>;
}

export interface DurableObjectStorage {
  kv: SyncKvStorage;
}

export interface DurableObjectId {
  toString(): string;
  readonly name?: string;
}

export interface DurableObjectState {
  readonly id: DurableObjectId;
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
  waitUntil(promise: Promise<unknown>): void;
}

/** A Durable Object namespace binding whose stubs expose the RPC surface `T`. */
export interface DurableObjectNamespace<T> {
  idFromName(name: string): DurableObjectId;
  get(id: DurableObjectId): T;
}

export interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
}
