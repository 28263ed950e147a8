// Option validation for plugin factories and the server config: a zod schema, and on failure one
// ConfigError naming the first offending key and what was expected there.
import type { z } from "zod";
import { ConfigError } from "./errors.ts";

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  let received: unknown = input;
  for (const segment of issue.path) {
    if (received === null || typeof received !== "object") {
      received = undefined;
      break;
    }
    received = (received as Record<PropertyKey, unknown>)[segment as PropertyKey];
  }
  const got = received === undefined ? "nothing" : JSON.stringify(received);
  return `${issue.message} (got ${got})`;
}

/**
 * Parses `input` with `schema`; throws a ConfigError naming `prefix.key` and what was expected.
 * `prefix` is usually the plugin name, so the operator sees e.g. `@postern/spf.fail: …`.
 */
export function parseOptions<Schema extends z.ZodType>(
  schema: Schema,
  input: unknown,
  prefix?: string,
): z.output<Schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.map(String);
  let expected = describeIssue(issue, input);
  if (issue.code === "unrecognized_keys") {
    // zod reports unknown keys at the parent; name the first unknown key itself.
    path.push(issue.keys[0] ?? "");
    expected = "unknown setting; check its spelling and where it sits";
  }
  const key = [prefix, ...path].filter((part) => part !== undefined && part !== "").join(".");
  throw new ConfigError(key || "(options)", expected, prefix ? { plugin: prefix } : {});
}
