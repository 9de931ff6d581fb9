/** Worker entry: the hub app and its Durable Object class. Wiring only. */
import { createRelayApp } from "./app.ts";

export { TunnelHub } from "./hub/tunnel-hub.ts";

const app = createRelayApp();

export default { fetch: app.fetch };
