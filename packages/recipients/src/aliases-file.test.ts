import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@postern/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadAliasesFile, parseAliases } from "./aliases-file.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "postern-aliases-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (error instanceof ConfigError) return error;
  throw new Error(`expected a ConfigError, got ${String(error)}`);
}

describe("the /etc/aliases format", () => {
  it("reads names, comma lists, continuation lines and comments", async () => {
    const text = [
      "# Debian's default",
      "postmaster:    root",
      "",
      "team: alice,",
      "   bob@example.org ,",
      "\tcarol",
      "  # a comment line inside a continued entry is still a comment",
      "   , dave",
      "Root: admin@example.com",
    ].join("\n");
    const entries = await parseAliases(text, { file: "/etc/aliases" });
    expect(entries.map(({ name, targets, line }) => ({ name, targets, line }))).toEqual([
      { name: "postmaster", targets: ["root"], line: 2 },
      { name: "team", targets: ["alice", "bob@example.org", "carol", "dave"], line: 4 },
      { name: "Root", targets: ["admin@example.com"], line: 9 },
    ]);
  });

  it("reads quoted names and quoted local parts with commas and colons inside", async () => {
    const entries = await parseAliases('"john doe": "john, the doe"@example.com, jd\n"a:b": x\nsales@example.com: y', {
      file: "/etc/aliases",
    });
    expect(entries.map(({ name, targets }) => [name, targets])).toEqual([
      ["john doe", ['"john, the doe"@example.com', "jd"]],
      ["a:b", ["x"]],
      ["sales@example.com", ["y"]],
    ]);
  });

  it("supports :include: relative to the including file, nested, and refuses a cycle", async () => {
    await writeFile(join(dir, "aliases"), "list: :include:members, owner\n");
    await writeFile(join(dir, "members"), "# members\nalice, bob\ncarol@example.org\n:include:more\n");
    await writeFile(join(dir, "more"), "dave\n");
    const entries = await loadAliasesFile(join(dir, "aliases"));
    expect(entries[0]!.targets).toEqual(["alice", "bob", "carol@example.org", "dave", "owner"]);

    await writeFile(join(dir, "more"), ":include:members\n");
    const cycle = await failure(loadAliasesFile(join(dir, "aliases")));
    expect(cycle.message).toMatch(/aliases: line 1: :include: .*members includes itself/);
  });

  it("refuses deliveries to commands and files, naming the line", async () => {
    await writeFile(join(dir, "aliases"), 'ok: alice\nbad: alice, "|/usr/bin/procmail"\n');
    const command = await failure(loadAliasesFile(join(dir, "aliases")));
    expect(command.key).toBe("line 2");
    expect(command.message).toContain("delivers to a command");
    await writeFile(join(dir, "aliases"), "ok: alice\n\nbad: /var/mail/bad\n");
    const file = await failure(loadAliasesFile(join(dir, "aliases")));
    expect(file.key).toBe("line 3");
    expect(file.message).toContain("delivers to a file");
  });

  it("refuses a name defined twice, a line without a colon, an unclosed quote, an unreadable file", async () => {
    const twice = await failure(parseAliases("a: x\nA: y\n", { file: "f" }));
    expect(twice.message).toBe('f: line 2: "A" is defined twice (first on line 1); keep one entry');
    expect((await failure(parseAliases("just words\n", { file: "f" }))).key).toBe("line 1");
    expect((await failure(parseAliases('a: "open, b\n', { file: "f" }))).message).toContain("not closed");
    expect((await failure(parseAliases("a:\n", { file: "f" }))).message).toContain("has no addresses");
    expect((await failure(parseAliases("a: :include:x\n", { file: "f" }))).message).toContain("not allowed");
    const missing = await failure(loadAliasesFile(join(dir, "nope")));
    expect(missing.message).toContain("ENOENT");
  });
});
