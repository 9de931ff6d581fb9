/**
 * The deployment recipes in deploy/ and wrangler.toml's environments, checked as far as
 * this machine can: manifests parse and point probes at the right ports and commands, the
 * command lines are ones `airlock run` / `airlock health` accept, the systemd unit is
 * hardened and passes `systemd-analyze verify`, the Dockerfile copies everything the agent
 * imports and installs every package it needs, and each Worker environment bundles with the
 * same bindings as the top level.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { parse as shellParse } from "shell-quote";
import { parseAllDocuments } from "yaml";
import { loadConfig } from "../../agent/config/load.ts";
import { parseListenAddr } from "../../agent/runtime/serve.ts";
import { main as healthMain } from "../../agent/cli/health.ts";
import { ROOT, run } from "../support/run.ts";
import { findSample, readSample, renderSample } from "../../agent/samples/catalog.ts";

const DEPLOY = join(ROOT, "deploy");
const TUNNEL = "tunnel_0123456789abcdef0123456789abcdef";

/** The Dockerfile as instructions (continuations joined, comments dropped). */
async function dockerfile(): Promise<Array<{ op: string; args: string }>> {
  const text = (await readFile(join(DEPLOY, "Dockerfile"), "utf8")).replace(/\\\n\s*/g, " ");
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((line) => {
      const [op, ...rest] = line.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(" ") };
    });
}

/** Every .ts/.tsx file under `dir`, tests excluded. */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** Module specifiers a file loads at run time (`import type` is erased). */
function runtimeImports(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^"'`;]*?\sfrom\s+)?["']([^"']+)["']/gm))
    found.push(match[1]!);
  for (const match of text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) found.push(match[1]!);
  return found;
}

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

describe("Dockerfile", () => {
  test("node:20-slim, production install, the esbuild bundle on plain Node, non-root, one agent process, health check on the exposed port", async () => {
    const steps = await dockerfile();
    assert.equal(steps[0]?.op, "FROM");
    assert.equal(steps[0]?.args, "node:20-slim");
    const runs = steps.filter((s) => s.op === "RUN").map((s) => s.args);
    assert.ok(
      runs.some((r) => /\bnpm ci --omit=dev\b/.test(r)),
      runs.join("\n"),
    );
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    assert.ok(
      pkg.dependencies.esbuild,
      "esbuild must be a dependency: --omit=dev would drop it, and the image builds with it",
    );
    assert.ok(runs.includes("node scripts/build.mjs"), "the image builds dist/airlock.js");
    const user = steps.filter((s) => s.op === "USER").at(-1)?.args;
    assert.ok(user && !/^(root|0)(:|$)/.test(user), `runs as ${user}`);
    const entrypoint = JSON.parse(steps.find((s) => s.op === "ENTRYPOINT")!.args) as string[];
    assert.deepEqual(entrypoint, ["node", "/opt/airlock/dist/airlock.js"]);
    assert.equal(steps.find((s) => s.op === "WORKDIR")?.args, "/opt/airlock");
    assert.deepEqual(JSON.parse(steps.find((s) => s.op === "CMD")!.args), ["run"]);
    const exposed = steps.find((s) => s.op === "EXPOSE")?.args;
    const health = steps.find((s) => s.op === "HEALTHCHECK")!.args;
    const probe = JSON.parse(health.slice(health.indexOf("CMD") + 3).trim()) as string[];
    assert.deepEqual(probe.slice(0, 4), [...entrypoint, "health", "--port"]);
    assert.equal(probe[4], exposed);
  });

  test("the image holds every file the agent imports and every package it loads", async () => {
    const steps = await dockerfile();
    const copied: string[] = [];
    for (const step of steps.filter((s) => s.op === "COPY")) {
      const words = step.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      for (const source of words.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, source)), `COPY ${source}: no such file in the repository`);
        copied.push(resolve(ROOT, source));
      }
    }
    const inImage = (path: string) => copied.some((c) => path === c || path.startsWith(`${c}/`));
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    // Dev-only packages the agent may load, each from exactly one file, lazily (a dynamic import
    // that says what to do when the package is missing), on a path the image never takes.
    const devOnly: Record<string, string> = { "oidc-provider": "agent/demo/test-idp.ts" }; // `airlock demo --login`'s test IdP
    for (const [name, file] of Object.entries(devOnly)) {
      assert.match(
        await readFile(join(ROOT, file), "utf8"),
        new RegExp(`await import\\("${name}"\\)`),
        `${file} loads ${name} lazily`,
      );
    }
    const builtins = new Set(builtinModules);
    const missingFiles: string[] = [];
    const missingPackages = new Set<string>();
    const files = (await Promise.all(["agent", "shared", "relay"].map((d) => sources(join(ROOT, d))))).flat();
    assert.ok(files.length > 50);
    for (const file of files) {
      for (const specifier of runtimeImports(await readFile(file, "utf8"))) {
        if (specifier.startsWith(".")) {
          const target = resolve(dirname(file), specifier);
          if (!inImage(target)) missingFiles.push(`${relative(ROOT, file)} → ${specifier}`);
        } else if (!specifier.startsWith("node:") && !specifier.startsWith("cloudflare:") && !builtins.has(specifier)) {
          const name = packageName(specifier);
          const from = relative(ROOT, file);
          if (!pkg.dependencies[name] && devOnly[name] !== from) missingPackages.add(`${name} (from ${from})`);
        }
      }
    }
    assert.deepEqual(missingFiles, [], "imported files the image does not copy");
    assert.deepEqual([...missingPackages], [], "packages the agent loads that `npm ci --omit=dev` would not install");
  });
});

