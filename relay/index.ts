/** Worker entry: the hub/relay app and its Durable Object classes. Wiring only. */
import { createWorkerApp } from "./app.ts";

export { TunnelHub } from "./hub/tunnel-hub.ts";
export { AuditLog } from "./audit/audit-log.ts";
export { TunnelRegistry } from "./admin/tunnel-registry.ts";

const app = createWorkerApp();

export default { fetch: app.fetch } satisfies ExportedHandler<Env>;
