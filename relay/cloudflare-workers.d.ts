/**
 * The small part of the Workers runtime API the relay uses, declared by hand so the
 * repo type-checks without `@cloudflare/workers-types` (which is not installed and
 * would clash with the DOM lib the agent needs). Only what Airlock calls is here.
 */
declare module "cloudflare:workers" {
  /** Base class of RPC-capable Durable Objects: public methods become callable on stubs. */
  export abstract class DurableObject<Env = unknown> {
    protected readonly ctx: import("./platform.ts").DurableObjectState;
    protected readonly env: Env;
    constructor(ctx: import("./platform.ts").DurableObjectState, env: Env);
  }
}
