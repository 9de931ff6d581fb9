/** The stdio backend; its parts live in `stdio/` (framing, child supervision, backend). */
export { createStdioBackend } from "./stdio/backend.ts";
export type { StdioBackendOptions } from "./stdio/backend.ts";
export { createStdioSessionBackend, EVICTION_GRACE_MS } from "./stdio/sessions.ts";
export type { StdioPoolSettings } from "./stdio/sessions.ts";
export type { RestartPolicy, SpawnFn } from "./stdio/child.ts";
