/**
 * The YAML parser as `loadConfig` uses it, in a module of its own so that it can be imported
 * lazily: a run configured by flags and environment alone never loads it. (A dynamic
 * `import("yaml")` of the CommonJS package itself has no named exports in the esbuild bundle.)
 */
export { parseAllDocuments } from "yaml";
