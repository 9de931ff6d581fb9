/**
 * `airlock routes`: the effective routing table from a YAML config, offline and with the
 * real backends started and listed (server-memory and server-filesystem from npm).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main, type RouteView } from "../../agent/cli/routes.ts";
import type { CliIo } from "../../agent/cli/options.ts";
import { modernStdioCommand } from "../support/everything.ts";
import { filesystemCommand, memoryCommand } from "../support/routing.ts";

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "airlock-routes-cli-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: { PATH: process.env.PATH, ...env },
    cwd: dir,
    homeDir: dir,
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

function writeConfig(name: string, routes: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ config_version: 1, routes }, null, 2)); // JSON is YAML
  return path;
}

describe("airlock routes", () => {
  const routes = () => [
    {
      channel: "main",
      backends: [
        {
          name: "memory",
          command: memoryCommand(),
          env: { MEMORY_FILE_PATH: join(dir, "memory.jsonl") },
          max_concurrent_requests: 2,
        },
        {
          name: "files",
          command: filesystemCommand(dir),
          tools: { allow: ["read_*", "list_*"], deny: ["read_media*"] },
          timeout: "30s",
        },
      ],
    },
    {
      channel: "notes",
      backends: [{ name: "notes", url: "https://user:pw@notes.internal.example/mcp?token=env-secret" }],
    },
  ];

  test("--offline --json prints the table from the configuration alone, without credentials", async () => {
    const config = writeConfig("offline.yaml", routes());
    const { code, stdout, stderr } = await run(["--offline", "--json", "--config", config]);
    assert.equal(code, 0, stderr);
    const { channels } = JSON.parse(stdout) as { channels: RouteView[] };
    assert.deepEqual(
      channels.map((c) => [c.channel, c.mode, c.origin]),
      [
        ["main", "aggregate", "routes"],
        ["notes", "pass-through", "routes"],
      ],
    );
    const [memory, files] = channels[0]!.backends;
    assert.deepEqual(memory, {
      name: "memory",
      transport: "stdio",
      target: memoryCommand().join(" "),
      maxConcurrentRequests: 2,
    });
    assert.deepEqual(files!.tools, { allow: ["read_*", "list_*"], deny: ["read_media*"] });
    assert.equal(files!.timeoutMs, 30_000);
    assert.equal(channels[1]!.backends[0]!.target, "https://notes.internal.example/mcp");
    assert.doesNotMatch(stdout, /pw|token/);
  });

  test("online, it lists each backend's exposed tools under their aggregated names", async () => {
    const config = writeConfig("online.yaml", [routes()[0]]);
    const { code, stdout, stderr } = await run(["--json", "--config", config, "--timeout", "20s"]);
    assert.equal(code, 0, stderr + stdout);
    const [main] = (JSON.parse(stdout) as { channels: RouteView[] }).channels;
    const [memory, files] = main!.backends;
    assert.equal(memory!.state, "up");
    assert.ok(memory!.exposedTools!.includes("memory__read_graph"));
    assert.ok(memory!.exposedTools!.every((name) => name.startsWith("memory__")));
    assert.deepEqual(files!.exposedTools!.sort(), [
      "files__list_allowed_directories",
      "files__list_directory",
      "files__list_directory_with_sizes",
      "files__read_file",
      "files__read_multiple_files",
      "files__read_text_file",
    ]);

    const text = await run(["--config", config, "--timeout", "20s"]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^channel main {2}\(2 backends, aggregated/m);
    assert.match(text.stdout, /files +stdio .*\[allow read_\* list_\*; deny read_media\*; timeout 30s\]/);
    assert.match(text.stdout, /up · MCP 2025 · 6 tools/);
  });

  test("a backend that cannot be listed is shown with its reason and the exit status is 1", async () => {
    const config = writeConfig("down.yaml", [
      {
        channel: "main",
        backends: [
          { name: "memory", command: memoryCommand(), env: { MEMORY_FILE_PATH: join(dir, "memory2.jsonl") } },
          { name: "gone", command: [join(dir, "no-such-server")] },
        ],
      },
    ]);
    const { code, stdout } = await run(["--config", config]);
    assert.equal(code, 1);
    assert.match(stdout, /gone +stdio .*no-such-server\n +failed: could not start .*no-such-server: ENOENT/);
    assert.match(stdout, /memory__read_graph/);
  });

  test("a 2026-only server passes, alone and in an aggregate, and each backend's era is shown", async () => {
    const config = writeConfig("eras.yaml", [
      {
        channel: "main",
        backends: [
          { name: "memory", command: memoryCommand(), env: { MEMORY_FILE_PATH: join(dir, "memory3.jsonl") } },
          { name: "modern", command: modernStdioCommand(true) },
        ],
      },
      { channel: "new", backends: [{ name: "new", command: modernStdioCommand(true) }] },
    ]);
    const { code, stdout, stderr } = await run(["--json", "--config", config, "--timeout", "20s"]);
    assert.equal(code, 0, stderr + stdout);
    const [main, alone] = (JSON.parse(stdout) as { channels: RouteView[] }).channels;
    const [memory, modern] = main!.backends;
    assert.deepEqual([memory!.state, memory!.era], ["up", "legacy"]);
    assert.deepEqual([modern!.state, modern!.era], ["up", "modern"]);
    assert.ok(modern!.exposedTools!.includes("modern__echo"));
    assert.deepEqual([alone!.backends[0]!.era, alone!.backends[0]!.exposedTools?.includes("echo")], ["modern", true]);
    const text = await run(["--config", config, "--timeout", "20s"]);
    assert.match(text.stdout, /up · MCP 2026-07-28 · \d+ tools/);
    assert.match(text.stdout, /up · MCP 2025 · \d+ tools/);
  });

  test("configuration errors name the key path and exit 2", async () => {
    const config = writeConfig("bad.yaml", [
      {
        channel: "main",
        backends: [
          { name: "a", command: "x", tools: { deny: ["oops\\"] } },
          { name: "b", command: "y" },
        ],
      },
    ]);
    const { code, stderr } = await run(["--offline", "--config", config]);
    assert.equal(code, 2);
    assert.match(stderr, /routes\[0\]\.backends\[0\]\.tools\.deny\[0\]/);
    assert.equal((await run(["--timeout", "soon"])).code, 2);
  });
});
