/**
 * A loopback port nothing listens on: bound and released at once. For tests of something
 * that must start listening later (the startup wait) or must find nothing there.
 */
import { createServer } from "node:net";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
