/**
 * Running one accepted command against its channel's backend and posting what it ended
 * with: a JSON-RPC exchange, a session termination, or a standalone stream (the open
 * signal, then its messages, then how it ended).
 */
import { AIRLOCK_STREAM_OPEN } from "../../shared/protocol/index.ts";
import { headerValue } from "../../shared/protocol/index.ts";
import type { FailureSpec, HeaderMap, JsonRpcCommand, StreamOpenCommand } from "../../shared/protocol/index.ts";
import type { JsonRpcMessage } from "../../shared/jsonrpc.ts";
import type { Logger } from "../../shared/log.ts";
import { ATTR, SPAN, withTraceHeaders } from "../../shared/telemetry/index.ts";
import type { Backend, ExchangeResult, StreamResult, TerminationResult } from "../backends/types.ts";
import type { Tracing } from "../telemetry/tracing.ts";
import type { CommandOutcome } from "../events.ts";
import type { FinalAnswer, Poster, PostOutcome, ResponseStream } from "../control-plane/poster.ts";
import {
  exchangeAnswer,
  oauthDiscoveryAnswer,
  STREAM_ENDED,
  streamAnswer,
  terminationAnswer,
  unroutable,
} from "./answers.ts";
import type { InternalFailure } from "./answers.ts";
import { abortedOutcome, baseReport, commandLogFields, failureLogFields } from "./command.ts";
import type { Entry, Report } from "./command.ts";

/** What running a command needs from the dispatcher. */
export interface ExecuteDeps {
  /** The backend serving a (normalised) channel, or undefined when none does. */
  backends: (channel: string) => Backend | undefined;
  poster: Poster;
  log: Logger;
  /** Ask a stream's backend side to end; that it ended is still posted. */
  endStream(entry: Entry, why: string): void;
  tracing: Tracing;
  /** One OAuth discovery run of the main MCP server; absent when its main channel has no HTTP server. */
  oauthDiscovery?: OAuthDiscoveryRun;
}

/** What an `oauth_discovery` command needs: the metadata found, or why none was. */
export type OAuthDiscoveryRun = () => Promise<{
  metadata?: { document: Record<string, unknown>; status: number; headers: Headers };
  error?: string;
}>;

/** The headers the backend gets: the command's, with the execution span as `traceparent` when it is traced. */
function backendHeaders(entry: Entry): HeaderMap {
  const headers = entry.command.headers ?? {};
  return entry.trace?.execute ? withTraceHeaders(headers, entry.trace.execute.carrier) : headers;
}

/** The backend serving the command's channel; with tracing on, the decision is a span. */
function route(deps: ExecuteDeps, entry: Entry): Backend | undefined {
  const backend = entry.channel === undefined ? undefined : deps.backends(entry.channel);
  const parent = entry.trace?.execute?.carrier;
  if (parent) {
    const span = deps.tracing.start(SPAN.route, {
      parent,
      attributes: {
        [ATTR.channel]: entry.channel ?? String(entry.command.channel),
        ...(backend ? { [ATTR.backend]: backend.name, [ATTR.backendTransport]: backend.transport } : {}),
      },
    });
    if (!backend) span.fail("unroutable");
    span.end();
  }
  return backend;
}

/** The command's `X-Request-Id`, which the response post echoes as `X-Client-Request-Id`. */
function clientRequestId(headers: HeaderMap | null | undefined): { clientRequestId?: string } {
  const value = headerValue(headers, "X-Request-Id");
  return value ? { clientRequestId: value } : {};
}

/** Run the command and post its answer; the report says how it ended. */
export async function execute(deps: ExecuteDeps, entry: Entry): Promise<Report> {
  const { command, posting } = entry;
  if (posting.signal.aborted) return baseReport(entry, abortedOutcome(entry));
  const stream = deps.poster.open({
    requestId: command.request_id,
    // An invalid name is not echoed: the control plane would reject the post with invalid_channel_format.
    ...(entry.channel === undefined ? {} : { channel: entry.channel }),
    shardToken: command.shard_token,
    ...clientRequestId(command.headers),
    logFields: commandLogFields(command),
    ...(entry.deadline === undefined ? {} : { deadline: entry.deadline }),
    signal: posting.signal,
  });
  switch (command.command_type) {
    case "session_termination":
      return terminate(deps, entry, stream);
    case AIRLOCK_STREAM_OPEN:
      return relayStream(deps, entry, command, stream);
    case "oauth_discovery":
      return discoverOAuth(deps, entry, stream);
    default:
      return exchange(deps, entry, command, stream);
  }
}

