/**
 * What `airlock demo` does through the hub, one step per line of its transcript. A step
 * gets the connected MCP SDK client and returns the one-line outcome to print; lines it
 * prints while running (progress) appear as they arrive. New steps (relay mode's blocked
 * call and audit check) are appended to {@link DEMO_STEPS}.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { AUDIT_HEAD_HEADER } from "../../shared/audit/headers.ts";
import { parseNdjson, verifyChain } from "../../shared/audit/index.ts";
import { POLICY_DENIED_CODE } from "../../shared/policy/index.ts";

export interface DemoContext {
  client: Client;
  /** The hub's MCP URL for this tunnel. */
  mcpUrl: URL;
  /** The tunnel's audit log export, and the auditor token it takes. */
  auditUrl: URL;
  auditorToken: string;
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
  {
    title: "tools/call get-env (the demo policy refuses it)",
    async run({ client }) {
      try {
        await client.callTool({ name: "get-env", arguments: {} });
      } catch (error) {
        if (error instanceof McpError && error.code === POLICY_DENIED_CODE)
          return `refused: ${quote(error.message.replace(/^MCP error -?\d+: /, ""), 96)}`;
        throw error;
      }
      throw new Error("get-env was not refused: the demo's policy should have blocked it");
    },
  },
  {
    title: "audit log: export the hash chain and verify it",
    async run({ auditUrl, auditorToken, detail }) {
      const response = await fetch(auditUrl, { headers: { Authorization: `Bearer ${auditorToken}` } });
      const text = await response.text();
      if (response.status !== 200)
        throw new Error(`the audit export answered HTTP ${response.status}: ${text.slice(0, 200)}`);
      const [seq, hash] = (response.headers.get(AUDIT_HEAD_HEADER) ?? "").split(" ");
      const result = await verifyChain(text, seq && hash ? { expectHead: { seq: Number(seq), hash } } : {});
      if (!result.ok) throw new Error(`the chain is broken at record #${result.index + 1}: ${result.reason}`);
      const parsed = parseNdjson(text);
      const refused = parsed.ok
        ? parsed.records.filter((record) => record.phase === "request" && record.decision === "deny").length
        : 0;
      // Signed-in callers (`--login`) are named in every record: show who, as the auditor sees it.
      const people = parsed.ok ? parsed.records.filter((record) => record.auth_method === "oauth") : [];
      const first = people[0];
      if (first)
        detail(
          `${people.length} records name the signed-in caller: subject ${first.subject}, ${first.display_name ?? "?"}, groups ${(first.groups ?? []).join(",")}, client ${first.client_id}`,
        );
      detail(`airlock audit verify ${auditUrl.href} --token env:AIRLOCK_AUDITOR_TOKEN does the same`);
      return `${result.count} records (${refused} refused), chain verified up to ${result.head.hash.slice(0, 16)}…`;
    },
  },
];
