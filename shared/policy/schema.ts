/**
 * The policy document: one zod schema per construct, each type inferred beside it.
 * The grammar is documented in docs/policy.md; every message here names what was
 * expected so a parse error reads `rules[1].allow.tools: expected a list of globs`.
 */
import { z } from "zod";
import { globProblem, matchGlob } from "./glob.ts";
import { normalizePrefix } from "./normalize.ts";
import { patternProblem } from "./pattern.ts";
import { parseRedactPath } from "../audit/redact.ts";
import { isJsonValue } from "../audit/digest.ts";
import { DECODINGS, type Decoding } from "./decode.ts";
import { parseDuration } from "../protocol/duration.ts";

/** The only `policy_version` this code understands. */
export const POLICY_VERSION = 1;
/** Default bound on the response text scanned for deny patterns (fail closed above it). */
export const DEFAULT_SCAN_MAX_BYTES = 4 * 1024 * 1024;

/** The methods whose params name a target, by target kind. */
export const TARGET_METHODS = {
  tool: ["tools/call"],
  prompt: ["prompts/get", "completion/complete"],
  resource: ["resources/read", "resources/subscribe", "resources/unsubscribe", "completion/complete"],
} as const;
export type TargetKind = keyof typeof TARGET_METHODS;
/** The methods whose `params.arguments` an `arguments` matcher constrains. */
export const ARGUMENT_METHODS = ["tools/call", "prompts/get"] as const;

