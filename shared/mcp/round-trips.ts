/**
 * What the agent's era bridge and the hub both know about multi round-trip requests: the
 * bridge keeps a paused call (agent/bridge/mrtr.ts) or a question put on a legacy client's
 * stream (agent/bridge/legacy-rounds.ts) in the memory of one agent, so the hub routes the
 * client's retry or answer back to that agent by these marks (relay/hub/round-trip-affinity.ts).
 * A mark only steers routing: the agent still checks that a retry is bound to its call.
 */

/** How `requestState` tokens the bridge mints for paused calls begin. */
export const PAUSED_CALL_STATE_PREFIX = "airlock-mrtr-";
/** How the ids of the bridge's server→client requests on a legacy client's stream begin. */
export const CLIENT_QUESTION_ID_PREFIX = "airlock-input-";
/**
 * How the session ids the bridge mints for legacy clients of a modern-only server begin. The
 * client's declaration (its capabilities, which such a server checks before it asks for
 * input) lives with the session in that agent, so the hub pins the session to it.
 */
export const BRIDGED_SESSION_PREFIX = "airlock-eras-";
/** How long a paused call waits for its client's retry, and a question for its answer. */
export const ROUND_TRIP_WAIT_MS = 300_000;
