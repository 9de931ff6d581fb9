/** Loopback ports for tests and benches that must name a port before something listens on it. */
import { createServer } from "node:net";

/**
 * A port the kernel just handed out on 127.0.0.1 and that is free again: for a program that
 * takes a port but does not report the one it got, or for a port nothing listens on.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
