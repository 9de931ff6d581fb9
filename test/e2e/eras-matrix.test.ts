/**
 * The era matrix through the hub: every client (SDK v1; SDK v2 in `legacy`, `auto` and
 * pinned-2026-07-28 modes) × every server (server-everything, 2025; the SDK v2 fixture
 * 2026-only; the same fixture dual-era) × stdio and Streamable HTTP, each cell running one
 * script (test/support/mcp-script.ts) through a real hub (workerd) and one real agent, and
 * comparing its transcript with calling the server directly — with the same client where that
 * pair works directly, else with the server's own era's client. Where the spec says a pair
 * fails directly, the test shows it does, so the bridge is what makes the cell work.
 *
 * One hub, one agent (a channel per server × transport) and one HTTP server each serve every
 * cell; cells run one after another, so the file stays light on a small machine.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  everythingStdioCommand,
  modernStdioCommand,
  startEverythingHttp,
  startModernHttp,
  type RunningServer,
} from "../support/everything.ts";
import { CLIENT_TOKEN, startTestHub, type TestHub } from "../support/hub.ts";
import { startHubAgent, type HubAgent } from "../support/hub-stack.ts";
import {
  CLIENT_KINDS,
  EVERYTHING_PROFILE,
  FIXTURE_PROFILE,
  runScript,
  type ClientKind,
  type ScriptRun,
  type ServerProfile,
  type Step,
  type Target,
} from "../support/mcp-script.ts";

type Era = "legacy" | "modern";
type ServerName = "everything" | "modern" | "dual";
type Leg = "stdio" | "http";

interface MatrixServer {
  profile: ServerProfile;
  /** The eras it serves directly. */
  serves: Era[];
  stdio: string[];
  http: () => Promise<RunningServer>;
}

const SERVERS: Record<ServerName, MatrixServer> = {
  everything: {
    profile: EVERYTHING_PROFILE,
    serves: ["legacy"],
    stdio: everythingStdioCommand(),
    http: startEverythingHttp,
  },
  modern: {
    profile: FIXTURE_PROFILE,
    serves: ["modern"],
    stdio: modernStdioCommand(true),
    http: () => startModernHttp(true),
  },
  dual: {
    profile: FIXTURE_PROFILE,
    serves: ["legacy", "modern"],
    stdio: modernStdioCommand(false),
    http: () => startModernHttp(false),
  },
};

/** The era each client speaks through the hub: `auto` meets the agent, which always answers `server/discover`. */
const HUB_ERA: Record<ClientKind, Era> = {
  "sdk-v1": "legacy",
  "v2-legacy": "legacy",
  "v2-auto": "modern",
  "v2-2026": "modern",
};

/** The steps every cell runs today. */
const BASE_STEPS: Step[] = ["lists", "call", "progress", "resource", "prompt", "cancellation"];

/**
 * The optional steps, per pairing of the client's era with the era the server serves it in.
 * To enable a step once its feature is on main, flip its `false` to `true` (one line each).
 */
const OPTIONAL_STEPS: Record<
  "elicitation" | "listChanged" | "cancelSeen",
  Record<"sameEra" | "modernToLegacy" | "legacyToModern", boolean>
> = {
  elicitation: {
    // Legacy: the server's request streams to the client over the hub's SSE; modern: input_required results pass through.
    sameEra: true,
    // A legacy server's elicitation/create → input_required rounds for a modern client (agent/bridge/mrtr.ts).
    modernToLegacy: true,
    // A modern server's input_required → elicitation/create on a legacy client's stream (legacy-rounds.ts).
    legacyToModern: true,
  },
  cancelSeen: {
    // Only the SDK v2 fixture can tell whether it saw a call cancelled (server-everything cannot), so a
    // modern client of a 2025 server has no cell for it.
    sameEra: true,
    modernToLegacy: false,
    legacyToModern: true,
  },
  listChanged: {
    // A modern client's subscriptions/listen, a 2025 client's GET stream (or stdio), to a server of its own era.
    sameEra: true,
    // Bridged (a listen → the legacy GET stream / resources/subscribe, agent/bridge/listen.ts; tested with a
    // resource update in test/agent/era-listen.test.ts), but flipping this adds no cell by itself: no 2025 server in the matrix can announce a change on demand
    // (server-everything cannot; see `announces`), so give the matrix one (e.g. an SDK v1 server with an
    // `announce` tool calling sendToolListChanged()) or a resource-updated step for server-everything.
    modernToLegacy: false,
    // The legacy GET stream → a listen on the 2026-only server (agent/bridge/legacy-streams.ts).
    legacyToModern: true,
  },
};

/*
 * Not gaps of Airlock's: SDK v2's HTTP handler serves 2025 clients statelessly only (`legacy:
 * "stateless"`), so the dual-era fixture over HTTP can neither send a 2025 client a request (its
 * elicitation fails directly as it does through the hub) nor reach it with a change (no GET
 * stream); stepsFor leaves both out there.
 */

/**
 * A modern client's subscriptions/listen to a stdio server (2026-only or dual-era): the stdio
 * backend routes the listen's notifications by their subscriptionId stamp, so the
 * acknowledgement and the changes reach the listen through the agent.
 */
const MODERN_LISTEN_OVER_STDIO = true;

/** Whether `server` can announce a tools list change to a client it serves in `era` over `leg`. */
function announces(server: ServerName, leg: Leg, era: Era): boolean {
  if (!SERVERS[server].profile.announce) return false;
  if (leg === "stdio") return era === "legacy" || MODERN_LISTEN_OVER_STDIO;
  return era === "modern";
}