async function deliverFinal(
  deps: ExecuteDeps,
  entry: Entry,
  stream: ResponseStream,
  answer: FinalAnswer,
  success: CommandOutcome,
  backend?: Backend,
  failure?: FailureSpec,
): Promise<Report> {
  const outcome: PostOutcome = entry.posting.signal.aborted ? "aborted" : await stream.final(answer);
  const fields = baseReport(
    entry,
    outcome === "ok" ? success : outcome === "aborted" ? abortedOutcome(entry) : "undelivered",
  );
  if (backend) fields.backend = backend.name;
  if (outcome !== "aborted") fields.respCode = answer.status;
  if (outcome === "ok") {
    const extra = {
      ...(failure ? failureLogFields(failure) : {}),
      ...(stream.tunnelRequestId ? { tunnel_request_id: stream.tunnelRequestId } : {}),
    };
    logPosted(deps.log, entry, fields.outcome, answer.status, extra);
  }
  return fields;
}

/**
 * tunnel-client's one line per command once its answer is posted (`pkg/dispatcher/internal/processor.go`),
 * same messages, so log pipelines counting them keep working. Streams are Airlock's own and log nothing here.
 * `extra` is what only some of its lines carry: the failure fields and `tunnel_request_id` (the post's id at
 * the service), which tunnel-client puts on its error lines and the session-termination line.
 */
function logPosted(
  log: Logger,
  entry: Entry,
  outcome: CommandOutcome,
  status: number,
  extra: Record<string, unknown>,
): void {
  const { command } = entry;
  // No backend was asked: the poster's answer names the channel, there is no upstream to blame.
  if (outcome === "unroutable") return;
  const fields = commandLogFields(command);
  const channel = entry.channel ?? String(command.channel);
  if (command.command_type === "session_termination") {
    if (outcome === "ok" && status < 400)
      log.info("dispatcher terminated MCP session and posted response to control plane", {
        ...fields,
        status_code: status,
        channel,
        ...extra,
      });
    else
      log.warn("dispatcher received MCP session termination upstream error; posted response to control plane", {
        ...fields,
        status_code: status,
        channel,
        ...extra,
      });
    return;
  }
  if (command.command_type !== "jsonrpc") return;
  const method = "method" in command.jsonrpc ? command.jsonrpc.method : undefined;
  if (outcome !== "ok")
    log.warn("dispatcher received MCP upstream error; posted error response to control plane", {
      ...fields,
      status_code: status,
      channel,
      ...(typeof method === "string" ? { rpc_method: method } : {}),
      ...extra,
    });
  else if (!("id" in command.jsonrpc)) log.info("dispatcher acknowledged notification with control plane", fields);
  else log.info("dispatcher forwarded command to MCP server", fields);
}

/**
 * Run `work` on the channel's backend and post its answer. A backend that throws gets a
 * `client_internal` failure; once posting has stopped, or when `toAnswer` has nothing to
 * post (the client cancelled the request), nothing is posted.
 */
async function viaBackend<R extends ExchangeResult | TerminationResult | StreamResult>(
  deps: ExecuteDeps,
  entry: Entry,
  stream: ResponseStream,
  id: unknown,
  work: (backend: Backend, signal: AbortSignal) => Promise<R>,
  toAnswer: (result: R | InternalFailure) => FinalAnswer | undefined,
): Promise<Report> {
  const backend = route(deps, entry);
  if (!backend) return deliverFinal(deps, entry, stream, unroutable(entry, id), "unroutable");
  const signal = entry.controller.signal;
  let result: R | InternalFailure;
  try {
    result = await work(backend, signal);
  } catch (error) {
    if (!signal.aborted)
      deps.log.error("backend threw instead of returning a failure", {
        ...commandLogFields(entry.command),
        backend: backend.name,
        error,
      });
    result = { kind: "failure", failure: { source: "client_internal" } };
  }
  if (entry.posting.signal.aborted) return { ...baseReport(entry, abortedOutcome(entry)), backend: backend.name };
  const answer = toAnswer(result);
  if (!answer) {
    deps.log.debug("the client cancelled the request; nothing is posted for it", commandLogFields(entry.command));
    return { ...baseReport(entry, "cancelled"), backend: backend.name };
  }
  const failure = result.kind === "failure" ? result.failure : undefined;
  return deliverFinal(deps, entry, stream, answer, failure ? "failure" : "ok", backend, failure);
}

