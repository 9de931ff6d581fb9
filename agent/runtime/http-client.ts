/**
 * The `fetch` seam for outbound HTTP to MCP servers. Without a custom CA this is the
 * global `fetch`. With one, each runtime needs its own switch to trust an extra PEM
 * bundle, picked lazily so no runtime loads another's module:
 * Node → an undici 7 `Agent` as `dispatcher` (with undici's own `fetch`, because Node 20's
 * bundled undici does not accept a dispatcher from the npm package); Deno →
 * `Deno.createHttpClient({ caCerts })`; Bun → `fetch(url, { tls: { ca } })` (Bun replaces
 * the undici package with a stub).
 */
import { readFile } from "node:fs/promises";
import { RUNTIME } from "../version.ts";

/** The slice of `fetch` the backends use. */
export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface HttpClientOptions {
  /** Extra trusted CA certificates, PEM. */
  ca?: string;
  /** A file holding extra trusted CA certificates, PEM; read on first use. */
  caFile?: string;
}

/** A `fetch` bound to one trust configuration, and the means to release its connections. */
export interface HttpClient {
  fetch: FetchLike;
  /** Resolve once the CA bundle is loaded; rejects with an operator-readable error when it cannot be. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** Raised when the configured CA bundle cannot be used; names the file and what to do. */
export class CaBundleError extends Error {
  override name = "CaBundleError";
}

interface DenoHttpClient { close(): void }
interface DenoGlobal { createHttpClient(options: { caCerts: string[] }): DenoHttpClient }

/** Build the fetch for one backend. Nothing runtime-specific is loaded until the first call. */
export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  if (options.ca === undefined && options.caFile === undefined) {
    return { fetch: (input, init) => fetch(input, init), ready: async () => {}, close: async () => {} };
  }
  let closer: (() => Promise<void>) | undefined;
  let pending: Promise<FetchLike> | undefined;
  const init = (): Promise<FetchLike> => {
    pending ??= (async () => {
      const pem = await loadPem(options);
      const built = await customCaFetch(pem);
      closer = built.close;
      return built.fetch;
    })();
    return pending;
  };
  return {
    fetch: async (input, requestInit) => (await init())(input, requestInit),
    ready: async () => { await init(); },
    close: async () => { await closer?.(); },
  };
}

async function loadPem(options: HttpClientOptions): Promise<string> {
  let pem = options.ca;
  if (pem === undefined && options.caFile !== undefined) {
    try {
      pem = await readFile(options.caFile, "utf8");
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new CaBundleError(`custom CA bundle ${options.caFile} could not be read (${typeof code === "string" ? code : "read error"}); fix the path or remove the CA setting`);
    }
  }
  if (!pem || !pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new CaBundleError(`custom CA bundle ${options.caFile ?? "(inline)"} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"); supply a PEM file`);
  }
  return pem;
}

async function customCaFetch(pem: string): Promise<{ fetch: FetchLike; close: () => Promise<void> }> {
  const runtime = RUNTIME.name;
  if (runtime === "deno") {
    const deno = (globalThis as unknown as { Deno: DenoGlobal }).Deno;
    // Deno adds caCerts to its default roots.
    const client = deno.createHttpClient({ caCerts: [pem] });
    const denoFetch = fetch as (input: string | URL, init?: RequestInit & { client: DenoHttpClient }) => Promise<Response>;
    return {
      fetch: (input, init) => denoFetch(input, { ...init, client }),
      close: async () => client.close(),
    };
  }
  // Node and Bun replace the default roots with `ca`, so the public roots go along.
  const { rootCertificates } = await import("node:tls");
  const ca = [...rootCertificates, pem];
  if (runtime === "bun") {
    const bunFetch = fetch as (input: string | URL, init?: RequestInit & { tls: { ca: string[] } }) => Promise<Response>;
    return { fetch: (input, init) => bunFetch(input, { ...init, tls: { ca } }), close: async () => {} };
  }
  const undici = await import("undici");
  const dispatcher = new undici.Agent({ connect: { ca } });
  const undiciFetch = undici.fetch as unknown as (input: string | URL, init?: RequestInit & { dispatcher: unknown }) => Promise<Response>;
  return {
    fetch: (input, init) => undiciFetch(input, { ...init, dispatcher }),
    close: () => dispatcher.close(),
  };
}
