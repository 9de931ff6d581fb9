import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../../agent/config/errors.ts";
import { loadConfig, type LoadOptions } from "../../agent/config/load.ts";

const TUNNEL = "tunnel_0123456789abcdef0123456789abcdef";
const OTHER_TUNNEL = "tunnel_ffffffffffffffffffffffffffffffff";
const KEY = "sk-test-runtime-key-0001";
const FIXTURES = fileURLToPath(new URL("../fixtures/profiles/", import.meta.url));

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-config-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Minimal environment for a valid run: key, tunnel id and a main MCP command. */
const BASE_ENV = { CONTROL_PLANE_API_KEY: KEY, CONTROL_PLANE_TUNNEL_ID: TUNNEL, MCP_COMMAND: "npx -y server" };

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
  return path;
}

function load(argv: string[], env: Record<string, string> = {}, extra: Partial<LoadOptions> = {}) {
  return loadConfig({ argv, env: { HOME: dir, ...env }, cwd: dir, ...extra });
}

async function loadError(
  argv: string[],
  env: Record<string, string> = {},
  extra: Partial<LoadOptions> = {},
): Promise<ConfigError> {
  try {
    await load(argv, env, extra);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail("the configuration loaded, but an error was expected");
}

describe("precedence: flags > environment > YAML > defaults", () => {
  test("each key takes the highest layer that sets it, and sources say which", async () => {
    const file = await write(
      "precedence.yaml",
      [
        "control_plane:",
        `  tunnel_id: ${OTHER_TUNNEL}`,
        "  max_inflight_requests: 7",
        "  poll_timeout: 10s",
        "log:",
        "  level: warn",
        "health:",
        "  listen_addr: 127.0.0.1:9000",
        "",
      ].join("\n"),
    );
    const { config, sources } = await load(
      ["--config", file, "--control-plane.tunnel-id", TUNNEL, "--health.listen-addr=127.0.0.1:0"],
      {
        ...BASE_ENV,
        CONTROL_PLANE_TUNNEL_ID: "tunnel_not_used",
        CONTROL_PLANE_MAX_INFLIGHT_REQUESTS: "8",
        HEALTH_LISTEN_ADDR: "127.0.0.1:1",
      },
    );
    assert.equal(config.controlPlane.tunnelId, TUNNEL);
    assert.deepEqual(sources["control_plane.tunnel_id"], { layer: "flag", name: "--control-plane.tunnel-id" });
    assert.equal(config.health.listenAddr, "127.0.0.1:0");
    assert.equal(config.controlPlane.maxInflight, 8);
    assert.deepEqual(sources["control_plane.max_inflight_requests"], {
      layer: "env",
      name: "CONTROL_PLANE_MAX_INFLIGHT_REQUESTS",
    });
    assert.equal(config.log.level, "warn");
    assert.equal(config.controlPlane.pollTimeoutMs, 10_000);
    assert.deepEqual(sources["control_plane.poll_timeout"], { layer: "file", name: file });
    assert.equal(config.controlPlane.pollDeadlineGuardrailMs, 5_000);
    assert.deepEqual(sources["control_plane.poll_deadline_guardrail"], { layer: "default" });
    assert.equal(config.mcp.maxConcurrentRequests, 10);
    assert.equal(config.controlPlane.baseUrl, "https://api.openai.com");
  });

  test("removing a layer exposes the next one", async () => {
    const file = await write("layers.yaml", "log:\n  level: error\n");
    assert.equal(
      (await load(["--config", file, "--log.level", "debug"], { ...BASE_ENV, LOG_LEVEL: "warn" })).config.log.level,
      "debug",
    );
    assert.equal((await load(["--config", file], { ...BASE_ENV, LOG_LEVEL: "warn" })).config.log.level, "warn");
    assert.equal((await load(["--config", file], BASE_ENV)).config.log.level, "error");
    assert.equal((await load([], BASE_ENV)).config.log.level, "info");
  });

  test("stdio process-model settings reach the backend from routes[].backends[] and mcp.commands[]", async () => {
    const file = await write(
      "process-model.yaml",
      [
        "mcp:",
        "  commands:",
        "    - { channel: main, command: node stateless.js, share: true }",
        "routes:",
        "  - channel: notes",
        "    backends:",
        "      - { name: notes, command: node notes.js, max_sessions: 8, idle_timeout: 2m, pool_size: 2 }",
        "",
      ].join("\n"),
    );
    const { config } = await load(["--config", file], { CONTROL_PLANE_API_KEY: KEY, CONTROL_PLANE_TUNNEL_ID: TUNNEL });
    const backends = Object.fromEntries(config.routes.map((r) => [r.channel, r.backends[0]]));
    assert.deepEqual(backends.main, {
      name: "main",
      transport: "stdio",
      command: ["node", "stateless.js"],
      env: {},
      share: true,
    });
    assert.deepEqual(backends.notes, {
      name: "notes",
      transport: "stdio",
      command: ["node", "notes.js"],
      env: {},
      maxSessions: 8,
      idleTimeoutMs: 120_000,
      poolSize: 2,
    });
  });

  test("a flag replaces the same list from the file, other lists stay", async () => {
    const file = await write(
      "lists.yaml",
      [
        "mcp:",
        "  server_urls:",
        "    - { channel: docs, url: http://127.0.0.1:3001/mcp }",
        "  commands:",
        "    - { channel: main, command: python old.py }",
        "",
      ].join("\n"),
    );
    const { config } = await load(["--config", file, "--mcp.command", "node new.js"], {
      CONTROL_PLANE_API_KEY: KEY,
      CONTROL_PLANE_TUNNEL_ID: TUNNEL,
    });
    assert.deepEqual(
      config.routes.map((r) => [r.channel, r.origin]),
      [
        ["docs", "mcp.server_urls"],
        ["main", "mcp.commands"],
      ],
    );
    assert.deepEqual(config.routes[1]?.backends[0], {
      name: "main",
      transport: "stdio",
      command: ["node", "new.js"],
      env: {},
    });
  });

  test("API key: CONTROL_PLANE_API_KEY, then the file, then OPENAI_API_KEY", async () => {
    const file = await write("key.yaml", "control_plane:\n  api_key: sk-from-file-0001\n");
    const env = { CONTROL_PLANE_TUNNEL_ID: TUNNEL, MCP_COMMAND: "x", OPENAI_API_KEY: "sk-openai-0001" };
    assert.equal(
      (await load(["--config", file], { ...env, CONTROL_PLANE_API_KEY: KEY })).config.controlPlane.apiKey,
      KEY,
    );
    assert.equal((await load(["--config", file], env)).config.controlPlane.apiKey, "sk-from-file-0001");
    const fallback = await load([], env);
    assert.equal(fallback.config.controlPlane.apiKey, "sk-openai-0001");
    assert.deepEqual(fallback.sources["control_plane.api_key"], { layer: "env", name: "OPENAI_API_KEY" });
    assert.ok(fallback.secrets.includes("sk-openai-0001"));
  });
});

describe("logging defaults", () => {
  test("unset format is tunnel-client's default layout; json and struct-text as asked; a log file implies struct-text", async () => {
    assert.equal((await load([], BASE_ENV)).config.log.format, "default");
    assert.equal((await load(["--log.format", "json"], BASE_ENV)).config.log.format, "json");
    assert.equal((await load(["--log.file", "/tmp/x.log"], BASE_ENV)).config.log.format, "text");
    assert.equal(
      (await load(["--log.file", "/tmp/x.log", "--log.format", "json"], BASE_ENV)).config.log.format,
      "json",
    );
    assert.equal((await load(["--log.format", "struct-text"], BASE_ENV)).config.log.format, "text");
    assert.equal((await load([], { ...BASE_ENV, LOG_FORMAT: "text" })).config.log.format, "text");
  });
});

describe("tunnel-client profiles load unchanged", () => {
  test("the sample_mcp_with_dcr profile, via --profile-file", async () => {
    const { config, warnings } = await load(["--profile-file", join(FIXTURES, "sample_mcp_with_dcr.yaml")], {
      CONTROL_PLANE_API_KEY: KEY,
    });
    assert.equal(config.controlPlane.tunnelId, TUNNEL);
    assert.equal(config.controlPlane.apiKey, KEY);
    assert.equal(config.health.listenAddr, "127.0.0.1:8080");
    assert.equal(config.log.format, "json");
    assert.deepEqual(config.routes, [
      {
        channel: "main",
        origin: "mcp.server_urls",
        backends: [{ name: "main", transport: "http", url: "http://127.0.0.1:3001/mcp", headers: {} }],
      },
    ]);
    assert.deepEqual(config.file, {
      path: join(FIXTURES, "sample_mcp_with_dcr.yaml"),
      kind: "profile-file",
      profileName: "sample_mcp_with_dcr",
    });
    assert.deepEqual(warnings, []);
  });

  test("the full example from tunnel-client's configuration reference", async () => {
    const mounted: Record<string, string> = { "/run/secrets/mcp-discovery-header": "discovery-secret-0001\n" };
    const { config, secrets, warnings } = await load(
      ["--config", join(FIXTURES, "tunnel-client-reference.yaml")],
      {
        CONTROL_PLANE_API_KEY: KEY,
        CONTROL_PLANE_HEADER_VALUE: "cp-header-secret",
        MCP_RUNTIME_HEADER_VALUE: "mcp-header-secret",
        MCP_UNIX_SOCKET_PATH: "/run/mcp.sock",
      },
      { readFile: async (path) => mounted[path] ?? readFile(path, "utf8") },
    );
    // With a client certificate and the default host, tunnel-client switches to the mTLS host.
    assert.equal(config.controlPlane.baseUrl, "https://mtls.api.openai.com");
    assert.equal(config.controlPlane.urlPath, "/chatgpttunnelgateway/dev/us");
    assert.equal(config.controlPlane.clientCert, "/run/secrets/control-plane-client.crt");
    assert.deepEqual(config.controlPlane.extraHeaders, { "X-Debug-Mode": "1", "X-Internal-Auth": "cp-header-secret" });
    assert.equal(config.mcp.startupWaitTimeoutMs, 60_000);
    assert.equal(config.mcp.connectionMaxTtlMs, 600_000);
    assert.deepEqual(config.mcp.discoveryExtraHeaders, { "X-Discovery-Auth": "discovery-secret-0001" });
    assert.deepEqual(
      config.routes.map((r) => r.channel),
      ["main", "tools"],
    );
    assert.deepEqual(config.routes[0]?.backends[0], {
      name: "main",
      transport: "http",
      url: "https://mcp.example.com/mcp",
      headers: { "X-Internal-Auth": "mcp-header-secret" },
      unixSocket: "/run/mcp.sock",
    });
    assert.deepEqual(config.routes[1]?.backends[0], {
      name: "tools",
      transport: "stdio",
      command: ["python", "-m", "tools_mcp"],
      env: {},
    });
    assert.deepEqual(config.harpoon.targets, [
      { label: "auth", url: "https://auth.example.com", description: "Auth server" },
    ]);
    assert.equal(config.health.urlFile, "/run/tunnel-client/health-url");
    assert.equal(config.process.pidFile, "/run/tunnel-client/tunnel-client.pid");
    assert.deepEqual(
      new Set(secrets),
      new Set([KEY, "cp-header-secret", "mcp-header-secret", "discovery-secret-0001"]),
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /cloudflared/);
  });

  test("tunnel-client's every-reference profile loads, warning about what Airlock ignores; strict_config refuses it", async () => {
    const files = join(dir, "all-references");
    const text = (await readFile(join(FIXTURES, "tunnel-client-all-references.yaml"), "utf8")).replaceAll(
      "FILE_DIR",
      files,
    );
    const profile = await write("all-references/profile.yaml", text);
    await write("all-references/control-header", "control-header-secret\n");
    await write("all-references/listen-addr", "127.0.0.1:9090\n");
    await write("all-references/health-socket", "/tmp/ref-health.sock\n");
    await write("all-references/tools-command", "python -m tools\n");
    await write("all-references/discovery-header", "discovery-secret\n");
    await write("all-references/harpoon-url", "https://auth.example\n");
    const env = {
      REF_BASE_URL: "https://control.example",
      REF_URL_PATH: "/gateway/dev/us",
      REF_API_KEY: "reference-api-key",
      REF_MCP_URL: "https://mcp.example/mcp",
      REF_MCP_HEADER: "mcp-header-secret",
      REF_HARPOON_SOCKET: "/tmp/ref-harpoon.sock",
    };
    const { config, warnings } = await load(["--config", profile], env);
    assert.equal(config.controlPlane.baseUrl, "https://control.example");
    assert.equal(config.controlPlane.urlPath, "/gateway/dev/us");
    assert.equal(config.controlPlane.apiKey, "reference-api-key");
    assert.equal(config.controlPlane.organizationId, "org-reference");
    assert.equal(config.controlPlane.maxInflight, 17);
    assert.deepEqual(config.controlPlane.extraHeaders, {
      "X-Debug-Mode": "reference",
      "X-Control-Auth": "control-header-secret",
    });
    assert.equal(config.health.listenAddr, "127.0.0.1:9090");
    assert.equal(config.health.unixSocket, "/tmp/ref-health.sock");
    assert.deepEqual(config.mcp.discoveryExtraHeaders, { "X-Discovery-Auth": "discovery-secret" });
    assert.deepEqual(
      config.routes.map((r) => [r.channel, r.backends[0]!.transport]),
      [
        ["main", "http"],
        ["tools", "stdio"],
      ],
    );
    assert.deepEqual(config.harpoon.targets, [
      { label: "auth", url: "https://auth.example", description: "Auth server", unixSocket: "/tmp/ref-harpoon.sock" },
    ]);
    assert.equal(config.log.httpRawUnsafe, true, "read, and ignored: nothing logs raw HTTP");
    // OAuth discovery's settings take effect now; only raw HTTP logging is still refused.
    assert.deepEqual(
      warnings.map((w) => w.split(" is ignored: ")[0]!.replace(/ \(from .*\)$/, "")),
      ["log.http_raw_unsafe"],
    );
    assert.match(warnings.at(-1)!, /Airlock never logs raw HTTP/);
    assert.deepEqual(config.mcp.oauthTrustedOrigins, ["https://auth.example.com"]);
    assert.deepEqual(
      [
        config.harpoon.hostsIncludeSuffix,
        config.harpoon.hostsIncludeRegex,
        config.harpoon.hostsIncludeLoopback,
        config.harpoon.hostsIncludePrivate,
      ],
      [[".corp.example"], ["^mcp-[0-9]+\\.internal$"], false, true],
    );
    const strict = await loadError(["--config", profile, "--strict-config"], env);
    assert.match(strict.message, /log\.http_raw_unsafe.*is not supported by Airlock/);
  });

  test("a stdio profile with a file: key, url_path, struct-text logs and a quoted command", async () => {
    await write("runtime-key.txt", `${KEY}\n`);
    const { config } = await load(["--profile-file", join(FIXTURES, "sample_mcp_stdio_local.yaml")]);
    assert.equal(config.controlPlane.apiKey, KEY);
    assert.equal(config.controlPlane.urlPath, "/chatgpttunnelgateway/dev/us");
    assert.equal(config.log.level, "debug");
    assert.equal(config.log.format, "text");
    assert.equal(config.health.urlFile, join(dir, "health.url"));
    assert.equal(config.mcp.stdioSendInitializedNotification, true);
    assert.deepEqual(config.routes[0]?.backends[0], {
      name: "main",
      transport: "stdio",
      command: ["python", "/path/to/server.py", "--name", "my server"],
      env: {},
    });
  });

  test("--profile NAME is found in tunnel-client's directory; Airlock's own directory comes first", async () => {
    const xdg = join(dir, "xdg");
    const tc = await readFile(join(FIXTURES, "sample_mcp_with_dcr.yaml"), "utf8");
    await write("xdg/tunnel-client/work.yaml", tc);
    let loaded = await load(["--profile", "work"], { XDG_CONFIG_HOME: xdg, CONTROL_PLANE_API_KEY: KEY });
    assert.equal(loaded.config.file?.path, join(xdg, "tunnel-client", "work.yaml"));
    assert.equal(loaded.config.file?.profileName, "work");

    await write("xdg/airlock/profiles/work.yaml", tc.replace("http://127.0.0.1:3001/mcp", "http://127.0.0.1:4001/mcp"));
    loaded = await load([], { XDG_CONFIG_HOME: xdg, CONTROL_PLANE_API_KEY: KEY, TUNNEL_CLIENT_PROFILE: "work" });
    assert.equal(loaded.config.file?.path, join(xdg, "airlock", "profiles", "work.yaml"));
    assert.equal((loaded.config.routes[0]!.backends[0] as { url: string }).url, "http://127.0.0.1:4001/mcp");

    // Without XDG_CONFIG_HOME, ~/.config is used.
    await write(".config/tunnel-client/home.yaml", tc);
    loaded = await load(["--profile=home"], { CONTROL_PLANE_API_KEY: KEY });
    assert.equal(loaded.config.file?.path, join(dir, ".config", "tunnel-client", "home.yaml"));

    await write("elsewhere/solo.yaml", tc);
    loaded = await load(["--profile", "solo", "--profile-dir", join(dir, "elsewhere")], { CONTROL_PLANE_API_KEY: KEY });
    assert.equal(loaded.config.file?.path, join(dir, "elsewhere", "solo.yaml"));
  });

  test("a missing profile names every place it looked", async () => {
    const xdg = join(dir, "empty-xdg");
    const error = await loadError(["--profile", "nope"], { ...BASE_ENV, XDG_CONFIG_HOME: xdg });
    assert.equal(error.path, "--profile");
    assert.ok(error.message.includes(join(xdg, "airlock", "profiles", "nope.yaml")), error.message);
    assert.ok(error.message.includes(join(xdg, "tunnel-client", "nope.yaml")), error.message);
  });

  test("--config, --profile and --profile-file are mutually exclusive; profile names cannot be paths", async () => {
    const both = await loadError(["--config", "a.yaml", "--profile", "b"], BASE_ENV);
    assert.equal(both.kind, "usage");
    assert.match(both.message, /--config and --profile are mutually exclusive/);
    assert.match(
      (await loadError([], { ...BASE_ENV, TUNNEL_CLIENT_CONFIG: "a.yaml", AIRLOCK_PROFILE: "b" })).message,
      /mutually exclusive/,
    );
    assert.match((await loadError(["--profile", "../etc/passwd"], BASE_ENV)).message, /invalid profile name/);
    assert.match((await loadError(["--profile-file", "x.json"], BASE_ENV)).message, /must end with \.yaml/);
  });
});

describe("Airlock routes", () => {
  test("the routing table normalises with references resolved and tunnel-client bindings beside it", async () => {
    const { config, secrets } = await load(["--config", join(FIXTURES, "airlock-routes.yaml")], {
      CONTROL_PLANE_API_KEY: KEY,
      GITHUB_TOKEN: "ghp_secret_0001",
      WIKI_TOKEN: "Bearer wiki-secret-0001",
    });
    assert.deepEqual(config.routes, [
      {
        channel: "main",
        origin: "routes",
        backends: [
          {
            name: "github",
            transport: "stdio",
            command: ["npx", "-y", "@modelcontextprotocol/server-github"],
            env: { GITHUB_PERSONAL_ACCESS_TOKEN: "ghp_secret_0001", LOG_STYLE: "plain" },
            cwd: "/srv",
          },
          {
            name: "wiki",
            transport: "http",
            url: "http://wiki.internal:8080/mcp",
            headers: { Authorization: "Bearer wiki-secret-0001" },
            caFile: "/etc/ssl/wiki.pem",
            tools: { allow: ["search*"], deny: ["*delete*"] },
            timeoutMs: 60_000,
            maxConcurrentRequests: 4,
          },
          {
            name: "files",
            transport: "stdio",
            command: ["node", "/opt/mcp/files server.js", "--root", "/data"],
            env: {},
          },
        ],
      },
      {
        channel: "tools",
        origin: "mcp.commands",
        backends: [{ name: "tools", transport: "stdio", command: ["python", "-m", "tools_mcp"], env: {} }],
      },
    ]);
    assert.ok(secrets.includes("ghp_secret_0001") && secrets.includes("Bearer wiki-secret-0001"));
    assert.ok(!secrets.includes("plain"));
    assert.equal(config.policy, join(FIXTURES, "policy.yaml"));
  });

  test("a backend with both command and url, and duplicate names, are errors at their paths", async () => {
    const file = await write(
      "bad-routes.yaml",
      [
        "routes:",
        "  - channel: main",
        "    backends:",
        "      - { name: a, command: x, url: http://127.0.0.1:1/mcp }",
        "      - { name: b, command: y }",
        "      - { name: b, url: http://127.0.0.1:2/mcp }",
        "",
      ].join("\n"),
    );
    const error = await loadError(["--config", file], BASE_ENV);
    assert.deepEqual(
      error.issues.map((i) => i.path),
      ["routes[0].backends[0]", "routes[0].backends[2].name"],
    );
    assert.match(error.issues[0]!.message, /either command or url, not both/);
    assert.match(error.issues[1]!.message, /backend "b" is already defined on channel main/);
    assert.ok(error.message.includes(file));
  });

  test("a channel served twice, the reserved harpoon channel and shell syntax are refused", async () => {
    const twice = await write("twice.yaml", "routes:\n  - channel: main\n    backends: [{ name: a, command: x }]\n");
    const collision = await loadError(["--config", twice], BASE_ENV);
    assert.equal(collision.path, "mcp.commands[0] (MCP_COMMAND)");
    assert.match(collision.message, /channel main is already served by routes\[0\]\.channel/);

    assert.match(
      (await loadError(["--mcp.command", "channel=harpoon,command=x"], { ...BASE_ENV, MCP_COMMAND: "" })).message,
      /reserved for the built-in Harpoon/,
    );
  });

  test("shell syntax in a command: literal arguments with a warning (tunnel-client), refused under strict_config", async () => {
    const { config, warnings } = await load(
      ["--mcp.command", `'/bin/bash' server.sh ; touch "x y" > out | cat #note`],
      BASE_ENV,
    );
    const backend = config.routes[0]!.backends[0]!;
    assert.equal(backend.transport, "stdio");
    assert.deepEqual(backend.transport === "stdio" && backend.command, [
      "/bin/bash",
      "server.sh",
      ";",
      "touch",
      "x y",
      ">",
      "out",
      "|",
      "cat",
      "#note",
    ]);
    assert.equal(config.strictConfig, false);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^mcp\.commands\[0\]\.command: ';' is passed to the program as a literal argument/);
    // An argv without shell syntax loads without a warning.
    assert.deepEqual((await load(["--mcp.command", "npx -y server"], BASE_ENV)).warnings, []);
    for (const strict of [["--strict-config"], ["--strict-config=true"]]) {
      const pipe = await loadError([...strict, "--mcp.command", "cat file | server"], BASE_ENV);
      assert.equal(pipe.path, "mcp.commands[0].command");
      assert.match(pipe.message, /shell operator '\|'.*without a shell/);
    }
    const env = await loadError(["--mcp.command", "a # b"], { ...BASE_ENV, AIRLOCK_STRICT_CONFIG: "1" });
    assert.match(env.message, /'#' comments/);
    const file = await write("strict.yaml", "strict_config: true\nmcp:\n  commands:\n    - command: a > b\n");
    assert.match((await loadError(["--config", file], { ...BASE_ENV, MCP_COMMAND: "" })).message, /shell operator '>'/);
    assert.match(
      (await loadError(["--config", await write("strict-bad.yaml", "strict_config: maybe\n")], BASE_ENV)).message,
      /strict_config/,
    );
  });

  test("channels starting with '_' or '-' load (tunnel-client's rule), refused under strict_config", async () => {
    const argv = [
      ...["--mcp.command", "server", "--mcp.command", "channel=_tools,command=x"],
      ...["--mcp.server-url", "channel=-docs,url=http://127.0.0.1:1/mcp"],
    ];
    const { config } = await load(argv, BASE_ENV);
    assert.deepEqual(config.routes.map((r) => r.channel).sort(), ["-docs", "_tools", "main"]);
    const polled = await load(
      [...argv, "--control-plane.poll-channel", "main", "--control-plane.poll-channel", "_tools"],
      BASE_ENV,
    );
    assert.deepEqual(polled.config.controlPlane.pollChannels, ["_tools", "main"]);
    const strict = await loadError([...argv, "--strict-config"], BASE_ENV);
    assert.equal(strict.path, "mcp.server_urls[0].channel");
    assert.match(
      strict.message,
      /"-docs" starts with '-'; strict_config wants channels to start with a letter or digit/,
    );
    const routes = await write(
      "underscore.yaml",
      "routes:\n  - channel: _agg\n    backends: [{ name: a, command: x }, { name: b, command: y }]\n",
    );
    assert.equal((await load(["--config", routes], BASE_ENV)).config.routes[0]!.channel, "_agg");
    assert.equal((await loadError(["--config", routes, "--strict-config"], BASE_ENV)).path, "routes[0].channel");
  });

  test("the main channel must be served unless the polled channels are listed", async () => {
    const error = await loadError(["--mcp.command", "channel=tools,command=x"], {
      CONTROL_PLANE_API_KEY: KEY,
      CONTROL_PLANE_TUNNEL_ID: TUNNEL,
    });
    assert.match(error.message, /main channel needs an MCP server; add channel=main/);
    const { config } = await load(
      ["--mcp.command", "channel=tools,command=x", "--control-plane.poll-channel", "tools"],
      { CONTROL_PLANE_API_KEY: KEY, CONTROL_PLANE_TUNNEL_ID: TUNNEL },
    );
    assert.deepEqual(config.controlPlane.pollChannels, ["tools"]);
    assert.match(
      (await loadError(["--control-plane.poll-channel", "docs"], BASE_ENV)).message,
      /nothing serves channel docs/,
    );
  });

  test("harpoon.hosts_include_regex takes RE2 syntax (tunnel-client's Go regexp) and refuses what RE2 cannot match in linear time", async () => {
    const { config } = await load(["--harpoon.hosts-include-regex", "(?i)^mcp-[0-9]+\\.internal$"], BASE_ENV);
    assert.deepEqual(config.harpoon.hostsIncludeRegex, ["(?i)^mcp-[0-9]+\\.internal$"]);
    const error = await loadError(["--harpoon.hosts-include-regex", "(?<=x)y"], BASE_ENV);
    assert.match(error.message, /harpoon\.hosts_include_regex/);
    assert.match(error.message, /"\(\?<=x\)y" is not a regular expression RE2 can match in linear time/);
  });

  test("--harpoon.target takes description= as well as desc=; an unknown key is ignored with a warning (tunnel-client), refused under strict_config", async () => {
    const { config } = await load(
      ["--harpoon.target", "label=auth,url=https://auth.example.com,description=Auth server"],
      BASE_ENV,
    );
    assert.deepEqual(config.harpoon.targets, [
      { label: "auth", url: "https://auth.example.com", description: "Auth server" },
    ]);
    const unknown = ["--harpoon.target", "label=auth,url=https://auth.example.com,colour=red"];
    const lenient = await load(unknown, BASE_ENV);
    assert.deepEqual(lenient.config.harpoon.targets, [{ label: "auth", url: "https://auth.example.com" }]);
    assert.deepEqual(lenient.warnings, [
      'harpoon.targets: --harpoon.target: entry 1: unknown key "colour" is ignored, as tunnel-client ignores it (the keys are label, url, desc, description, unix-socket); set strict_config to refuse it',
    ]);
    assert.match((await loadError([...unknown, "--strict-config"], BASE_ENV)).message, /unsupported key "colour"/);
  });

  test("a set-but-empty variable hides the profile's value (tunnel-client); strict_config keeps the profile's", async () => {
    const file = await write("shadow.yaml", "control_plane:\n  max_inflight_requests: 7\nlog:\n  level: warn\n");
    const env = { ...BASE_ENV, CONTROL_PLANE_MAX_INFLIGHT_REQUESTS: "", LOG_LEVEL: " " };
    const lenient = await load(["--config", file], env);
    assert.equal(lenient.config.controlPlane.maxInflight, 20);
    assert.equal(lenient.config.log.level, "info");
    assert.deepEqual(lenient.sources["control_plane.max_inflight_requests"], { layer: "default" });
    assert.equal(lenient.warnings.length, 2);
    assert.match(
      lenient.warnings[0]!,
      /^CONTROL_PLANE_MAX_INFLIGHT_REQUESTS is set but empty, so it hides control_plane\.max_inflight_requests from .*shadow\.yaml and the default applies, as in tunnel-client/,
    );
    const strict = await load(["--config", file], { ...env, AIRLOCK_STRICT_CONFIG: "true" });
    assert.equal(strict.config.controlPlane.maxInflight, 7);
    assert.equal(strict.config.log.level, "warn");
    assert.deepEqual(strict.warnings, []);
    // tunnel-client: "tunnel ID is required" when the empty variable hides the profile's id.
    const id = await write("shadow-id.yaml", `control_plane:\n  tunnel_id: ${TUNNEL}\n`);
    const missing = await loadError(["--config", id], { ...BASE_ENV, CONTROL_PLANE_TUNNEL_ID: "" });
    assert.match(missing.message, /a tunnel id is required/);
    assert.match(
      missing.message,
      /\(CONTROL_PLANE_TUNNEL_ID is set but empty, so it hides control_plane\.tunnel_id from /,
    );
    const kept = await load(["--config", id, "--strict-config"], { ...BASE_ENV, CONTROL_PLANE_TUNNEL_ID: "" });
    assert.equal(kept.config.controlPlane.tunnelId, TUNNEL);
  });

  test("a malformed OpenAI key is refused at start, as tunnel-client (never echoed); a hub's key may be any string", async () => {
    const error = await loadError([], { ...BASE_ENV, CONTROL_PLANE_API_KEY: 'sk-abc def"1234' });
    assert.equal(error.path, "control_plane.api_key (from CONTROL_PLANE_API_KEY)");
    assert.match(error.message, /the API key is malformed: OpenAI keys hold only letters, digits, '-' and '_'/);
    assert.doesNotMatch(error.message, /abc def/);
    const hub = await load(["--control-plane.base-url", "https://hub.example.com"], {
      ...BASE_ENV,
      CONTROL_PLANE_API_KEY: "hub key.with:anything",
    });
    assert.equal(hub.config.controlPlane.apiKey, "hub key.with:anything");
  });

  test("main,harpoon without a harpoon target loads, as tunnel-client's OAuth bootstrap; harpoon alone does not", async () => {
    const { config, warnings } = await load([], { ...BASE_ENV, CONTROL_PLANE_POLL_CHANNELS: "main,harpoon" });
    assert.deepEqual(config.controlPlane.pollChannels, ["harpoon", "main"]);
    assert.deepEqual(warnings, []);
    assert.match(
      (await loadError([], { ...BASE_ENV, CONTROL_PLANE_POLL_CHANNELS: "harpoon" })).message,
      /nothing serves channel harpoon/,
    );
  });
});

describe("errors name the key path and say what to do", () => {
  test("an unknown YAML key names its path and the likely key", async () => {
    const file = await write(
      "typo.yaml",
      `control_plane:\n  tunel_id: ${TUNNEL}\nmcp:\n  commands:\n    - { chanel: main, command: x }\n`,
    );
    const error = await loadError(["--config", file], BASE_ENV);
    assert.equal(error.kind, "config");
    assert.equal(error.path, "control_plane.tunel_id");
    assert.match(error.message, /control_plane\.tunel_id: unknown key; did you mean tunnel_id\?/);
    assert.match(error.message, /mcp\.commands\[0\]\.chanel: unknown key; did you mean channel\?/);
    assert.ok(error.message.includes(`in ${file}`));
  });

  test("wrong types name their paths", async () => {
    const file = await write(
      "types.yaml",
      "control_plane:\n  max_inflight_requests: lots\n  poll_timeout: 30\nmcp:\n  commands: npx server\nhealth: loopback\n",
    );
    const error = await loadError(["--config", file], BASE_ENV);
    assert.deepEqual(
      new Set(error.issues.map((i) => i.path)),
      new Set(["control_plane.max_inflight_requests", "control_plane.poll_timeout", "health", "mcp.commands"]),
    );
    assert.match(error.message, /max_inflight_requests: expected number/);
    assert.match(error.message, /poll_timeout: "30" is not a duration/);
    assert.match(error.message, /mcp\.commands: expected array/);
  });

  test("values out of range name the layer they came from", async () => {
    const error = await loadError(["--control-plane.max-inflight", "0"], BASE_ENV);
    assert.equal(error.path, "control_plane.max_inflight_requests (from --control-plane.max-inflight)");
    assert.match(error.message, /between 1 and 10000, got 0/);
    assert.match(
      (await loadError([], { ...BASE_ENV, CONTROL_PLANE_POLL_TIMEOUT: "forever" })).message,
      /CONTROL_PLANE_POLL_TIMEOUT: "forever" is not a duration/,
    );
    assert.match(
      (await loadError([], { ...BASE_ENV, CONTROL_PLANE_TUNNEL_ID: "tunnel_abc" })).message,
      /control_plane\.tunnel_id \(from CONTROL_PLANE_TUNNEL_ID\): "tunnel_abc" is not a tunnel id/,
    );
    assert.match((await loadError([], { ...BASE_ENV, CONTROL_PLANE_POLL_TIMEOUT: "599s" })).message, /at most 600s/);
  });

  test("a YAML syntax error gives line and column", async () => {
    const file = await write("syntax.yaml", "control_plane:\n  tunnel_id: [unclosed\n");
    const error = await loadError(["--config", file], BASE_ENV);
    assert.match(error.message, /^line 3, column 1: Flow sequence .* end with a \] \(YAML syntax in .*syntax\.yaml\)$/);
    const duplicate = await write("duplicate.yaml", "log:\n  level: info\n  level: debug\n");
    assert.match(
      (await loadError(["--config", duplicate], BASE_ENV)).message,
      /^line 3, column 3: Map keys must be unique/,
    );
  });

  test("unknown flags, missing values and stray words are one usage error", async () => {
    const error = await loadError(
      ["--control-plane.tunel-id", "x", "--log.level", "run", "--nonsense-flag-zzz"],
      BASE_ENV,
    );
    assert.equal(error.kind, "usage");
    assert.match(error.message, /--control-plane\.tunel-id: unknown flag; did you mean --control-plane\.tunnel-id\?/);
    assert.match(error.message, /--nonsense-flag-zzz: unknown flag/);
    assert.match(error.message, /unexpected argument "x"/);
    assert.match(error.message, /airlock run --help/);
    assert.match((await loadError(["--log.level"], BASE_ENV)).message, /--log\.level needs a value/);
  });

  test("hidden hyphenated aliases and booleans work like tunnel-client's", async () => {
    const { config } = await load(
      [
        "--control-plane-tunnel-id",
        TUNNEL,
        "--mcp-command",
        "x",
        "--allow-remote-ui",
        "--admin-ui.allowed-host",
        "agent.internal",
        "--harpoon.allow-plaintext-http=false",
        "--control-plane-organization-id",
        "org-123",
      ],
      { CONTROL_PLANE_API_KEY: KEY },
    );
    assert.equal(config.controlPlane.tunnelId, TUNNEL);
    assert.equal(config.adminUi.allowRemote, true);
    assert.equal(config.harpoon.allowPlaintextHttp, false);
    assert.equal(config.controlPlane.organizationId, "org-123");
  });

  test("organization id from --control-plane.organization-id or CONTROL_PLANE_ORGANIZATION_ID (flag wins)", async () => {
    assert.equal(
      (
        await load(["--control-plane.organization-id", "org-flag"], {
          ...BASE_ENV,
          CONTROL_PLANE_ORGANIZATION_ID: "org-env",
        })
      ).config.controlPlane.organizationId,
      "org-flag",
    );
    assert.equal(
      (await load([], { ...BASE_ENV, CONTROL_PLANE_ORGANIZATION_ID: "org-env" })).config.controlPlane.organizationId,
      "org-env",
    );
  });

  test("cloudflared flags and variables are accepted with a statement of what Airlock does instead", async () => {
    const { warnings } = await load(
      ["--cloudflared.token", "env:CLOUDFLARED_TOKEN", "--cloudflared.ready-timeout", "45s"],
      BASE_ENV,
    );
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /does not run cloudflared and needs none \(it reaches the control plane by outbound HTTPS long polls only\)/,
    );
    assert.equal((await load([], { ...BASE_ENV, CLOUDFLARED_TUNNEL_TOKEN: "tok" })).warnings.length, 1);
  });
});

