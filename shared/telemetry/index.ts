/** Tracing facts both sides share: W3C trace context in headers and `_meta`, span names and attributes. */
export * from "./trace-context.ts";
export * from "./spans.ts";
export * from "./span-api.ts";
export * from "./sampling.ts";