function pairing(kind: ClientKind, server: ServerName): "sameEra" | "modernToLegacy" | "legacyToModern" {
  const client = HUB_ERA[kind];
  if (SERVERS[server].serves.includes(client)) return "sameEra";
  return client === "modern" ? "modernToLegacy" : "legacyToModern";
}

function stepsFor(kind: ClientKind, server: ServerName, leg: Leg): Step[] {
  const steps = [...BASE_STEPS];
  const pair = pairing(kind, server);
  /** The era the server serves this client in. */
  const served = pair === "sameEra" ? HUB_ERA[kind] : pair === "legacyToModern" ? "modern" : "legacy";
  if (OPTIONAL_STEPS.elicitation[pair] && !(server === "dual" && leg === "http" && served === "legacy"))
    steps.push("elicitation");
  if (OPTIONAL_STEPS.cancelSeen[pair] && SERVERS[server].profile.cancelled) steps.push("cancelSeen");
  if (OPTIONAL_STEPS.listChanged[pair] && announces(server, leg, served)) steps.push("listChanged");
  return steps;
}

function worksDirectly(kind: ClientKind, server: ServerName): boolean {
  const serves = SERVERS[server].serves;
  if (kind === "v2-auto") return true; // it falls back to 2025 when the server has no server/discover
  return serves.includes(HUB_ERA[kind]);
}

let hub: TestHub;
let agent: HubAgent;
const http = {} as Record<ServerName, RunningServer>;
const names = Object.keys(SERVERS) as ServerName[];
const channel = (server: ServerName, leg: Leg) => `${server}-${leg}`;
/** The hub's MCP URL of each channel. */
const urls = new Map<string, URL>();
/** Direct runs, shared by the cells that compare with the same one. */
const directRuns = new Map<string, Promise<ScriptRun>>();
/** Per-cell time through the hub, printed at the end. */
const timings: string[] = [];

function direct(server: ServerName, leg: Leg): Target {
  return leg === "http" ? { url: new URL(http[server].url), token: null } : { argv: SERVERS[server].stdio };
}

function directRun(kind: ClientKind, server: ServerName, leg: Leg, steps: Step[]): Promise<ScriptRun> {
  const key = JSON.stringify([kind, server, leg, steps]);
  let run = directRuns.get(key);
  if (!run) {
    run = runScript(kind, direct(server, leg), SERVERS[server].profile, steps);
    directRuns.set(key, run);
  }
  return run;
}

before(async () => {
  const started = await Promise.all([
    startTestHub({ tunnels: 1, settings: { livenessMs: 5000 } }),
    ...names.map((name) => SERVERS[name].http()),
  ]);
  hub = started[0];
  names.forEach((name, i) => {
    http[name] = started[i + 1] as RunningServer;
  });
  const tunnel = hub.tunnel();
  agent = await startHubAgent(hub.url, tunnel, [
    ...names.flatMap((name) => [
      "--control-plane.poll-channel",
      channel(name, "stdio"),
      "--control-plane.poll-channel",
      channel(name, "http"),
    ]),
    ...names.flatMap((name) => [
      "--mcp.command",
      `channel=${channel(name, "stdio")},command=${SERVERS[name].stdio.join(" ")}`,
      "--mcp.server-url",
      `channel=${channel(name, "http")},url=${http[name].url}`,
    ]),
  ]);
  for (const name of names)
    for (const leg of ["stdio", "http"] as const) urls.set(channel(name, leg), hub.mcpUrl(tunnel, channel(name, leg)));
});

after(async () => {
  if (timings.length > 0) process.stderr.write(`eras-matrix per-cell time through the hub:\n${timings.join("\n")}\n`);
  await agent?.stop("SIGTERM");
  await Promise.all([hub?.close(), ...names.map((name) => http[name]?.close())]);
});

for (const server of names) {
  for (const leg of ["stdio", "http"] as const) {
    describe(`${server} server over ${leg}`, () => {
      for (const kind of CLIENT_KINDS.filter((k) => !worksDirectly(k, server))) {
        test(`${kind} fails against it directly (the spec's incompatible pair)`, async () => {
          await assert.rejects(
            runScript(kind, direct(server, leg), SERVERS[server].profile, ["call"]),
            /-32022|Unsupported protocol version|did not offer pinned protocol version/,
          );
        });
      }

      for (const kind of CLIENT_KINDS) {
        const steps = stepsFor(kind, server, leg);
        const reference = worksDirectly(kind, server) ? kind : server === "everything" ? "sdk-v1" : "v2-2026";
        test(`${kind} → hub → agent → ${server}/${leg}: ${steps.join(", ")} equal to ${reference} calling it directly`, async () => {
          const started = performance.now();
          const through = await runScript(
            kind,
            { url: urls.get(channel(server, leg))!, token: CLIENT_TOKEN },
            SERVERS[server].profile,
            steps,
          );
          timings.push(
            `  ${kind.padEnd(9)} ${channel(server, leg).padEnd(16)} ${(performance.now() - started).toFixed(0)} ms`,
          );
          assert.equal(through.era, HUB_ERA[kind], "the era the client ends up in through the hub");
          // Whether the server saw the cancel is checked as is: calling the dual-era fixture over HTTP
          // directly, a 2025 client's notifications/cancelled cannot reach the stateless call it names,
          // while through the agent the call's own HTTP request is aborted.
          const { cancelSeen, ...compared } = through.transcript;
          if (steps.includes("cancelSeen")) assert.deepEqual(cancelSeen, { outcome: "cancelled", serverSawIt: true });
          const straight = await directRun(
            reference,
            server,
            leg,
            steps.filter((step) => step !== "cancelSeen"),
          );
          assert.deepEqual(compared, straight.transcript);
        });
      }
    });
  }
}