/** `oauth_discovery`: only the main channel answers it, and only when served over HTTP (as tunnel-client). */
async function discoverOAuth(deps: ExecuteDeps, entry: Entry, stream: ResponseStream): Promise<Report> {
  const channel = entry.channel ?? String(entry.command.channel);
  if (channel !== "main" || !deps.oauthDiscovery)
    return deliverFinal(
      deps,
      entry,
      stream,
      oauthDiscoveryAnswer(`unsupported channel ${JSON.stringify(channel)}`),
      "unroutable",
    );
  let result: Awaited<ReturnType<OAuthDiscoveryRun>>;
  try {
    result = await deps.oauthDiscovery();
  } catch (error) {
    result = { error: error instanceof Error ? error.message : String(error) };
  }
  if (entry.posting.signal.aborted) return baseReport(entry, abortedOutcome(entry));
  const answer = oauthDiscoveryAnswer(result);
  if (!result.metadata)
    deps.log.error("failed to fetch OAuth discovery ProtectedResourceMetaData", { error: result.error });
  const report = await deliverFinal(deps, entry, stream, answer, result.metadata ? "ok" : "failure");
  if (report.outcome === "ok")
    deps.log.info("dispatcher delivered OAuth discovery response to control plane", {
      ...commandLogFields(entry.command),
      status_code: answer.status,
    });
  return report;
}

function exchange(deps: ExecuteDeps, entry: Entry, command: JsonRpcCommand, stream: ResponseStream): Promise<Report> {
  const message: JsonRpcMessage = command.jsonrpc;
  // A notification has no id; its error answer uses null, as JSON-RPC does when the id is unknown.
  const id = "id" in message ? message.id : null;
  const work = (backend: Backend, signal: AbortSignal) =>
    backend.exchange({
      message,
      headers: backendHeaders(entry),
      signal,
      notify: (note, headers) => {
        if (signal.aborted) return;
        // A listen (it runs as a stream) whose messages the control plane no longer takes ends, as a stream does.
        if (entry.state === "streaming" && stream.notifiesSkipped)
          deps.endStream(entry, "the control plane no longer takes its messages");
        else stream.notify(note, headers);
      },
    });
  return viaBackend(deps, entry, stream, id, work, (result) => exchangeAnswer(result, id));
}

function terminate(deps: ExecuteDeps, entry: Entry, stream: ResponseStream): Promise<Report> {
  const work = (backend: Backend, signal: AbortSignal) => backend.terminateSession(backendHeaders(entry), signal);
  return viaBackend(deps, entry, stream, null, work, terminationAnswer);
}

/**
 * Open the backend's standalone stream: the open signal (a notify without a message),
 * then its messages, then how it ended.
 */
function relayStream(
  deps: ExecuteDeps,
  entry: Entry,
  command: StreamOpenCommand,
  stream: ResponseStream,
): Promise<Report> {
  let opened = false;
  const work = async (backend: Backend, signal: AbortSignal): Promise<StreamResult> => {
    if (!backend.openStream) return { kind: "refused", status: 405, headers: {} };
    const result = await backend.openStream({
      headers: backendHeaders(entry),
      signal,
      opened: (headers) => {
        if (opened || signal.aborted) return;
        opened = true;
        stream.notify(undefined, headers);
      },
      notify: (message) => {
        if (!opened || signal.aborted) return;
        // A message the control plane would not take (404: it forgot the stream) ends it.
        if (stream.notifiesSkipped) deps.endStream(entry, "the control plane no longer takes its messages");
        else stream.notify(message);
      },
    });
    if (result.kind === "ended" && result.detail)
      deps.log.info("a backend's standalone stream broke", {
        ...commandLogFields(command),
        backend: backend.name,
        detail: result.detail,
      });
    return result;
  };
  return viaBackend(deps, entry, stream, null, work, (result) => (opened ? STREAM_ENDED : streamAnswer(result)));
}
