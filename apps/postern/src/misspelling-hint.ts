// A plugin's schema reports a required option that is missing before it reports an unknown one, so
// `domain: [example.org]` for `domains` reads as "domains: expected a list … (got nothing)" with
// no word about the typo. When the missing key has a near twin among the keys that were written,
// the error says so.
import type { ConfigError } from "@postern/core";

/** Levenshtein distance, enough for option names. */
function distance(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0]!;
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j]!;
      const cost = a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1;
      previous[j] = Math.min(above + 1, previous[j - 1]! + 1, diagonal + cost);
      diagonal = above;
    }
  }
  return previous[b.length]!;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The options object the error's key points into ("@postern/x.relay.networks" → options.relay). */
function containerOf(error: ConfigError, options: unknown): { missing: string; keys: string[] } | undefined {
  const prefix = error.plugin ? `${error.plugin}.` : "";
  const key = prefix && error.key.startsWith(prefix) ? error.key.slice(prefix.length) : error.key;
  const path = key.split(".");
  const missing = path.pop();
  let container = options;
  for (const part of path) container = isPlainObject(container) ? container[part] : undefined;
  if (!missing || !isPlainObject(container) || missing in container) return undefined;
  return { missing, keys: Object.keys(container) };
}

/** `"domain" is set: did you mean "domains"?`, or undefined when no written key is a near miss. */
export function misspellingHint(error: ConfigError, options: unknown): string | undefined {
  if (!/\(got nothing\)$/.test(error.expected)) return undefined;
  const found = containerOf(error, options);
  if (!found) return undefined;
  const { missing, keys } = found;
  const limit = missing.length <= 4 ? 1 : 2;
  const twin = keys.find((key) => distance(key, missing) <= limit);
  return twin === undefined ? undefined : `"${twin}" is set: did you mean "${missing}"?`;
}
