/**
 * How long sealing and verifying an audit chain takes. Run:
 *   node --import tsx bench/audit-chain.ts [records]      (also deno run -A / bun)
 */
import { createAuditChain, ndjsonStream, toNdjson, verifyChain, type AuditInput } from "../shared/audit/index.ts";

const count = Number(process.argv[2] ?? 10_000);

function fields(seq: number): AuditInput {
  return {
    time: new Date(Date.UTC(2025, 2, 1) + seq * 1000).toISOString(),
    tunnel: "tunnel_a",
    channel: "main",
    request_id: `req-${seq}`,
    phase: seq % 2 ? "request" : "outcome",
    method: "tools/call",
    target_kind: "tool",
    target: "echo",
    arguments: { message: "[REDACTED]", n: seq },
    arguments_digest: `sha256:${"ab".repeat(32)}`,
    decision: "allow",
    rule: "rules[1]",
    reason: 'rules[1] allows tools/call "echo"',
    agent_instance: "agent-1",
  };
}

const ms = (start: number) => `${(performance.now() - start).toFixed(0)} ms`;

let start = performance.now();
const chain = createAuditChain();
for (let seq = 1; seq <= count; seq++) await chain.append(fields(seq));
console.log(
  `append ${count} records: ${ms(start)} (${(((performance.now() - start) * 1000) / count).toFixed(1)} µs/record)`,
);

start = performance.now();
const text = toNdjson(chain.records());
console.log(`toNdjson: ${ms(start)}, ${(text.length / 1024 / 1024).toFixed(1)} MiB`);

start = performance.now();
const fromRecords = await verifyChain(chain.records());
console.log(`verify records: ${ms(start)} ${JSON.stringify({ ok: fromRecords.ok })}`);

start = performance.now();
const fromText = await verifyChain(text);
console.log(`verify NDJSON text: ${ms(start)} ${JSON.stringify({ ok: fromText.ok })}`);

start = performance.now();
const fromStream = await verifyChain(ndjsonStream(chain.records()));
console.log(`verify NDJSON stream: ${ms(start)} ${JSON.stringify({ ok: fromStream.ok })}`);
