/**
 * The benchmarks' workload: server-everything's `echo` through the MCP SDK client, each answer
 * checked (a fast wrong answer must not count as a call).
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { connectClient } from "../../test/support/hub-stack.ts";

/** One `echo` call; throws unless the answer echoes `message`. */
export async function echo(client: Client, message: string): Promise<void> {
  const result = await client.callTool({ name: "echo", arguments: { message } });
  const text = (result.content as Array<{ text?: string }>)[0]?.text;
  if (text !== `Echo: ${message}`) throw new Error(`unexpected answer ${JSON.stringify(result)}`);
}

/** Calls per second: `total` calls over `concurrency` sessions, each calling until the shared count is spent. */
export async function echoThroughput(
  url: URL,
  options: { total: number; concurrency: number; token?: string | null },
): Promise<number> {
  const { total, concurrency } = options;
  const token = options.token === undefined ? {} : { token: options.token };
  const clients = await Promise.all(Array.from({ length: concurrency }, () => connectClient(url, token)));
  try {
    await Promise.all(clients.map(({ client }, i) => echo(client, `warm ${i}`)));
    let issued = 0;
    const started = performance.now();
    await Promise.all(
      clients.map(async ({ client }, c) => {
        while (issued < total) await echo(client, `c${c} ${issued++}`);
      }),
    );
    return total / ((performance.now() - started) / 1000);
  } finally {
    await Promise.all(clients.map(({ client }) => client.close()));
  }
}
