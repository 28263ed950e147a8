// Every problem of a server config at once, each as a ConfigError whose key is relative to the
// config's top. Core's parseServerConfig stops at the first issue and words some generically
// ("Invalid input" for a size that is neither a number nor "25MB"); here every zod issue is
// turned into "key: what was expected (got …)", unknown keys list the keys allowed there, and a
// value that fits no alternative of a union says what the alternative of its own type expects.
import { ConfigError, serverConfigSchema } from "@postern/core";
import type { z } from "zod";

type Issue = z.core.$ZodIssue;

interface SchemaNode {
  _zod: {
    def: {
      type: string;
      innerType?: SchemaNode;
      in?: SchemaNode;
      element?: SchemaNode;
      shape?: Record<string, SchemaNode>;
    };
  };
}

/** Looks through default/prefault/optional/nullable/pipe wrappers to the schema that checks the value. */
function unwrap(schema: SchemaNode): SchemaNode {
  let current = schema;
  for (;;) {
    const def = current._zod.def;
    const inner = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
    if (!inner) return current;
    current = inner;
  }
}

/** The keys an object schema at `path` allows ("limits" → maxMessageSize, …). */
function allowedKeysAt(path: readonly PropertyKey[]): string[] {
  let node: SchemaNode | undefined = serverConfigSchema as unknown as SchemaNode;
  for (const segment of path) {
    if (!node) return [];
    const def: SchemaNode["_zod"]["def"] = unwrap(node)._zod.def;
    node = def.type === "array" ? def.element : def.shape?.[String(segment)];
  }
  const shape = node ? unwrap(node)._zod.def.shape : undefined;
  return shape ? Object.keys(shape) : [];
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const segment of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

function got(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return "a mapping";
  return JSON.stringify(value) ?? String(value);
}

/** For a union: the message of the alternative that matched the value's type, else the types expected. */
function unionExpectation(issue: Extract<Issue, { code: "invalid_union" }>): string {
  const sameType = issue.errors.find(
    (alternative) => alternative.length > 0 && alternative.every((inner) => inner.code !== "invalid_type"),
  );
  if (sameType?.[0]) return sameType[0].message;
  const types = issue.errors.flatMap((alternative) =>
    alternative.flatMap((inner) => (inner.code === "invalid_type" ? [inner.expected] : [])),
  );
  return types.length > 0 ? `expected ${[...new Set(types)].join(" or ")}` : issue.message;
}

function describe(issue: Issue, input: unknown): ConfigError[] {
  const path = issue.path;
  const key = path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const allowed = allowedKeysAt(path);
    return issue.keys.map(
      (unknownKey) =>
        new ConfigError(
          [key, unknownKey].filter(Boolean).join("."),
          `unknown setting; expected one of ${allowed.join(", ")}`,
        ),
    );
  }
  const expected = issue.code === "invalid_union" ? unionExpectation(issue) : issue.message;
  return [new ConfigError(key || "(config)", `${expected} (got ${got(valueAt(input, path))})`)];
}

/** Every problem zod finds in `input`, in the order zod reports them; [] for a valid config. */
export function configIssues(input: unknown): ConfigError[] {
  const result = serverConfigSchema.safeParse(input);
  if (result.success) return [];
  return result.error.issues.flatMap((issue) => describe(issue, input));
}
