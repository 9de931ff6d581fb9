/**
 * The outcome record is written after the client has its answer (issue 13): the hub app
 * runs in-process with an injected hub that answers at once and an `AUDIT_LOG` whose
 * outcome append blocks until the test releases it. The answer must arrive while the
 * append is blocked, still shaped by the response checks, and the record must land
 * afterwards; a failed outcome append is counted.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createWorkerApp } from "../../relay/app.ts";
import type { AdmitEntry, AuditLogApi, OutcomeEntry } from "../../relay/audit/audit-service.ts";
import type { TunnelHubApi } from "../../relay/hub/hub-service.ts";
import type { SubmitRequest } from "../../relay/hub/tunnel-state.ts";
import { outcomeAppendFailures } from "../../relay/policy/enforce.ts";
import { sha256Hex } from "../../shared/audit/index.ts";
import { CLIENT_TOKEN, tunnelId } from "../support/hub.ts";

const TUNNEL = tunnelId(71);

/** An audit log that keeps what it is given; `settle` waits for `release()` (or fails with `failWith`). */
function blockingLog() {
  const requests: AdmitEntry[] = [];
  const outcomes: OutcomeEntry[] = [];
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let settleCalled!: () => void;
  const settleStarted = new Promise<void>((resolve) => {
    settleCalled = resolve;
  });
  let landed!: () => void;
  const outcomeLanded = new Promise<void>((resolve) => {
    landed = resolve;
  });
  const state = { failWith: undefined as Error | undefined };
  const log = {
    admit: async (entries: AdmitEntry[]) => {
      requests.push(...entries);
      return entries.map((entry) => entry.decision);
    },
    settle: async (entry: OutcomeEntry) => {
      settleCalled();
      await released;
      if (state.failWith) {
        landed();
        throw state.failWith;
      }
      outcomes.push(entry);
      landed();
    },
  } as unknown as AuditLogApi;
  const namespace = { idFromName: (name: string) => ({ name }), get: () => log };
  return { namespace, requests, outcomes, release, settleStarted, outcomeLanded, state };
}

/** A hub whose agent answers every call with `result` at once, and records what it was handed. */
function answeringHub(result: unknown) {
  const submitted: SubmitRequest[] = [];
  const hub = {
    submit: async (request: SubmitRequest) => {
      submitted.push(request);
      const id = (request.message as { id?: unknown } | undefined)?.id ?? null;
      return {
        first: {
          type: "final",
          respType: "jsonrpc_response",
          status: 200,
          headers: { "Content-Type": ["application/json"] },
          message: { jsonrpc: "2.0", id, result },
        },
      };
    },
    disconnected: async () => {},
  } as unknown as TunnelHubApi;
  return { hub, submitted };
}

async function envWith(namespace: unknown, policy?: string) {
  return {
    AIRLOCK_TUNNELS: JSON.stringify({
      [TUNNEL]: {
        agent_key_sha256: [await sha256Hex("agent-key-off-path")],
        client_token_sha256: [await sha256Hex(CLIENT_TOKEN)],
      },
    }),
    AUDIT_LOG: namespace,
    ...(policy ? { AIRLOCK_POLICY: policy } : {}),
  };
}

const call = (id: number, message = "hi") => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "echo", arguments: { message } },
});

function post(app: ReturnType<typeof createWorkerApp>, env: object, body: unknown): Promise<Response> {
  return Promise.resolve(
    app.request(
      `/v1/mcp/${TUNNEL}`,
      {
        method: "POST",
        headers: {
          Authorization: `Bearer ${CLIENT_TOKEN}`,
          "Content-Type": "application/json",
          Accept: "application/json, text/event-stream",
        },
        body: JSON.stringify(body),
      },
      env,
    ),
  );
}

/**
 * The answer, if it arrives within some turns of the event loop while the outcome append
 * is blocked (in-process, nothing else is awaited); otherwise unblock and fail, so a
 * regression fails here instead of hanging.
 */
async function answerWhileBlocked(responding: Promise<Response>, release: () => void): Promise<Response> {
  const BLOCKED = Symbol("blocked");
  const turns = async () => {
    for (let turn = 0; turn < 200; turn++) await new Promise((resolve) => setImmediate(resolve));
    return BLOCKED;
  };
  const first = await Promise.race([responding, turns()]);
  if (first === BLOCKED) {
    release();
    await responding;
    assert.fail("the answer waited for the outcome record");
  }
  return first as Response;
}

test("the client's answer does not wait for the outcome record, which lands afterwards", async () => {
  const audit = blockingLog();
  const { hub, submitted } = answeringHub({ content: [{ type: "text", text: "Echo: hi" }] });
  const app = createWorkerApp({ hub: () => hub });
  const responding = post(app, await envWith(audit.namespace), call(5));
  // The outcome append has started and is blocked: the answer must come anyway.
  await audit.settleStarted;
  const response = await answerWhileBlocked(responding, audit.release);
  assert.equal(response.status, 200);
  const body = (await response.json()) as { id: number; result: { content: Array<{ text: string }> } };
  assert.deepEqual([body.id, body.result.content[0]!.text], [5, "Echo: hi"]);
  assert.equal(audit.requests.length, 1, "the request record was written before the command was queued");
  assert.equal(submitted.length, 1);
  assert.equal(audit.outcomes.length, 0, "the outcome is still blocked");

  audit.release();
  await audit.outcomeLanded;
  assert.equal(audit.outcomes.length, 1);
  const [outcome] = audit.outcomes;
  assert.equal(outcome!.requestId, audit.requests[0]!.requestId, "the outcome names the request it closes");
  assert.deepEqual([outcome!.response_status, outcome!.target], ["ok", "echo"]);
});

test("response checks still shape the answer before it goes; only the record waits", async () => {
  const audit = blockingLog();
  const { hub } = answeringHub({ content: [{ type: "text", text: "the secret is BEGIN PRIVATE KEY" }] });
  const app = createWorkerApp({ hub: () => hub });
  const policy = 'policy_version: 1\ndefault: allow\nresponses: { deny_patterns: ["BEGIN PRIVATE KEY"] }\n';
  const responding = post(app, await envWith(audit.namespace, policy), call(6));
  await audit.settleStarted;
  const response = await answerWhileBlocked(responding, audit.release);
  const body = (await response.json()) as { id: number; error?: { message: string }; result?: unknown };
  assert.equal(body.id, 6);
  assert.equal(body.result, undefined, "the refused result never reaches the client");
  assert.match(body.error!.message, /BEGIN PRIVATE KEY|deny_patterns|refused|withheld/i);
  audit.release();
  await audit.outcomeLanded;
  assert.equal(audit.outcomes[0]!.response_status, "denied");
});

test("an outcome append that fails is counted, and the client still had its answer", async () => {
  const audit = blockingLog();
  audit.state.failWith = new Error("SQLITE_FULL: database or disk is full");
  const { hub } = answeringHub({ content: [] });
  const app = createWorkerApp({ hub: () => hub });
  const before = outcomeAppendFailures();
  const response = await post(app, await envWith(audit.namespace), call(7));
  assert.equal(response.status, 200);
  audit.release();
  await audit.outcomeLanded;
  // The failure is counted in the catch that runs right after the rejection.
  for (let turn = 0; turn < 10 && outcomeAppendFailures() === before; turn++)
    await new Promise((resolve) => setImmediate(resolve));
  assert.equal(outcomeAppendFailures(), before + 1);
});
