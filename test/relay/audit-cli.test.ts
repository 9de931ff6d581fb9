/**
 * `airlock audit verify` on a relay's live export and on files saved from it: a good
 * chain verifies; editing, deleting, inserting or reordering any record is caught and
 * the first bad record named. Also: sealed segments land in the R2 archive and verify
 * against their seals.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../agent/cli/audit.ts";
import type { CliIo } from "../../agent/cli/options.ts";
import { recordHash, verifySegment, type AuditRecord, type SegmentSeal } from "../../shared/audit/index.ts";
import { airlockCommand, REPO } from "../support/agent-process.ts";
import { AUDITOR_TOKEN, CapturingAgent, startRelayStack, type RelayStack } from "./support.ts";

let stack: RelayStack;
let dir: string;
let exportUrl: string;
let lines: string[];

async function run(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: CliIo = {
    stdout: (text) => {
      out += text;
    },
    stderr: (text) => {
      err += text;
    },
    env: { AUDITOR: AUDITOR_TOKEN, ...env },
    cwd: dir,
  };
  return { code: await main(argv, io), out, err };
}

function file(name: string, content: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, content.map((line) => `${line}\n`).join(""));
  return path;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-audit-"));
  stack = await startRelayStack({ auditArchive: true, auditSegmentRecords: 4 });
  // Traffic: allowed calls answered, a refusal, a list.
  const inputs = [
    {
      jsonrpc: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: "one" } } },
    },
    { jsonrpc: { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "get-env", arguments: {} } } },
    { jsonrpc: { jsonrpc: "2.0", id: 3, method: "tools/list" } },
    {
      jsonrpc: { jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "get-sum", arguments: { a: 1, b: 2 } } },
    },
  ];
  const queued = stack.cp.enqueue(...inputs);
  const received = CapturingAgent.commands(await stack.agent.poll());
  for (const command of received)
    await stack.agent.reply(command, command.jsonrpc?.method === "tools/list" ? { tools: [] } : { content: [] });
  await Promise.all(queued.map((command) => stack.cp.waitForFinal(command.request_id)));
  exportUrl = new URL(`v1/audit/${stack.cp.tunnelId}`, stack.relay.url).href;
  lines = (await (await stack.exportAudit()).text()).trim().split("\n");
});
after(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("airlock audit verify", () => {
  test("a live export verifies and ends at the head the relay stated; so does one after a seq", async () => {
    assert.equal(lines.length, 8);
    const live = await run(["verify", exportUrl, "--token", "env:AUDITOR"]);
    assert.equal(live.code, 0, live.out + live.err);
    assert.match(
      live.out,
      /^OK {2}http:\/\/127\.0\.0\.1:\d+\/v1\/audit\/tunnel_\w+\n {2}8 records verified, seq 1\.\.8; ends at the head the relay stated\n {2}head [0-9a-f]{64}\n$/,
    );
    const tail = await run(["verify", exportUrl, "--token", "env:AUDITOR", "--after", "5", "--json"]);
    assert.equal(tail.code, 0, tail.out);
    assert.deepEqual((JSON.parse(tail.out) as { result: { count: number } }).result.count, 3);
  });

  test("a saved file verifies; a file holding an ?after= export verifies with --after", async () => {
    assert.equal((await run(["verify", file("all.ndjson", lines)])).code, 0);
    const tail = await run(["verify", file("tail.ndjson", lines.slice(5)), "--after", "5"]);
    assert.equal(tail.code, 0, tail.out);
    const wrongStart = await run(["verify", file("tail2.ndjson", lines.slice(5)), "--after", "4"]);
    assert.equal(wrongStart.code, 1);
    assert.match(wrongStart.out, /record #1 \(seq 6\): expected seq 5, found 6/);
  });

  const records = () => lines.map((line) => JSON.parse(line) as AuditRecord);
  const tampered: Array<[string, () => Promise<string[]>, RegExp]> = [
    [
      "an edited record",
      async () => {
        const edited = records();
        edited[2]!.decision = edited[2]!.decision === "allow" ? "deny" : "allow";
        return edited.map((r) => JSON.stringify(r));
      },
      /record #3 \(seq 3\): hash does not match the record's content: the record was edited/,
    ],
    [
      "an edited record with its hash recomputed",
      async () => {
        const edited = records();
        edited[1]!.target = "echo";
        edited[1]!.hash = await recordHash(edited[1]!);
        return edited.map((r) => JSON.stringify(r));
      },
      /record #3 \(seq 3\): prev_hash does not match the hash of seq 2/,
    ],
    [
      "a deleted record",
      async () => lines.filter((_, i) => i !== 3),
      /record #4 \(seq 5\): expected seq 4, found 5: a record was deleted, inserted or reordered here/,
    ],
    [
      "two records swapped",
      async () => [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)],
      /record #2 \(seq 3\): expected seq 2, found 3/,
    ],
    [
      "a record inserted twice",
      async () => [...lines.slice(0, 4), lines[3]!, ...lines.slice(4)],
      /record #5 \(seq 4\): expected seq 5, found 4/,
    ],
    [
      "a duplicate key in a line",
      async () => [lines[0]!.replace('"decision":', '"decision":"deny","decision":'), ...lines.slice(1)],
      /record #1: malformed line: duplicate key "decision"/,
    ],
    ["the first record removed", async () => lines.slice(1), /record #1 \(seq 2\): expected seq 1, found 2/],
  ];
  for (const [what, make, expected] of tampered) {
    test(`detects ${what}, naming the first bad record (exit 1)`, async () => {
      const result = await run(["verify", file("tampered.ndjson", await make())]);
      assert.equal(result.code, 1, result.out);
      assert.match(result.out, /^BROKEN {2}/);
      assert.match(result.out, expected);
    });
  }

  test("a wrong token is exit 1 with the reason", async () => {
    const wrong = await run(["verify", exportUrl, "--token", "env:OTHER"], { OTHER: "not-the-token" });
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.err,
      /answered HTTP 401: Missing or invalid auditor token for this tunnel.*; pass the auditor token with --token env:NAME/,
    );
  });

  test("usage errors are exit 2 and say what to write", async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /usage: airlock audit verify/],
      [["check", "x"], /unknown subcommand "check"/],
      [["verify"], /name exactly one export/],
      [["verify", exportUrl, "--token", AUDITOR_TOKEN], /--token takes a reference, env:NAME or file:\/path/],
      [["verify", exportUrl, "--token", "env:MISSING_VAR"], /MISSING_VAR, which is not set/],
      [["verify", "nowhere.ndjson"], /nowhere\.ndjson is not a file/],
      [["verify", exportUrl, "--after", "two"], /--after two is not a record seq/],
    ];
    for (const [argv, expected] of cases) {
      const result = await run(argv);
      assert.equal(result.code, 2, argv.join(" "));
      assert.match(result.out + result.err, expected, argv.join(" "));
    }
  });

  test("the airlock binary runs it: exit 0 on the export, 1 on a broken file", () => {
    const good = file("good.ndjson", lines);
    const [cmd, ...argv] = airlockCommand("node", ["audit", "verify", good]);
    const ok = spawnSync(cmd!, argv, { cwd: REPO, encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stderr);
    const broken = file("broken.ndjson", [lines[1]!, lines[0]!]);
    const [cmd2, ...argv2] = airlockCommand("node", ["audit", "verify", broken]);
    const bad = spawnSync(cmd2!, argv2, { cwd: REPO, encoding: "utf8" });
    assert.equal(bad.status, 1);
    assert.match(bad.stdout, /record #1 \(seq 2\)/);
  });
});

describe("sealed segments", () => {
  test("every 4 records a segment and its seal land in R2; each verifies against its seal", async () => {
    // Sealing runs after the append that completes a segment; give it a moment.
    let keys: string[] = [];
    for (let i = 0; i < 50 && keys.length < 4; i++) {
      keys = (await stack.relay.archive!.keys()).sort();
      if (keys.length < 4) await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const tunnel = stack.cp.tunnelId;
    assert.deepEqual(keys, [
      `${tunnel}/000000000001-000000000004.ndjson`,
      `${tunnel}/000000000001-000000000004.seal.json`,
      `${tunnel}/000000000005-000000000008.ndjson`,
      `${tunnel}/000000000005-000000000008.seal.json`,
    ]);
    for (const base of [`${tunnel}/000000000001-000000000004`, `${tunnel}/000000000005-000000000008`]) {
      const segment = (await stack.relay.archive!.text(`${base}.ndjson`))!;
      const seal = JSON.parse((await stack.relay.archive!.text(`${base}.seal.json`))!) as SegmentSeal;
      assert.ok((await verifySegment(segment, seal)).ok);
      const cut = segment.trim().split("\n").slice(0, 3).join("\n");
      assert.equal((await verifySegment(cut, seal)).ok, false, "a segment cut short fails its seal");
    }
    const second = readFileSync(join(dir, "all.ndjson"), "utf8").trim().split("\n").slice(4).join("\n");
    assert.equal(second, (await stack.relay.archive!.text(`${tunnel}/000000000005-000000000008.ndjson`))!.trim());
  });
});
