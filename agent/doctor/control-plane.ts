/**
 * Doctor's control-plane checks. By default doctor never takes work: it reads the tunnel's
 * metadata (`GET /v1/tunnels/{id}`), which proves the endpoint is reachable and the key has
 * tunnel *read* permission, and says so. Only a poll proves the key may *use* the tunnel, and a
 * poll on a live tunnel can take a real user's command, so it runs only with `--poll`. That
 * poll asks for one command with `timeout_ms=1`, so it holds nothing and takes at most one.
 *
 * A command that arrives anyway is not executed (doctor has no business calling the MCP
 * server) and not answered: answering would settle it for good with an error, while an
 * unanswered command only waits out its `response_timeout`, after which the control plane
 * re-queues or fails it. Doctor reports its request id as a WARN so nobody wonders where
 * it went.
 *
 * The `Date` header of these answers also checks the local clock.
 */
import { createHttpClient, type FetchLike } from "../runtime/http-client.ts";
import { createControlPlaneClient, describeControlPlaneFailure, ERROR_MITIGATIONS } from "../control-plane/client.ts";
import type { ControlPlaneClient, ControlPlaneFailure } from "../control-plane/client.ts";
import type { AgentConfig } from "../config/types.ts";
import { HARPOON_CHANNEL, polled } from "../config/routes.ts";
import { encodeServerInfo, failureMessage, failureStatus, type DecodedCommand } from "../../shared/protocol/index.ts";
import { isRequest } from "../../shared/jsonrpc.ts";
import { VERSION } from "../version.ts";
import { check } from "./types.ts";
import type { Check } from "./types.ts";

export interface ControlPlaneCheckOptions {
  fetch?: typeof fetch;
  /** Wall clock, epoch ms. */
  now?: () => number;
  timeoutMs: number;
  /** Clock difference that earns a WARN, ms (default 60 000). */
  maxClockSkewMs?: number;
  /** Also poll once (limit=1, timeout_ms=1) to prove tunnel use permission; can take a live command. */
  poll?: boolean;
}

const WHY = {
  reachable:
    "The agent only dials out: every poll and response goes to this URL. A proxy or firewall that blocks it leaves the tunnel dead.",
  poll: "Polling needs a runtime API key with tunnel use permission for this tunnel; a key that can read the tunnel may still be refused a poll.",
  key: "The agent authenticates every call with this key. Reading the tunnel's metadata proves it is accepted and may read this tunnel; polling additionally needs tunnel use permission.",
  clock:
    "Command deadlines (response_timeout) are relative, but TLS certificates and signed tokens need a roughly correct clock; a large offset also confuses logs.",
};

/** The channels and affinity `run` declares in `X-Tunnel-MCP-Server-Info`: served and polled. */
export function declaredChannels(config: AgentConfig): Array<{ name: string; procAffinity: boolean }> {
  const channels = config.routes.map((route) => ({
    name: route.channel,
    procAffinity: route.backends.some((b) => b.transport === "stdio"),
  }));
  if (config.harpoon.targets.length > 0) channels.push({ name: HARPOON_CHANNEL, procAffinity: true });
  return channels.filter((channel) => polled(channel.name, config.controlPlane.pollChannels));
}

