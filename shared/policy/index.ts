/** The policy language: parse, evaluate requests and responses, filter lists, pin tool definitions. See docs/policy.md. */
export * from "./schema.ts";
export * from "./parse.ts";
export * from "./evaluate.ts";
export * from "./response.ts";
export * from "./filter.ts";
export * from "./pinning.ts";
export * from "./json.ts";
export * from "./glob.ts";
export * from "./normalize.ts";
export * from "./pattern.ts";
export * from "./decode.ts";
export * from "./arguments.ts";
export * from "./enforce.ts";
export * from "./identity.ts";
export * from "./rate-limit.ts";
