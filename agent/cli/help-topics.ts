/**
 * `airlock help <topic>`: tunnel-client's topic names (quickstart, samples, doctor, oauth,
 * plugin, troubleshooting), in Airlock's words, so `help <topic>` in a runbook still answers.
 */
export const HELP_TOPICS: Readonly<Record<string, string>> = {
  quickstart: `Quickstart:

Airlock runs the long-lived agent that connects a local or private MCP server to the
OpenAI control plane (or an Airlock hub) over an outbound long poll. Once running it
serves /healthz, /readyz, /metrics and the admin UI at /ui on health.listen_addr.

First run, no MCP server of your own yet (a built-in stub answers on channel main):
  airlock run --embedded-mcp-stub --control-plane.tunnel-id tunnel_... \\
    --control-plane.api-key env:CONTROL_PLANE_API_KEY --health.listen-addr 127.0.0.1:0 \\
    --health.url-file /tmp/airlock-health.url

With your server:
  airlock init --sample sample_mcp_remote_no_auth --profile prod --tunnel-id tunnel_... \\
    --mcp-server-url https://mcp.internal.example.com/mcp
  airlock doctor --profile prod --explain
  airlock run --profile prod

Values: the tunnel id and runtime API key come from the tunnel's page in the OpenAI
platform settings (or: airlock admin tunnels create --name N --description D --workspace-id W
with OPENAI_ADMIN_KEY; on an Airlock hub add --hub URL --token env:NAME, docs/admin.md);
organization-backed tunnels also need --control-plane.organization-id.

In the background, supervised (tunnel-client's runtimes):
  airlock runtimes connect --alias prod --tunnel-id tunnel_... --mcp-server-url https://mcp.internal.example.com/mcp
  airlock runtimes status prod           stopped, starting, healthy or ready
  airlock runtimes stop prod ; airlock runtimes rm prod

Without a tunnel yet (a local control plane and agent; an MCP URL for local tests):
  airlock dev proxy --mcp-server-url http://127.0.0.1:3000/mcp
`,
  samples: `Samples:

  airlock profiles samples list          the built-in samples (tunnel-client's four and Airlock's own)
  airlock profiles samples show NAME     print one
  airlock init --sample NAME --profile P ...   write it as a profile
Profiles are tunnel-client's YAML (config_version 1); every tunnel-client profile loads unchanged.
`,
  doctor: `Doctor:

  airlock doctor --profile P [--explain] [--json]
checks the configuration and what it depends on without taking work: it never polls a live
tunnel (it proves the key with GET /v1/tunnels/{id}) and never starts stdio servers unless
asked. Opt-ins: --probe-mcp starts stdio servers for an initialize handshake; --poll does one
real poll (limit=1) and can take one user's command. --offline skips the control plane.
Exit 0 when nothing failed, 2 when a check failed.
`,
  oauth: `OAuth:

Airlock forwards Authorization and WWW-Authenticate between the AI product and your MCP server
unchanged. At start it discovers the main HTTP MCP server's OAuth metadata as tunnel-client
does (a 401 WWW-Authenticate probe, RFC 9728 protected-resource metadata, RFC 8414
authorization-server metadata; mcp.discovery_extra_headers go on those requests only): /readyz
says "oauth discovery pending" until it settles, and the started line lists the
oauth_discovery_urls. The oauth_discovery command is answered with the metadata. Discovered
private hosts (harpoon.hosts_include_*) become Harpoon targets oauth-<role>-0, and Harpoon's
answers name them harpoon://<label>. Discovery only contacts the MCP server's origin,
mcp.oauth_trusted_origins and hosts named by hosts_include_suffix/_regex. See docs/harpoon.md.
`,
  plugin: `Plugin / Codex:

tunnel-client's Codex integration (codex ..., plugin ...) is out of scope for Airlock: there is
no Codex plugin, assistant or installer. Run the agent with \`airlock run\` and add the tunnel
as a connector in the product instead.
`,
  troubleshooting: `Troubleshooting:

Start with the local operator surfaces:
  airlock health --url-file /tmp/airlock-health.url      (add --strict to include the control plane)
  curl -fsS http://127.0.0.1:8080/healthz                 live
  curl -fsS http://127.0.0.1:8080/readyz                  ready, or why not (backends only, as tunnel-client)
  curl -fsS 'http://127.0.0.1:8080/readyz?strict=1'       JSON: control plane and every backend
  open http://127.0.0.1:8080/ui

Common problems:
  - 401/403 on polls: the log line names the missing permission; the agent retries with backoff (<= 10 s).
  - tunnel_active_organization_required: set --control-plane.organization-id / CONTROL_PLANE_ORGANIZATION_ID.
  - Behind a proxy: HTTP_PROXY/HTTPS_PROXY/NO_PROXY are honoured, or set http_proxy per route.
  - "mcp probe failed" on /readyz: the backend named there is down; the admin UI shows its stderr.
  - A failed call's log line says where it failed: failure_source (connect, dns, tls, timeout,
    target_http, transport_closed, protocol, client_internal) and transport_error_kind.
  - A runtime started with \`airlock runtimes connect\` logs to <state dir>/logs/<alias>.log;
    \`airlock runtimes status A --json\` shows its pid, health URL and profile.
  - cloudflared: Airlock runs none and needs none (\`airlock cloudflared version\`).
  - airlock doctor --profile P --explain says what each failed check means and how to fix it.
`,
};

/** The topic's text, or a sentence listing the topics. */
export function helpTopic(name: string): { text: string } | { error: string } {
  const text = HELP_TOPICS[name.trim()];
  if (text !== undefined) return { text };
  return { error: `unknown help topic "${name}"; available topics: ${Object.keys(HELP_TOPICS).sort().join(", ")}` };
}