export async function checkControlPlane(config: AgentConfig, options: ControlPlaneCheckOptions): Promise<Check[]> {
  const cp = config.controlPlane;
  const skews: number[] = [];
  const { http, client } = doctorClient(config, options, skews);
  const where = client.tunnelUrl;
  const proxyNote = cp.httpProxy ? " (through the configured proxy)" : "";
  const checks: Check[] = [];

  const metadata = await client.getTunnel();
  if (metadata.kind === "network_error" || metadata.kind === "aborted") {
    const text = metadata.kind === "aborted" ? "aborted" : metadata.message;
    checks.push(
      check("control_plane_reachable", "FAIL", `${where}: ${text}${proxyNote}`, WHY.reachable, [
        "check control_plane.base_url (a host root such as https://api.openai.com) and url_path",
        "allow outbound HTTPS to that host (proxy: http_proxy / HTTPS_PROXY; private CA: ca_bundle)",
        "rerun: airlock doctor",
      ]),
    );
    checks.push(check("control_plane_poll", "SKIP", "blocked by control_plane_reachable", WHY.poll));
    checks.push(check("clock", "SKIP", "no answer from the control plane to compare with", WHY.clock));
    await http.close();
    return checks;
  }
  const tunnelName = metadata.kind === "ok" ? ` tunnel "${metadata.tunnel.name}"` : "";
  const status =
    metadata.kind === "ok"
      ? "200"
      : metadata.kind === "http_error"
        ? `${metadata.status}`
        : `${metadata.status} (unexpected body)`;
  checks.push(
    check(
      "control_plane_reachable",
      "PASS",
      `${where} answered HTTP ${status}${tunnelName}${proxyNote}`,
      WHY.reachable,
    ),
  );

  checks.push(
    metadata.kind === "ok"
      ? check(
          "control_plane_api_key_accepted",
          "PASS",
          `the key read tunnel "${metadata.tunnel.name}" (GET ${where} → 200): proves tunnel read permission; tunnel use (poll) permission is proven by run's first poll, or now with --poll`,
          WHY.key,
        )
      : controlPlaneFailure("control_plane_api_key_accepted", metadata, config),
  );
  checks.push(
    options.poll
      ? await pollCheck(client, config, options)
      : check(
          "control_plane_poll",
          "SKIP",
          "not run: a poll on a live tunnel can take a real user's command; add --poll to prove tunnel use permission with one poll (limit=1, timeout_ms=1)",
          WHY.poll,
        ),
  );
  checks.push(clockCheck(skews, options.maxClockSkewMs ?? 60_000));
  await http.close();
  return checks;
}

/**
 * The control-plane client `run` would use, with the server's `Date` against our clock pushed
 * to `skews` as each answer arrives (for the clock check).
 */
function doctorClient(config: AgentConfig, options: ControlPlaneCheckOptions, skews: number[]) {
  const now = options.now ?? Date.now;
  const cp = config.controlPlane;
  // The same route `run` takes: the configured proxy, CA bundle and mTLS certificate.
  const http = createHttpClient({
    ...(cp.httpProxy ? { proxy: cp.httpProxy } : {}),
    ...(config.caBundle ? { caFile: config.caBundle } : {}),
    ...(cp.clientCert ? { clientCert: cp.clientCert } : {}),
    ...(cp.clientKey ? { clientKey: cp.clientKey } : {}),
  });
  const doFetch: FetchLike = options.fetch ?? http.fetch;
  // Record the server's Date against our clock as each answer arrives.
  const recording: FetchLike = async (input, init) => {
    const response = await doFetch(input, init);
    const date = Date.parse(response.headers.get("date") ?? "");
    if (!Number.isNaN(date)) skews.push(now() - date);
    return response;
  };
  const client = createControlPlaneClient({
    baseUrl: cp.baseUrl,
    urlPath: cp.urlPath,
    tunnelId: cp.tunnelId,
    apiKey: cp.apiKey,
    clientName: "airlock",
    clientVersion: VERSION,
    serverInfo: encodeServerInfo(declaredChannels(config)),
    extraHeaders: cp.extraHeaders,
    ...(cp.organizationId ? { organizationId: cp.organizationId } : {}),
    requestTimeoutMs: options.timeoutMs,
    fetch: recording,
  });
  return { http, client };
}

/** `--poll`: one poll (limit=1, timeout_ms=1) proves tunnel use permission; commands it takes are refused. */
async function pollCheck(
  client: ReturnType<typeof createControlPlaneClient>,
  config: AgentConfig,
  options: ControlPlaneCheckOptions,
): Promise<Check> {
  const cp = config.controlPlane;
  const poll = await client.poll({
    limit: 1,
    timeoutMs: 1,
    guardrailMs: options.timeoutMs,
    ...(cp.pollChannels ? { channels: cp.pollChannels } : {}),
  });
  if (poll.kind === "empty")
    return check("control_plane_poll", "PASS", `the key may poll this tunnel (HTTP ${poll.status})`, WHY.poll);
  if (poll.kind === "commands") {
    const ids = poll.commands.map((c) => (c.kind === "command" ? c.command.request_id : (c.requestId ?? "?")));
    await refuseTaken(client, poll.commands);
    return check(
      "control_plane_poll",
      "WARN",
      `the key may poll this tunnel, and the poll took ${poll.commands.length} waiting command(s) (${ids.join(", ")}); doctor answered them with an error instead of leaving their callers waiting`,
      WHY.poll,
      [
        "those MCP callers saw a -32603 error and may retry; doctor never runs an MCP request",
        "someone is already using this tunnel: leave out --poll when the tunnel is live (the metadata read still proves the key)",
      ],
    );
  }
  return controlPlaneFailure("control_plane_poll", poll, config);
}

