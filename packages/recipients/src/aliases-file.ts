// The /etc/aliases format (aliases(5) of Sendmail and Postfix), read into alias entries:
//
//   # comment                    a line whose first non-blank character is "#"
//   postmaster: root             name: value, value, ...
//   team: alice, bob@example.org,
//     "carol smith"@example.org  a line that starts with white space continues the previous one
//   list: :include:list-members  addresses read from another file (one or more a line)
//
// Names may be quoted ("a b": x) and may carry a domain (name@example.com, a Postern extension:
// such an entry applies to that domain only). `:include:` is supported: the file is read when the
// aliases are loaded, relative to the file that names it, nested at most 5 deep, never in a cycle.
// Deliveries to a file (/var/mail/x) or a command (|program) are refused when the file loads:
// Postern delivers to mailboxes and addresses only, and never runs a program for a sender.
import { readFile } from "node:fs/promises";
import { dirname, resolve as resolvePath } from "node:path";
import { ConfigError } from "@postern/core";

export interface AliasEntry {
  /** As written, unquoted: `team`, `info@example.com`. */
  readonly name: string;
  readonly targets: readonly string[];
  readonly file: string;
  readonly line: number;
}

const maxIncludeDepth = 5;

/** Reads an aliases file (and what it includes). Throws a ConfigError naming file and line. */
export async function loadAliasesFile(path: string): Promise<AliasEntry[]> {
  const file = resolvePath(path);
  return parseAliases(await readText(file, file, 0), { file, readInclude: (included) => readText(included, file, 0) });
}

async function readText(path: string, from: string, line: number): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(line > 0 ? `line ${line}` : "(file)", `cannot read ${path} (${reason})`, {
      file: from,
      cause: error,
    });
  }
}

export interface ParseAliasesOptions {
  /** Named in errors, and the base of relative `:include:` paths. */
  file: string;
  /** Reads an included file (an absolute path); absent = `:include:` refused. */
  readInclude?: (path: string) => Promise<string>;
}

/** Joins continuation lines; each logical line keeps the number of its first physical line. */
function logicalLines(text: string): { text: string; line: number }[] {
  const lines: { text: string; line: number }[] = [];
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const last = lines.at(-1);
    if (/^[ \t]/.test(raw) && last) last.text += ` ${trimmed}`;
    else lines.push({ text: raw.trimEnd(), line: index + 1 });
  }
  return lines;
}

/** Splits at commas outside double quotes; keeps quotes and backslash escapes in the pieces. */
function splitValues(text: string): string[] | undefined {
  const values: string[] = [];
  let current = "";
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index]!;
    if (char === "\\" && index + 1 < text.length) {
      current += char + text[++index];
    } else if (char === '"') {
      quoted = !quoted;
      current += char;
    } else if (char === "," && !quoted) {
      values.push(current.trim());
      current = "";
    } else current += char;
  }
  if (quoted) return undefined;
  values.push(current.trim());
  return values.filter((value) => value !== "");
}

/** The name before the first colon that is outside quotes. */
function splitName(text: string): { name: string; rest: string } | undefined {
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index]!;
    if (char === "\\") index++;
    else if (char === '"') quoted = !quoted;
    else if (char === ":" && !quoted) {
      const name = text.slice(0, index).trim();
      if (name === "" || (!name.startsWith('"') && /\s/.test(name))) return undefined;
      return { name: unquoteName(name), rest: text.slice(index + 1) };
    }
  }
  return undefined;
}

/** `"a b"` → `a b`, `"a b"@example.com` stays an address with a quoted local part. */
function unquoteName(name: string): string {
  if (name.startsWith('"') && name.endsWith('"') && name.length >= 2) return name.slice(1, -1).replace(/\\(.)/g, "$1");
  return name;
}

export async function parseAliases(text: string, options: ParseAliasesOptions): Promise<AliasEntry[]> {
  const entries: AliasEntry[] = [];
  const seen = new Map<string, number>();
  for (const { text: logical, line } of logicalLines(text)) {
    const fail = (expected: string): never => {
      throw new ConfigError(`line ${line}`, expected, { file: options.file });
    };
    const parts = splitName(logical);
    if (!parts) fail('expected "name: address, address, ..." (quote a name that has spaces or a colon)');
    const { name, rest } = parts!;
    const key = name.toLowerCase();
    const earlier = seen.get(key);
    if (earlier !== undefined) fail(`"${name}" is defined twice (first on line ${earlier}); keep one entry`);
    seen.set(key, line);
    const values = splitValues(rest);
    if (values === undefined) fail("a quoted string is not closed");
    const targets: string[] = [];
    for (const value of values!) {
      targets.push(...(await expandValue(value, line, options, [options.file], fail)));
    }
    if (targets.length === 0) fail(`"${name}" has no addresses`);
    entries.push({ name, targets, file: options.file, line });
  }
  return entries;
}

async function expandValue(
  value: string,
  line: number,
  options: ParseAliasesOptions,
  chain: readonly string[],
  fail: (expected: string) => never,
): Promise<string[]> {
  const bare = value.startsWith('"') && value.endsWith('"') && !value.includes("@") ? value.slice(1, -1) : value;
  if (bare.startsWith("|")) {
    return fail(`"${value}" delivers to a command; Postern delivers to mailboxes and addresses only`);
  }
  if (bare.startsWith("/")) {
    return fail(`"${value}" delivers to a file; Postern delivers to mailboxes and addresses only`);
  }
  if (!bare.toLowerCase().startsWith(":include:")) {
    // Sendmail's "\name" means "no further aliasing"; the self-reference rule (name: name, …)
    // already gives that, so the backslash is dropped and the name treated as written.
    return [bare.startsWith("\\") ? bare.slice(1) : bare];
  }
  if (!options.readInclude) return fail(":include: is not allowed here");
  const target = bare.slice(":include:".length).trim();
  if (target === "") return fail(":include: names no file");
  const path = resolvePath(dirname(chain.at(-1)!), target);
  if (chain.includes(path)) return fail(`:include: ${path} includes itself (${[...chain, path].join(" → ")})`);
  if (chain.length > maxIncludeDepth) return fail(`:include: nested more than ${maxIncludeDepth} deep`);
  let text: string;
  try {
    text = await options.readInclude(path);
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.expected);
    return fail(`cannot read ${path}`);
  }
  const targets: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const values = splitValues(trimmed);
    if (values === undefined) return fail(`${path}: a quoted string is not closed`);
    for (const included of values)
      targets.push(...(await expandValue(included, line, options, [...chain, path], fail)));
  }
  return targets;
}