describe("systemd unit", () => {
  const read = async () => {
    const text = await readFile(join(DEPLOY, "systemd", "airlock.service"), "utf8");
    const sections: Record<string, Record<string, string[]>> = {};
    let current = "";
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line || line.startsWith("#")) continue;
      const header = /^\[(\w+)\]$/.exec(line);
      if (header) {
        current = header[1]!;
        sections[current] = {};
        continue;
      }
      const eq = line.indexOf("=");
      const key = line.slice(0, eq);
      const values = sections[current]![key] ?? [];
      values.push(line.slice(eq + 1));
      sections[current]![key] = values;
    }
    return sections;
  };

  test("hardened: a dynamic user, no new privileges, a read-only system, secrets from an EnvironmentFile", async () => {
    const service = (await read()).Service!;
    const one = (key: string) => service[key]?.at(-1);
    for (const [key, value] of Object.entries({
      DynamicUser: "yes",
      NoNewPrivileges: "yes",
      ProtectSystem: "strict",
      ProtectHome: "yes",
      PrivateTmp: "yes",
      PrivateDevices: "yes",
      RestrictSUIDSGID: "yes",
      CapabilityBoundingSet: "",
      EnvironmentFile: "/etc/airlock/airlock.env",
      RuntimeDirectory: "airlock",
      Restart: "on-failure",
    }))
      assert.equal(one(key), value, key);
    assert.equal(one("MemoryDenyWriteExecute"), undefined, "V8 needs writable executable memory");
    const env = await readFile(join(DEPLOY, "systemd", "airlock.env.example"), "utf8");
    assert.match(env, /^CONTROL_PLANE_API_KEY=/m);
  });

  test("ExecStart is a command line `airlock run` accepts, writing its URL file where the service may write", async () => {
    const service = (await read()).Service!;
    const argv = shellParse(service.ExecStart![0]!) as string[];
    assert.deepEqual(argv.slice(0, 3), ["/usr/bin/node", "/opt/airlock/dist/airlock.js", "run"]);
    const envText = await readFile(join(DEPLOY, "systemd", "airlock.env.example"), "utf8");
    const env = Object.fromEntries(
      envText
        .split("\n")
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    const sample = findSample("sample_mcp_remote_no_auth")!;
    const profile = renderSample(sample, await readSample(sample.name), {
      tunnelId: TUNNEL,
      mcpServerUrl: "https://mcp.internal.example.com/mcp",
    });
    const { config } = await loadConfig({
      argv: argv.slice(3),
      env,
      cwd: service.WorkingDirectory![0]!,
      readFile: async (path) => {
        if (path === "/etc/airlock/profiles/production.yaml") return profile;
        throw Object.assign(new Error(path), { code: "ENOENT" });
      },
    });
    assert.equal(config.file?.profileName, "production");
    assert.equal(config.controlPlane.apiKey, env.CONTROL_PLANE_API_KEY);
    assert.equal(config.health.urlFile, `/run/${service.RuntimeDirectory![0]}/health.url`);
    assert.equal(config.log.format, "json");
  });

  test("systemd-analyze verify accepts the unit without a warning", async (t) => {
    const analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((p) => existsSync(p));
    assert.ok(analyze, "systemd-analyze is part of Debian's systemd package; install it to verify the unit");
    const { code, output } = await run(analyze, ["verify", join(DEPLOY, "systemd", "airlock.service")]);
    t.diagnostic(output.trim() || "no findings");
    assert.equal(code, 0, output);
    assert.equal(output.trim(), "");
  });
});

