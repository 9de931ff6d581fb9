/**
 * A CPU profile of the hub's Worker and Durable Objects (the `airlock-hub` isolate in workerd)
 * while sequential `echo` calls go through the local hub to a Node agent with server-everything
 * on stdio. workerd's own process is opaque to `--cpu-prof`; this asks Miniflare for an
 * inspector port (AIRLOCK_HUB_INSPECTOR_PORT, loopback) and drives V8's profiler over it.
 *
 *   node --import tsx bench/workerd-profile.ts [calls=500] [out=workerd.cpuprofile]
 *
 * Open the file in Chrome DevTools (Performance → Load profile) or any `.cpuprofile` viewer.
 * Sampled wall time inside the isolate: on a loaded machine it includes time the isolate waited
 * for a CPU, so read it for shares, not for milliseconds (bench/hops.ts has the CPU per call).
 */
import { writeFileSync } from "node:fs";
import { WebSocket } from "undici";
import { everythingStdioCommand } from "../test/support/everything.ts";
import { startTestHub } from "../test/support/hub.ts";
import { connectClient, startHubAgent } from "../test/support/hub-stack.ts";
import { freePort } from "../test/support/ports.ts";

const calls = Number(process.argv[2] ?? 500);
const out = process.argv[3] ?? "workerd.cpuprofile";

process.env.AIRLOCK_HUB_INSPECTOR_PORT = String(await freePort());
const hub = await startTestHub({ tunnels: 1, settings: { livenessMs: 10_000 } });
const tunnel = hub.tunnel();
const agent = await startHubAgent(hub.url, tunnel, ["--mcp.command", everythingStdioCommand().join(" ")]);
try {
  const { client } = await connectClient(hub.mcpUrl(tunnel));
  const echo = (i: number) => client.callTool({ name: "echo", arguments: { message: `m${i}` } });
  for (let i = 0; i < 50; i++) await echo(i);
  const targets = (await (
    await fetch(`http://127.0.0.1:${process.env.AIRLOCK_HUB_INSPECTOR_PORT}/json`)
  ).json()) as Array<{ title: string; webSocketDebuggerUrl: string }>;
  const target = targets.find((t) => t.title.includes("airlock-hub"));
  if (!target) throw new Error(`no airlock-hub isolate among ${targets.map((t) => t.title).join(", ")}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve);
    socket.addEventListener("error", reject);
  });
  let next = 0;
  const answers = new Map<number, (result: unknown) => void>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) answers.get(message.id)?.(message.result);
  });
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      const id = ++next;
      answers.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  for (let i = 0; i < calls; i++) await echo(i);
  const { profile } = (await send("Profiler.stop")) as { profile: unknown };
  writeFileSync(out, JSON.stringify(profile));
  console.log(`${calls} calls profiled: ${out}`);
  socket.close();
  await client.close();
} finally {
  await agent.stop("SIGTERM");
  await hub.close();
}