const Glob = z.string({ error: "expected a glob (a string)" }).superRefine((value, ctx) => {
  const problem = globProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
const GlobList = z.array(Glob, { error: "expected a list of globs" }).min(1, "expected a list of at least one glob");

const Pattern = z.string({ error: "expected a regular expression (a string)" }).superRefine((value, ctx) => {
  const problem = patternProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

// Kept by reference: z.json() rebuilds objects and drops "__proto__" keys.
const JsonValue = z.custom<unknown>((value) => isJsonValue(value), "expected a JSON value");

const Decode = z
  .array(z.enum(DECODINGS, { error: `expected one of ${DECODINGS.join(", ")}` }), {
    error: `expected a list of decodings (${DECODINGS.join(", ")})`,
  })
  .min(1, "expected at least one decoding");

const Count = z
  .number({ error: "expected a whole number" })
  .int("expected a whole number")
  .nonnegative("expected a number ≥ 0");
const ByteLimit = z
  .number({ error: "expected a number of bytes" })
  .int("expected a whole number of bytes")
  .positive("expected a number of bytes > 0");

/** JSON types an argument may be required to have. */
export const ArgumentType = z.enum(["string", "number", "integer", "boolean", "object", "array", "null"], {
  error: "expected one of string, number, integer, boolean, object, array, null",
});
export type ArgumentType = z.infer<typeof ArgumentType>;

/** A JSON-Schema-style constraint on one argument value (see docs/policy.md, "Arguments"). */
export interface ArgumentConstraint {
  type?: ArgumentType | ArgumentType[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  /** Also match `pattern` against the value decoded from base64 / data: URLs (docs/policy.md, "Encoded text"). */
  decode?: Decoding[];
  prefix?: string;
  items?: ArgumentConstraint;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, ArgumentConstraint>;
  additional?: boolean;
  optional?: boolean;
}

// Which JSON type each keyword implies: a constraint on a value of another type fails.
const IMPLIED_TYPE: Record<string, ArgumentType> = {
  minimum: "number",
  maximum: "number",
  minLength: "string",
  maxLength: "string",
  pattern: "string",
  decode: "string",
  prefix: "string",
  items: "array",
  minItems: "array",
  maxItems: "array",
  properties: "object",
  additional: "object",
};

function checkConstraint(value: ArgumentConstraint, ctx: z.RefinementCtx): void {
  const declared = value.type === undefined ? undefined : [value.type].flat();
  for (const [keyword, implied] of Object.entries(IMPLIED_TYPE)) {
    if (!(keyword in value)) continue;
    const fits = !declared || declared.includes(implied) || (implied === "number" && declared.includes("integer"));
    if (!fits)
      ctx.addIssue({
        code: "custom",
        path: [keyword],
        message: `${keyword} applies to ${implied} values, but type is ${declared?.join(" | ")}`,
      });
  }
  const implied = new Set(
    Object.keys(IMPLIED_TYPE)
      .filter((keyword) => keyword in value)
      .map((keyword) => IMPLIED_TYPE[keyword]),
  );
  if (implied.size > 1)
    ctx.addIssue({
      code: "custom",
      message: `mixes keywords for different types (${[...implied].join(", ")}); a value has one type`,
    });
  if (value.minimum !== undefined && value.maximum !== undefined && value.minimum > value.maximum) {
    ctx.addIssue({ code: "custom", path: ["minimum"], message: "minimum is above maximum, so nothing could match" });
  }
  if (value.minLength !== undefined && value.maxLength !== undefined && value.minLength > value.maxLength) {
    ctx.addIssue({
      code: "custom",
      path: ["minLength"],
      message: "minLength is above maxLength, so nothing could match",
    });
  }
  if (value.minItems !== undefined && value.maxItems !== undefined && value.minItems > value.maxItems) {
    ctx.addIssue({ code: "custom", path: ["minItems"], message: "minItems is above maxItems, so nothing could match" });
  }
  if (value.decode !== undefined && value.pattern === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["decode"],
      message: "decode widens what pattern sees; it needs a pattern beside it",
    });
  }
  if (value.prefix !== undefined && normalizePrefix(value.prefix) === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["prefix"],
      message: "the prefix climbs above its start with '..'; write the path it means",
    });
  }
}

/** The schema of {@link ArgumentConstraint}; recursive through `items` and `properties`. */
export const ArgumentConstraint: z.ZodType<ArgumentConstraint> = z.lazy(() =>
  z
    .strictObject(
      {
        type: z
          .union([ArgumentType, z.array(ArgumentType).min(1)], { error: "expected a type name or a list of them" })
          .optional(),
        enum: z
          .array(JsonValue, { error: "expected a list of JSON values" })
          .min(1, "expected at least one value")
          .optional(),
        const: JsonValue.optional(),
        minimum: z.number({ error: "expected a number" }).optional(),
        maximum: z.number({ error: "expected a number" }).optional(),
        minLength: Count.optional(),
        maxLength: Count.optional(),
        pattern: Pattern.optional(),
        decode: Decode.optional(),
        prefix: z
          .string({ error: "expected a path or URI prefix (a string)" })
          .min(1, "a prefix cannot be empty")
          .optional(),
        items: ArgumentConstraint.optional(),
        minItems: Count.optional(),
        maxItems: Count.optional(),
        properties: z
          .record(z.string(), ArgumentConstraint, { error: "expected a mapping of property names to constraints" })
          .optional(),
        additional: z.boolean({ error: "expected true or false" }).optional(),
        optional: z.boolean({ error: "expected true or false" }).optional(),
      },
      { error: "expected a mapping of constraints (type, enum, const, minimum, maximum, …)" },
    )
    .superRefine(checkConstraint),
);

function methodsCanReach(methods: string[] | undefined, targets: readonly string[]): boolean {
  return !methods || methods.some((glob) => targets.some((method) => matchGlob(glob, method)));
}

/** What a rule matches; every given matcher must hold. An empty matcher matches every message. */
export const Matcher = z
  .strictObject(
    {
      tunnels: GlobList.optional(),
      channels: GlobList.optional(),
      methods: GlobList.optional(),
      tools: GlobList.optional(),
      prompts: GlobList.optional(),
      resources: GlobList.optional(),
      arguments: z
        .record(z.string(), ArgumentConstraint, { error: "expected a mapping of argument names to constraints" })
        .optional(),
      additional_arguments: z.boolean({ error: "expected true or false" }).optional(),
      max_request_bytes: ByteLimit.optional(),
      /** Who is calling (shared/policy/identity.ts): the OAuth subject, email, groups and client id. */
      subjects: GlobList.optional(),
      emails: GlobList.optional(),
      groups: GlobList.optional(),
      clients: GlobList.optional(),
    },
    { error: "expected a mapping of matchers (methods, tools, arguments, …)" },
  )
  .superRefine((value, ctx) => {
    const kinds = (["tools", "prompts", "resources"] as const).filter((key) => value[key]);
    if (kinds.length > 1)
      ctx.addIssue({
        code: "custom",
        message: `a message names one kind of target, so ${kinds.join(" and ")} cannot both match; write separate rules`,
      });
    const target = kinds[0];
    if (
      target &&
      !methodsCanReach(
        value.methods,
        TARGET_METHODS[target === "tools" ? "tool" : target === "prompts" ? "prompt" : "resource"],
      )
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["methods"],
        message: `none of these methods carries ${target}, so the rule could never match`,
      });
    }
    if (
      (value.arguments || value.additional_arguments !== undefined) &&
      (target === "resources" || !methodsCanReach(value.methods, ARGUMENT_METHODS))
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["arguments"],
        message: "arguments are only carried by tools/call and prompts/get, so the rule could never match",
      });
    }
  });
export type Matcher = z.infer<typeof Matcher>;

const RuleName = z
  .string({ error: "expected a rule name (a string)" })
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "a rule name uses letters, digits, '_', '.' and '-' (at most 64)");