/** A refused or failed metadata read or poll, as the check `id`, with what to do. */
function controlPlaneFailure(
  id: "control_plane_poll" | "control_plane_api_key_accepted",
  failure: ControlPlaneFailure,
  config: AgentConfig,
): Check {
  const why = id === "control_plane_poll" ? WHY.poll : WHY.key;
  const verb = id === "control_plane_poll" ? "the poll" : "reading the tunnel";
  // The mitigation goes in `fix`, not twice into the summary.
  const text =
    failure.kind === "http_error"
      ? `HTTP ${failure.status}${failure.error?.code ? ` ${failure.error.code}` : ""}${failure.error?.message ? ` — ${failure.error.message}` : ""}`
      : describeControlPlaneFailure(failure);
  if (failure.kind === "http_error") {
    const code = failure.error?.code ?? undefined;
    if (failure.status === 401 || failure.status === 403) {
      return check(id, "FAIL", `the control plane refused ${verb}: ${text}`, why, [
        code && ERROR_MITIGATIONS[code]
          ? ERROR_MITIGATIONS[code]!
          : "use a runtime API key (CONTROL_PLANE_API_KEY) whose principal has tunnel use permission on this tunnel",
        `check that control_plane.tunnel_id (${config.controlPlane.tunnelId}) is the tunnel the key belongs to`,
        "rerun: airlock doctor",
      ]);
    }
    if (failure.status === 404 || failure.status === 400) {
      return check(id, "FAIL", `the control plane does not know this tunnel: ${text}`, why, [
        "check control_plane.tunnel_id against the tunnel's settings, and base_url/url_path against the endpoint you were given",
      ]);
    }
    if (failure.status === 429 || failure.status >= 500) {
      return check(
        id,
        "WARN",
        `the control plane is busy or unavailable, so the key could not be confirmed: ${text}`,
        why,
        ["`run` retries with backoff; rerun doctor later to confirm the key"],
      );
    }
  }
  return check(id, "FAIL", text, why, [
    "check control_plane.base_url and url_path: they must point at a tunnel control plane",
    "rerun: airlock doctor",
  ]);
}

function clockCheck(skews: number[], maxSkewMs: number): Check {
  if (skews.length === 0)
    return check("clock", "SKIP", "the control plane sent no Date header to compare with", WHY.clock);
  // The header has one-second resolution and is stamped before the answer travels back.
  const skew = skews.reduce((a, b) => (Math.abs(b) < Math.abs(a) ? b : a));
  const seconds = Math.round(Math.abs(skew) / 1000);
  const direction = skew > 0 ? "ahead of" : "behind";
  if (Math.abs(skew) > maxSkewMs) {
    return check("clock", "WARN", `the local clock is ${seconds}s ${direction} the control plane's`, WHY.clock, [
      "enable time synchronisation (systemd-timesyncd, chrony or ntpd) on this host",
    ]);
  }
  return check("clock", "PASS", `within ${Math.max(1, seconds)}s of the control plane's clock`, WHY.clock);
}

/**
 * Commands a doctor poll happened to take: answered at once with a synthesised failure
 * (a notification with a 503 acknowledgement) so their callers are not left hanging until
 * a deadline. Doctor never forwards them to a backend.
 */
async function refuseTaken(
  client: Pick<ControlPlaneClient, "postResponse">,
  commands: readonly DecodedCommand[],
): Promise<void> {
  const failure = { source: "client_internal" } as const;
  await Promise.all(
    commands.map(async (decoded) => {
      if (decoded.kind !== "command") return;
      const command = decoded.command;
      const base = { request_id: command.request_id, ...(command.channel ? { channel: command.channel } : {}) };
      const payload =
        command.command_type === "session_termination"
          ? { ...base, resp_code: 503, resp_type: "session_termination_response" as const }
          : command.command_type === "oauth_discovery"
            ? { ...base, resp_code: 503, resp_type: "oauth_discovery_response" as const }
            : isRequest(command.jsonrpc)
              ? {
                  ...base,
                  resp_json: failureMessage(command.jsonrpc.id, failure),
                  resp_code: failureStatus(failure),
                  resp_type: "jsonrpc_response" as const,
                }
              : { ...base, resp_code: 503, resp_type: "notify_ack" as const };
      await client.postResponse(payload, command.shard_token);
    }),
  );
}