describe("settings tunnel-client has that Airlock cannot honour: a warning saying what Airlock does instead; refused under strict_config", () => {
  test("health.unix_socket is honoured (flag, env, dashed alias), not refused", async () => {
    for (const [argv, env] of [
      [["--health.unix-socket", "/run/tc.sock"], {}],
      [[], { HEALTH_UNIX_SOCKET: "/run/tc.sock" }],
      [["--health-unix-socket", "/run/tc.sock"], {}],
    ] as Array<[string[], Record<string, string>]>) {
      const { config } = await load(argv, { ...BASE_ENV, ...env });
      assert.equal(config.health.unixSocket, "/run/tc.sock", JSON.stringify(argv));
    }
  });
  test("hosts_include_* and oauth_trusted_origins take effect (OAuth discovery); a trusted origin must be an origin", async () => {
    const { config, warnings } = await load(
      ["--harpoon.hosts-include-loopback=false", "--harpoon.hosts-include-suffix", ".corp"],
      BASE_ENV,
    );
    assert.deepEqual(warnings, []);
    assert.equal(config.harpoon.hostsIncludeLoopback, false);
    assert.deepEqual(config.harpoon.hostsIncludeSuffix, [".corp"]);
    const file = await write("trusted.yaml", "mcp:\n  oauth_trusted_origins:\n    - https://auth.example.com/oauth\n");
    const error = await loadError(["--config", file], BASE_ENV);
    assert.match(error.path ?? "", /^mcp\.oauth_trusted_origins \(from .*trusted\.yaml\)$/);
    assert.match(
      error.message,
      /"https:\/\/auth\.example\.com\/oauth" is not an origin; write scheme, host and port only/,
    );
  });
  const cases: Array<[string[], Record<string, string>, string, RegExp]> = [
    [["--log.http-raw-unsafe"], {}, "log.http_raw_unsafe (from --log.http-raw-unsafe)", /never logs raw HTTP/],
  ];
  for (const [argv, env, path, message] of cases) {
    test(`${argv.join(" ") || Object.keys(env).join(" ")}`, async () => {
      const { warnings } = await load(argv, { ...BASE_ENV, ...env });
      assert.equal(warnings.length, 1);
      assert.ok(warnings[0]!.startsWith(`${path} is ignored: `), warnings[0]);
      assert.match(warnings[0]!, message);
      const error = await loadError(argv, { ...BASE_ENV, ...env, AIRLOCK_STRICT_CONFIG: "1" });
      assert.equal(error.path, path);
      assert.match(error.message, /is not supported by Airlock/);
      assert.match(error.message, message);
    });
  }
});