interface PodSpec {
  containers: Container[];
  volumes?: Array<{ name: string; configMap?: { name: string } }>;
  securityContext: { runAsNonRoot?: boolean };
}
/** The parts of the manifests' documents the checks read (Deployment, ConfigMap, NetworkPolicy). */
interface Doc {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec: {
    template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    podSelector?: { matchLabels: Record<string, string> };
    ingress?: unknown[];
  };
}

/** Every document of a manifest, each parsed without error. */
async function manifest(name: string): Promise<Doc[]> {
  const docs = parseAllDocuments(await readFile(join(DEPLOY, "kubernetes", name), "utf8"));
  const list = Array.isArray(docs) ? docs : [];
  for (const doc of list) assert.deepEqual(doc.errors, [], `${name}: YAML errors`);
  return list.map((doc) => doc.toJS() as Doc);
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[] };
  };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface Probe {
  exec?: { command: string[] };
  httpGet?: { path: string; port: string | number };
}

function agentContainer(docs: Doc[]): { container: Container; pod: PodSpec } {
  const deployment = docs.find((d) => d.kind === "Deployment")!;
  const pod = deployment.spec.template!.spec;
  const container = pod.containers.find((c) => c.name === "airlock")!;
  assert.ok(container, "an airlock container");
  return { container, pod };
}

/** The container's environment with secret references filled by stand-ins. */
function containerEnv(container: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) out[entry.name] = entry.value;
    else if (entry.valueFrom?.secretKeyRef)
      out[entry.name] = entry.name === "CONTROL_PLANE_TUNNEL_ID" ? TUNNEL : "sk-stand-in-secret";
  }
  return out;
}

function assertLockedDown(container: Container, pod: PodSpec): void {
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
  assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
  assert.deepEqual(container.securityContext?.capabilities?.drop, ["ALL"]);
  // A read-only root still needs a writable /tmp (the agent's and its MCP tools' temporary files).
  assert.ok(container.volumeMounts?.some((m) => m.mountPath === "/tmp"));
  for (const entry of container.env ?? []) {
    if (/KEY|TOKEN|SECRET/.test(entry.name))
      assert.ok(entry.valueFrom?.secretKeyRef, `${entry.name} must come from a Secret`);
  }
}

