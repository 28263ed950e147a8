// core's config schema refuses unknown keys; this walk runs first so the error also lists the keys
// that are allowed there ("expected one of maxMessageSize, …"). It walks the settings alongside the schema and
// names the first unknown key.
import { ConfigError, serverConfigSchema } from "@postern/core";

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

function findUnknownKey(
  schema: SchemaNode,
  value: unknown,
  path: string[],
): { path: string[]; known: string[] } | undefined {
  const node = unwrap(schema);
  const def = node._zod.def;
  if (def.type === "object" && def.shape && typeof value === "object" && value !== null && !Array.isArray(value)) {
    const known = Object.keys(def.shape);
    for (const [key, child] of Object.entries(value)) {
      const childSchema = def.shape[key];
      if (!childSchema) return { path: [...path, key], known };
      const found = findUnknownKey(childSchema, child, [...path, key]);
      if (found) return found;
    }
  }
  if (def.type === "array" && def.element && Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = findUnknownKey(def.element, item, [...path, String(index)]);
      if (found) return found;
    }
  }
  return undefined;
}

/** Throws a ConfigError (key relative to the config's top) for the first key the schema doesn't know. */
export function rejectUnknownKeys(input: unknown): void {
  const found = findUnknownKey(serverConfigSchema as unknown as SchemaNode, input, []);
  if (!found) return;
  throw new ConfigError(found.path.join("."), `unknown setting; expected one of ${found.known.join(", ")}`);
}
