// Local, uncommitted: RSS + heap snapshots of the agent after N calls.
import { everythingStdioCommand } from "../test/support/everything.ts";
import { connectClient, startHubAgent } from "../test/support/hub-stack.ts";
import { rssMiB, startHubProcess, TUNNEL } from "./faults/processes.ts";
import { readdirSync } from "node:fs";

const marks = (process.argv[2] ?? "300,4000,8000").split(",").map(Number);
const dir = process.argv[3] ?? "/tmp/i1/snap";
const hub = await startHubProcess();
const agent = await startHubAgent(hub.url, TUNNEL, ["--mcp.command", everythingStdioCommand().join(" ")], {
  env: { NODE_OPTIONS: "--expose-gc --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=" + dir },
});
const clients = [];
for (let i = 0; i < 8; i++) clients.push((await connectClient(hub.mcpUrl, { name: `leak-${i}` })).client);
let calls = 0;
for (const mark of marks) {
  await Promise.all(
    clients.map(async (client, c) => {
      while (calls < mark) {
        calls++;
        await client.callTool({ name: "echo", arguments: { message: `c${c}-${calls}` } });
      }
    }),
  );
  const before = readdirSync(dir).length;
  process.kill(agent.child.pid!, "SIGUSR2");
  while (readdirSync(dir).length === before) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 3000));
  console.log(`calls ${calls}: agent RSS ${rssMiB(agent.child.pid!).toFixed(1)} MiB`);
}
await Promise.all(clients.map((c) => c.close().catch(() => {})));
await agent.stop("SIGTERM");
await hub.stop();