/** One rule: exactly one of `allow:` / `deny:`, and an optional `name` decisions quote. */
export const Rule = z
  .strictObject(
    {
      name: RuleName.optional(),
      allow: Matcher.optional(),
      deny: Matcher.optional(),
    },
    { error: "expected a rule: a mapping with allow: or deny:" },
  )
  .superRefine((value, ctx) => {
    if (!!value.allow === !!value.deny)
      ctx.addIssue({ code: "custom", message: "a rule has exactly one of allow: or deny:" });
    if (value.deny?.max_request_bytes !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["deny", "max_request_bytes"],
        message: "max_request_bytes limits what an allow rule admits; for a global limit use requests.max_bytes",
      });
    }
  });
export type Rule = z.infer<typeof Rule>;

const RedactPathString = z.string({ error: "expected a redaction path (a string)" }).superRefine((value, ctx) => {
  const parsed = parseRedactPath(value);
  if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: parsed });
  else if (parsed[0]?.kind !== "key" || parsed[0].key !== "arguments")
    ctx.addIssue({ code: "custom", message: "redaction paths start with 'arguments' (e.g. arguments.message)" });
});

/** A per-identity rate limit (shared/policy/rate-limit.ts): `calls` per `window`, per subject and per tool. */
export const RateLimit = z.strictObject(
  {
    name: RuleName.optional(),
    per: z.literal("subject", { error: "expected subject (limits count per caller and per tool)" }),
    tools: GlobList.optional(),
    calls: z
      .number({ error: "expected a whole number of calls" })
      .int("expected a whole number of calls")
      .positive("expected a number of calls > 0"),
    window: z
      .string({ error: "expected a duration such as 1m or 30s" })
      .refine((value) => (parseDuration(value) ?? 0) >= 1000, "expected a duration of at least 1s, such as 1m or 30s"),
  },
  { error: "expected a rate limit: a mapping with per, calls, window (and tools, name)" },
);
export type RateLimit = z.infer<typeof RateLimit>;

/** A whole policy document, as written in YAML or JSON. */
export const PolicyDocument = z.strictObject(
  {
    policy_version: z.literal(POLICY_VERSION, {
      error: `expected ${POLICY_VERSION} (the only policy version this Airlock understands)`,
    }),
    default: z.enum(["allow", "deny"], { error: "expected allow or deny" }),
    rules: z.array(Rule, { error: "expected a list of rules" }).default([]),
    requests: z
      .strictObject({ max_bytes: ByteLimit.optional() }, { error: "expected a mapping (max_bytes)" })
      .optional(),
    responses: z
      .strictObject(
        {
          max_bytes: ByteLimit.optional(),
          deny_patterns: z.array(Pattern, { error: "expected a list of regular expressions" }).optional(),
          decode: Decode.optional(),
          scan_max_bytes: ByteLimit.optional(),
        },
        { error: "expected a mapping (max_bytes, deny_patterns, decode, scan_max_bytes)" },
      )
      .optional(),
    audit: z
      .strictObject(
        {
          redact: z.array(RedactPathString, { error: "expected a list of paths such as arguments.message" }).optional(),
        },
        { error: "expected a mapping (redact)" },
      )
      .optional(),
    tool_pinning: z
      .strictObject(
        {
          mode: z.enum(["block", "flag", "off"], { error: "expected block, flag or off" }),
        },
        { error: "expected a mapping (mode)" },
      )
      .optional(),
    replies: z.enum(["allow", "deny"], { error: "expected allow or deny" }).optional(),
    rate_limits: z.array(RateLimit, { error: "expected a list of rate limits" }).optional(),
  },
  { error: "expected a policy: a mapping with policy_version, default and rules" },
);
export type PolicyDocument = z.infer<typeof PolicyDocument>;

/** Every key the grammar knows, for "did you mean" hints on unknown keys. */
export const POLICY_KEYS = [
  "policy_version",
  "default",
  "rules",
  "requests",
  "responses",
  "audit",
  "tool_pinning",
  "replies",
  "rate_limits",
  "per",
  "calls",
  "window",
  "name",
  "allow",
  "deny",
  "tunnels",
  "channels",
  "methods",
  "tools",
  "prompts",
  "resources",
  "arguments",
  "additional_arguments",
  "max_request_bytes",
  "subjects",
  "emails",
  "groups",
  "clients",
  "max_bytes",
  "deny_patterns",
  "decode",
  "scan_max_bytes",
  "redact",
  "mode",
  "type",
  "enum",
  "const",
  "minimum",
  "maximum",
  "minLength",
  "maxLength",
  "pattern",
  "prefix",
  "items",
  "minItems",
  "maxItems",
  "properties",
  "additional",
  "optional",
] as const;
