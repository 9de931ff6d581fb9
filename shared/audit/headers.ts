/**
 * Headers of an audit export (`GET /v1/audit/{tunnel_id}`): the hub writes them, `airlock
 * audit verify` and the demo read them, so both halves take the names from here.
 */

/** `<seq> <hash>` of the chain's last record when the export began. */
export const AUDIT_HEAD_HEADER = "X-Airlock-Audit-Head";
/** `<seq> <hash>` of the record before the first one exported. */
export const AUDIT_START_HEADER = "X-Airlock-Audit-Start";
