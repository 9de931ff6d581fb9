/**
 * What `airlock demo` does through the hub, one step per line of its transcript. A step
 * gets the connected MCP SDK client and returns the one-line outcome to print; lines it
 * prints while running (progress) appear as they arrive. New steps (relay mode's blocked
 * call and audit check) are appended to {@link DEMO_STEPS}.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";

export interface DemoContext {
  client: Client;
  /** The hub's MCP URL for this tunnel. */
  mcpUrl: URL;
  /** Print a detail line under the running step (indented by the caller). */
  detail(line: string): void;
  /** Milliseconds since this step started. */
  elapsed(): number;
}

export interface DemoStep {
  /** What is being done, e.g. `tools/call echo`. */
  title: string;
  /** Does it; returns the outcome, e.g. `"Echo: hello"`. Throwing fails the demo. */
  run(context: DemoContext): Promise<string>;
}

/** The first text of a tool result. */
function firstText(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return content.find((item) => item.type === "text")?.text ?? JSON.stringify(result);
}

function quote(text: string, max = 72): string {
  const line = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(line.length > max ? `${line.slice(0, max - 1)}…` : line);
}

/** The demo's steps after `initialize`, in order. */
export const DEMO_STEPS: DemoStep[] = [
  {
    title: "tools/list",
    async run({ client }) {
      const { tools } = await client.listTools();
      const names = tools.map((tool) => tool.name);
      return `${tools.length} tools: ${names.slice(0, 5).join(", ")}${names.length > 5 ? ", …" : ""}`;
    },
  },
  {
    title: "tools/call echo",
    async run({ client }) {
      const result = await client.callTool({ name: "echo", arguments: { message: "hello through the Airlock hub" } });
      return quote(firstText(result));
    },
  },
  {
    title: "tools/call get-sum 2 + 3",
    async run({ client }) {
      const result = await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } });
      return quote(firstText(result));
    },
  },
  {
    title: "tools/call trigger-long-running-operation (1 s, 4 steps, streamed)",
    async run({ client, detail, elapsed }) {
      const result = await client.callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 4 } },
        undefined,
        { onprogress: (p) => detail(`progress ${p.progress}/${p.total ?? "?"}  at ${Math.round(elapsed())} ms`) },
      );
      return quote(firstText(result));
    },
  },
];