describe("secret references", () => {
  test("env: and file: references resolve (trimmed) for the key, headers and backend env", async () => {
    const keyFile = await write("secrets/key", `  ${KEY}\n`);
    const { config, secrets } = await load(
      [
        "--control-plane.api-key",
        `file:${keyFile}`,
        "--control-plane.extra-headers",
        "X-Org: env:ORG_HEADER",
        "--mcp.extra-headers=Authorization: Bearer literal-token-0001",
      ],
      {
        CONTROL_PLANE_TUNNEL_ID: TUNNEL,
        MCP_SERVER_URL: "http://127.0.0.1:3001/mcp",
        ORG_HEADER: " org-value-0001 ",
        MCP_EXTRA_HEADERS: "Ignored: x",
      },
    );
    assert.equal(config.controlPlane.apiKey, KEY);
    assert.deepEqual(config.controlPlane.extraHeaders, { "X-Org": "org-value-0001" });
    assert.deepEqual(config.mcp.extraHeaders, { Authorization: "Bearer literal-token-0001" });
    assert.deepEqual((config.routes[0]!.backends[0] as { headers: unknown }).headers, {
      Authorization: "Bearer literal-token-0001",
    });
    assert.deepEqual(new Set(secrets), new Set([KEY, "org-value-0001", "Bearer literal-token-0001"]));
  });

  test("a missing variable or unreadable file is named, with what to do", async () => {
    const missing = await loadError([], { ...BASE_ENV, CONTROL_PLANE_EXTRA_HEADERS: "X-Auth: env:NOT_SET_ANYWHERE" });
    assert.equal(missing.path, "control_plane.extra_headers (from CONTROL_PLANE_EXTRA_HEADERS).X-Auth");
    assert.match(missing.message, /environment variable NOT_SET_ANYWHERE, which is not set; export NOT_SET_ANYWHERE/);
    const unreadable = await loadError(["--control-plane.api-key", "file:/nonexistent/airlock/key"], {
      CONTROL_PLANE_TUNNEL_ID: TUNNEL,
      MCP_COMMAND: "x",
    });
    assert.equal(unreadable.path, "control_plane.api_key (from --control-plane.api-key)");
    assert.match(unreadable.message, /cannot read \/nonexistent\/airlock\/key \(ENOENT\); check the path/);
    const empty = await write("secrets/empty", "\n");
    assert.match(
      (
        await loadError(["--control-plane.api-key", `file:${empty}`], {
          CONTROL_PLANE_TUNNEL_ID: TUNNEL,
          MCP_COMMAND: "x",
        })
      ).message,
      /is empty/,
    );
  });

  test("a literal key on the command line is refused", async () => {
    const error = await loadError(["--control-plane.api-key", "sk-literal-on-argv-0001"], {
      CONTROL_PLANE_TUNNEL_ID: TUNNEL,
      MCP_COMMAND: "x",
    });
    assert.match(error.message, /takes a reference, env:NAME or file:\/path/);
    assert.ok(!error.message.includes("sk-literal-on-argv-0001"));
  });

  test("no error message ever contains a secret value", async () => {
    const secretFile = await write("secrets/multiline", "line-one-secret-0001\nline-two-secret-0002\n");
    const cases: Array<{ argv: string[]; env: Record<string, string>; secrets: string[] }> = [
      // A header entry without ':' whose text is a credential.
      {
        argv: [],
        env: { ...BASE_ENV, CONTROL_PLANE_EXTRA_HEADERS: "Authorization Bearer hdr-secret-0001" },
        secrets: ["hdr-secret-0001", KEY],
      },
      // A header value read from a file that turns out to span lines.
      {
        argv: ["--mcp.extra-headers", `X-Token: file:${secretFile}`],
        env: BASE_ENV,
        secrets: ["line-one-secret-0001", "line-two-secret-0002"],
      },
      // A credential URL that is not http(s).
      {
        argv: [],
        env: { ...BASE_ENV, MCP_SERVER_URL: "ftp://user:url-secret-0001@host/mcp" },
        secrets: ["url-secret-0001"],
      },
      // A reserved header carrying a credential.
      {
        argv: ["--control-plane.extra-headers", "Authorization: Bearer reserved-secret-0001"],
        env: BASE_ENV,
        secrets: ["reserved-secret-0001"],
      },
      // A secret that a later error happens to echo is scrubbed.
      {
        argv: [],
        env: { ...BASE_ENV, CONTROL_PLANE_API_KEY: "verbose-secret-0001", LOG_LEVEL: "verbose-secret-0001" },
        secrets: ["verbose-secret-0001"],
      },
      // A backend env reference that is missing, with the key resolved earlier.
      {
        argv: [],
        env: { ...BASE_ENV, CONTROL_PLANE_API_KEY: "sk-early-secret-0001", MCP_SERVER_URL: "env:NO_SUCH_URL_VAR" },
        secrets: ["sk-early-secret-0001"],
      },
    ];
    for (const { argv, env, secrets } of cases) {
      const error = await loadError(argv, env);
      for (const secret of secrets) assert.ok(!error.message.includes(secret), `"${secret}" leaked: ${error.message}`);
      for (const issue of error.issues)
        for (const secret of secrets) assert.ok(!issue.path.includes(secret) && !issue.message.includes(secret));
    }
  });

  test("control-plane extra headers cannot replace the headers the agent manages", async () => {
    const error = await loadError(["--control-plane.extra-headers", "X-Tunnel-Client-Name: spoof"], BASE_ENV);
    assert.match(error.message, /X-Tunnel-Client-Name: is managed by Airlock/);
  });
});
