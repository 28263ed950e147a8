// The YAML (and inline) form of aliases and virtual maps, validated with zod:
//
//   aliases:                    address → addresses
//     info@example.com: [alice@example.com, bob@example.com]
//     sales@example.com: alice  (a bare name is in the domain of the address that was resolved)
//     team: [alice, bob]        (a bare key applies in every local domain, like /etc/aliases)
//   domainAliases:              domain → domain: anything@example.net is anything@example.com
//     example.net: example.com
//   catchAll:                   opt-in, per domain, asked only after every mailbox lookup said "unknown"
//     example.org: alice@example.org
import { readFile } from "node:fs/promises";
import { ConfigError, parseOptions } from "@postern/core";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";

const targetError = 'expected an address or a list of addresses, e.g. ["alice@example.com", "bob"]';
const targetList = z.union(
  [
    z.string().min(1, { error: targetError }),
    z.array(z.string().min(1), { error: targetError }).min(1, { error: targetError }),
  ],
  { error: targetError },
);

export const aliasMapSchema = z.strictObject({
  aliases: z.record(z.string().min(1), targetList).optional(),
  domainAliases: z.record(z.string().min(1), z.string().min(1)).optional(),
  catchAll: z.record(z.string().min(1), targetList).optional(),
});

export type AliasMap = z.input<typeof aliasMapSchema>;

export function targetsOf(value: string | readonly string[]): string[] {
  return typeof value === "string" ? [value] : [...value];
}

/** Reads a YAML alias map. Throws a ConfigError naming the file and the key. */
export async function loadAliasYaml(path: string): Promise<z.output<typeof aliasMapSchema>> {
  let document: unknown;
  try {
    document = parseYaml(await readFile(path, "utf8"));
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const line = error.linePos?.[0].line;
      throw new ConfigError(line ? `line ${line}` : "(file)", `not valid YAML: ${error.message.split("\n")[0]}`, {
        file: path,
        cause: error,
      });
    }
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError("(file)", `cannot read the alias map (${reason})`, { file: path, cause: error });
  }
  try {
    return parseOptions(aliasMapSchema, document ?? {});
  } catch (error) {
    if (error instanceof ConfigError) throw error.inFile(path);
    throw error;
  }
}
