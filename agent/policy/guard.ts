/**
 * The agent's local copy of the organisation's policy (`policy:` in the config): the same
 * evaluator the hub and relay run, applied in front of each channel's backend. A refused
 * request never reaches the MCP server; responses are checked (size, deny patterns), list
 * results filtered, and tool definitions pinned in memory for the life of the process.
 *
 * The relay sees raw bodies and also refuses duplicate JSON keys; the agent gets commands
 * already parsed, so that one guard belongs to the relay or hub in front of it.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "../../shared/log.ts";
import { describeCall } from "../../shared/mcp/methods.ts";
import {
  checkIntermediate,
  checkPinnedCall,
  checkPins,
  checkResult,
  compilePolicy,
  createMemoryPinStore,
  judgeMessage,
  parsePolicy,
  refusalMessage,
  type PinStore,
  type Policy,
  type PolicyDecision,
} from "../../shared/policy/index.ts";
import { denialResponse } from "../../shared/policy/evaluate.ts";
import { isObject, isRequest, type JsonRpcMessage } from "../../shared/jsonrpc.ts";
import { ConfigError } from "../config/errors.ts";
import { decorate } from "../backends/decorate.ts";
import type { Backend, ExchangeResult, McpExchange, McpStream } from "../backends/types.ts";

/** Read and compile `policy:` (a file path or an inline object); a bad policy is a config error naming its path. */
export async function loadLocalPolicy(source: string | Record<string, unknown>): Promise<Policy> {
  let result: ReturnType<typeof compilePolicy>;
  if (typeof source === "string") {
    let text: string;
    try {
      text = await readFile(source, "utf8");
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new ConfigError([
        {
          path: "policy",
          message: `the policy file ${source} could not be read (${typeof code === "string" ? code : "read error"}); fix the path`,
        },
      ]);
    }
    result = parsePolicy(text, { source });
  } else {
    result = compilePolicy(source);
  }
  if (!result.ok) throw new ConfigError(result.errors.map((message) => ({ path: "policy", message })));
  return result.policy;
}

export interface GuardOptions {
  policy: Policy;
  tunnel: string;
  channel: string;
  log: Logger;
  /** Pins shared by every channel of this agent; in memory by default. */
  pins?: PinStore;
}

const JSON_HEADERS = { "Content-Type": ["application/json"] };

/** A refused message's answer: the JSON-RPC error naming the rule, or — for a notification — a 403 acknowledgement. */
function refusal(message: unknown, decision: PolicyDecision): ExchangeResult {
  const error = refusalMessage(message, decision);
  return error
    ? { kind: "response", status: 200, headers: JSON_HEADERS, message: error }
    : { kind: "ack", status: 403, headers: {} };
}

/** Wrap `backend` so every exchange passes the policy first and every answer after. */
export function guardBackend(backend: Backend, options: GuardOptions): Backend {
  const { policy, tunnel, channel } = options;
  const log = options.log.child({ channel, policy: "local" });
  const pins = options.pins ?? createMemoryPinStore();
  const pinChecker = (pinChannel: string, tools: unknown[]) =>
    checkPins(pins, tunnel, pinChannel, tools, { mode: policy.pinning });

  async function judge(message: JsonRpcMessage): Promise<PolicyDecision | undefined> {
    const decision = judgeMessage(policy, { tunnel, channel, message });
    if (decision.decision === "deny") return decision;
    const call = describeCall(message);
    if (call.method === "tools/call" && call.target !== undefined) {
      const pinned = await checkPinnedCall(pins, policy.pinning, { tunnel, channel, tool: call.target });
      if (pinned?.decision === "deny") return pinned;
    }
    return undefined;
  }

  /** A server message the policy lets through (checked like a notify before the final). */
  function passes(message: JsonRpcMessage): boolean {
    const checked = checkIntermediate(policy, JSON.stringify(message));
    if (checked.decision !== "deny") return true;
    log.warn("the local policy withheld a server message", { rule: checked.rule, reason: checked.reason });
    return false;
  }

  return decorate(backend, {
    // The standalone stream's messages pass the same check as a call's intermediate messages.
    openStream: (stream: McpStream) =>
      backend.openStream!({
        ...stream,
        notify: (message) => {
          if (passes(message)) stream.notify(message);
        },
      }),

    async exchange(exchange: McpExchange): Promise<ExchangeResult> {
      const refused = await judge(exchange.message);
      if (refused) {
        log.warn("the local policy refused a message; it was not forwarded", {
          rule: refused.rule,
          reason: refused.reason,
          ...describeCall(exchange.message),
        });
        return refusal(exchange.message, refused);
      }
      const result = await backend.exchange({
        ...exchange,
        notify: (message, headers) => {
          if (passes(message)) exchange.notify(message, headers);
        },
      });
      if (result.kind !== "response") return result;
      const method = isRequest(exchange.message) ? exchange.message.method : null;
      const checked = await checkResult(policy, pinChecker, {
        tunnel,
        channel,
        method,
        message: result.message,
        text: JSON.stringify(result.message),
      });
      if (!checked.changed) return result;
      if (checked.status === "denied") {
        log.warn("the local policy replaced a response", {
          rule: checked.decision.rule,
          reason: checked.decision.reason,
          method,
        });
        return { kind: "response", status: 200, headers: JSON_HEADERS, message: checked.message as JsonRpcMessage };
      }
      return {
        ...result,
        message: isObject(checked.message) ? checked.message : denialResponse(null, checked.decision),
      };
    },
  });
}