describe("Kubernetes", () => {
  test("sidecar: the agent reaches the MCP container on localhost, stays on loopback, and probes with `airlock health`", async () => {
    const docs = await manifest("sidecar.yaml");
    const { container, pod } = agentContainer(docs);
    assert.equal(container.args?.[0], "run");
    const { config } = await loadConfig({
      argv: container.args!.slice(1),
      env: containerEnv(container),
      cwd: "/opt/airlock",
    });
    const listen = parseListenAddr(config.health.listenAddr);
    assert.equal(listen.hostname, "127.0.0.1");
    const main = config.routes.find((r) => r.channel === "main")!.backends[0]!;
    assert.equal(main.transport === "http" && new URL(main.url).hostname, "127.0.0.1");
    const mcp = pod.containers.find((c) => c.name !== "airlock")!;
    assert.equal(main.transport === "http" && Number(new URL(main.url).port), mcp.ports?.[0]?.containerPort);

    const probes = {
      readiness: container.readinessProbe!,
      liveness: container.livenessProbe!,
      startup: container.startupProbe!,
    };
    for (const [kind, probe] of Object.entries(probes)) {
      const command = probe.exec!.command;
      assert.deepEqual(command.slice(0, 3), ["node", "/opt/airlock/dist/airlock.js", "health"], kind);
      const args = command.slice(3);
      assert.deepEqual(args.slice(0, 2), ["--port", String(listen.port)], kind);
      // Liveness asks /healthz: a control-plane outage must not restart the Pod.
      assert.equal(args.includes("--live"), kind !== "readiness", kind);
      // Readiness is tunnel-client's lenient rule: the MCP server beside us stays in its Service.
      assert.equal(args.includes("--strict"), false, kind);
      const io = {
        out: "",
        err: "",
        env: {},
        cwd: "/",
        stdout(t: string) {
          io.out += t;
        },
        stderr(t: string) {
          io.err += t;
        },
      };
      // Nothing listens here: the probe fails (2), but its flags are valid (a usage error is 1).
      assert.equal(await healthMain([...args, "--timeout", "200ms"], io), 2, `${kind}: ${io.err}`);
      assert.equal(io.err, "", kind);
    }
    assertLockedDown(container, pod);
  });

  test("dedicated: profile from a ConfigMap, httpGet probes on the listener the profile opens, no ingress", async () => {
    const docs = await manifest("dedicated.yaml");
    const { container, pod } = agentContainer(docs);
    const configMap = docs.find((d) => d.kind === "ConfigMap")!;
    const volume = pod.volumes!.find((v) => v.configMap?.name === configMap.metadata.name)!;
    const mount = container.volumeMounts!.find((m) => m.name === volume.name)!;
    assert.deepEqual(container.args, ["run", "--profile", "production", "--profile-dir", mount.mountPath]);
    const files = configMap.data!;
    const { config } = await loadConfig({
      argv: container.args!.slice(1),
      env: containerEnv(container),
      cwd: "/opt/airlock",
      readFile: async (path) => {
        const name = path.startsWith(`${mount.mountPath}/`) ? path.slice(mount.mountPath.length + 1) : "";
        if (files[name] !== undefined) return files[name]!;
        throw Object.assign(new Error(path), { code: "ENOENT" });
      },
    });
    assert.equal(config.file?.path, `${mount.mountPath}/production.yaml`);
    assert.ok(config.routes[0]!.backends.length >= 2);
    const listen = parseListenAddr(config.health.listenAddr);
    assert.equal(listen.hostname, "0.0.0.0", "httpGet probes come from the kubelet, not loopback");
    const port = container.ports!.find((p) => p.name === container.readinessProbe!.httpGet!.port)!;
    assert.equal(port.containerPort, listen.port);
    assert.equal(
      container.readinessProbe!.httpGet!.path,
      "/readyz?strict=1",
      "a dedicated Pod gates on the tunnel serving",
    );
    assert.equal(container.livenessProbe!.httpGet!.path, "/healthz");
    assert.equal(container.livenessProbe!.httpGet!.port, port.name);
    assertLockedDown(container, pod);
    const policy = docs.find((d) => d.kind === "NetworkPolicy")!;
    assert.deepEqual(
      policy.spec.podSelector?.matchLabels,
      docs.find((d) => d.kind === "Deployment")!.spec.template!.metadata.labels,
    );
    assert.deepEqual(policy.spec.ingress, []);
  });
});

describe("wrangler.toml environments", () => {
  test("staging and production bundle with the same bindings and variables as the top level", async (t) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_HIDE_BANNER: "true",
      CI: "1",
    };
    for (const name of ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_ACCOUNT_ID"]) delete env[name];
    const outdir = await mkdtemp(join(tmpdir(), "airlock-wrangler-env-"));
    t.after(() => rm(outdir, { recursive: true, force: true }));
    const dryRun = async (name: string) => {
      const { code, output } = await run(
        join(ROOT, "node_modules/.bin/wrangler"),
        ["deploy", "--dry-run", "--outdir", join(outdir, name), "--env", name],
        env,
      );
      assert.equal(code, 0, output);
      assert.doesNotMatch(output, /not inherited/, `${name}: ${output}`);
      return [...output.matchAll(/^env\.([A-Z_]+) /gm)].map((m) => m[1]!).sort();
    };
    // The top level's bindings and variables, from the file (test/hub/bundle.test.ts dry-runs the top level).
    const toml = await readFile(join(ROOT, "wrangler.toml"), "utf8");
    const topLevel = toml.slice(0, toml.search(/^\[env\./m));
    const top = [
      ...[
        ...topLevel.matchAll(
          /^\[\[(?:durable_objects\.bindings|r2_buckets|kv_namespaces)\]\]\n(?:(?:name|binding) = "([A-Z_]+)")/gm,
        ),
      ].map((m) => m[1]!),
      ...[...(topLevel.split(/^\[vars\]$/m)[1] ?? "").split(/^\[/m)[0]!.matchAll(/^([A-Z_]+) = /gm)].map((m) => m[1]!),
    ].sort();
    const [staging, production] = await Promise.all([dryRun("staging"), dryRun("production")]);
    assert.ok(top.includes("TUNNEL_HUB") && top.includes("AIRLOCK_HUB_MAX_QUEUED"), top.join(" "));
    assert.deepEqual(staging, top);
    assert.deepEqual(production, top);
    assert.ok((await stat(join(outdir, "production", "index.js"))).size > 10_000);
  });
});
