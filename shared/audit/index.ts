/** The audit log: records, the hash chain, NDJSON export, verification, redaction, segment seals. */
export * from "./digest.ts";
export * from "./record.ts";
export * from "./chain.ts";
export * from "./ndjson.ts";
export * from "./verify.ts";
export * from "./redact.ts";
export * from "./seal.ts";
export * from "./headers.ts";
