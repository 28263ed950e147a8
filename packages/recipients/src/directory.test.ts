// The directory on its own: aliases, domain aliases, catch-alls, lists, bounds, loops, roles and
// subaddresses, from inline maps, aliases files and YAML maps.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@postern/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Directory, openDirectory, type RecipientsOptions } from "./index.ts";

let dir: string;
let directory: Directory | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "postern-directory-"));
});
afterEach(async () => {
  await directory?.close();
  directory = undefined;
  await rm(dir, { recursive: true, force: true });
});

const base = {
  domains: ["example.com", "example.org"],
  postmaster: "admin@example.com",
  lookups: [
    {
      type: "mailboxes" as const,
      mailboxes: ["alice@example.com", "bob@example.com", "admin@example.com", "carol@example.org"],
    },
  ],
};

async function open(options: Partial<RecipientsOptions> = {}): Promise<Directory> {
  directory = await openDirectory({ ...base, ...options } as RecipientsOptions, { baseDir: dir });
  return directory;
}

/** The final addresses of a delivering expansion, or its kind. */
async function targets(address: string): Promise<string[] | string> {
  const result = await directory!.resolve(address);
  return result.kind === "deliver" ? result.targets.map((target) => `${target.route}:${target.address}`) : result.kind;
}

describe("mailboxes and aliases", () => {
  it("resolves a mailbox, refuses an unknown user, and never catches all by default", async () => {
    await open();
    expect(await targets("Alice@Example.COM")).toEqual(["local:alice@example.com"]);
    expect(await targets("nobody@example.com")).toBe("unknown");
    expect(await targets("nobody@example.org")).toBe("unknown");
  });

  it("expands an alias to local mailboxes and remote addresses, keeping a remote local part's case", async () => {
    await open({
      aliases: { map: { aliases: { "info@example.com": ["alice", "bob@example.com", "John.Doe@Elsewhere.example"] } } },
    });
    expect(await targets("info@example.com")).toEqual([
      "local:alice@example.com",
      "local:bob@example.com",
      "forward:John.Doe@elsewhere.example",
    ]);
    const result = await directory!.resolve("info@example.com");
    expect(result.kind === "deliver" && result.targets[2]!.via).toEqual([
      "info@example.com",
      "john.doe@elsewhere.example",
    ]);
  });

  it("maps a whole domain onto another, and refuses an alias domain onto a foreign one", async () => {
    await open({ aliases: { map: { domainAliases: { "example.net": "example.com" } } } });
    expect(await targets("alice@example.net")).toEqual(["local:alice@example.com"]);
    expect(await targets("nobody@example.net")).toBe("unknown");
    expect(directory!.isLocalDomain("example.net")).toBe(true);
    await directory!.close();
    const error = await openDirectory({
      ...base,
      aliases: { map: { domainAliases: { "example.net": "gmail.example" } } },
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      "@postern/recipients.aliases.map.domainAliases.example.net: gmail.example is not one of the local domains",
    );
    directory = undefined;
  });

  it("asks a catch-all only after every mailbox lookup said unknown, and only where configured", async () => {
    await open({ aliases: { map: { catchAll: { "example.org": "carol@example.org" } } } });
    expect(await targets("carol@example.org")).toEqual(["local:carol@example.org"]);
    expect(await targets("anything@example.org")).toEqual(["local:carol@example.org"]);
    expect(await targets("anything@example.com")).toBe("unknown");
  });

  it("collapses duplicates across nested lists", async () => {
    await open({
      aliases: {
        map: {
          aliases: {
            "all@example.com": ["dev", "ops", "alice"],
            "dev@example.com": ["alice", "bob"],
            "ops@example.com": ["bob", "ALICE@example.com", "dev"],
          },
        },
      },
    });
    expect(await targets("all@example.com")).toEqual(["local:alice@example.com", "local:bob@example.com"]);
  });

  it("delivers to an alias's own mailbox when it names itself (alice: alice, bob)", async () => {
    await open({ aliases: { map: { aliases: { alice: ["alice", "bob"] } } } });
    expect(await targets("alice@example.com")).toEqual(["local:alice@example.com", "local:bob@example.com"]);
  });

  it("drops unknown list members but refuses a list of nobody", async () => {
    await open({
      aliases: { map: { aliases: { "team@example.com": ["alice", "ghost"], "void@example.com": ["ghost"] } } },
    });
    const result = await directory!.resolve("team@example.com");
    expect(result).toMatchObject({
      kind: "deliver",
      targets: [{ address: "alice@example.com" }],
      dropped: [{ address: "ghost@example.com", reason: "unknown", via: ["team@example.com", "ghost@example.com"] }],
    });
    expect(await targets("void@example.com")).toBe("unknown");
  });
});

describe("bounds and loops", () => {
  it("ends a loop between two aliases (a → b → a) and refuses it when nothing else is left", async () => {
    await open({
      aliases: {
        map: {
          aliases: {
            "a@example.com": "b@example.com",
            "b@example.com": ["a@example.com"],
            "c@example.com": ["a", "alice"],
          },
        },
      },
    });
    const loop = await directory!.resolve("a@example.com");
    expect(loop).toEqual({
      kind: "loop",
      dropped: [{ address: "a@example.com", reason: "loop", via: ["a@example.com", "b@example.com", "a@example.com"] }],
    });
    expect(await targets("c@example.com")).toEqual(["local:alice@example.com"]);
  });

  it("bounds the number of addresses and the depth of nesting", async () => {
    const members = Array.from({ length: 30 }, (_, index) => `user${index}@elsewhere.example`);
    const chain = Object.fromEntries(
      Array.from({ length: 8 }, (_, index) => [`l${index}@example.com`, `l${index + 1}@example.com`]),
    );
    await open({
      aliases: { map: { aliases: { "big@example.com": members, ...chain, "l8@example.com": "alice" } } },
      limits: { maxAddresses: 20, maxDepth: 5 },
    });
    expect(await directory!.resolve("big@example.com")).toEqual({
      kind: "too-large",
      limit: "maxAddresses",
      value: 20,
    });
    expect(await directory!.resolve("l0@example.com")).toEqual({ kind: "too-large", limit: "maxDepth", value: 5 });
    expect(await targets("l4@example.com")).toEqual(["local:alice@example.com"]);
  });
});

describe("postmaster and abuse", () => {
  it("always resolve: to the configured mailbox, whatever aliases say, in every local domain", async () => {
    await open({
      abuse: "abuse-desk@elsewhere.example",
      aliases: {
        map: { aliases: { "postmaster@example.org": "carol@example.org", "postmaster@example.com": "ghost" } },
      },
    });
    expect(await targets("postmaster@example.org")).toEqual(["local:carol@example.org"]); // the alias names a mailbox
    expect(await targets("postmaster@example.com")).toEqual(["local:admin@example.com"]); // the alias names nobody
    expect(await targets("PostMaster")).toEqual(["local:admin@example.com"]);
    expect(await targets("abuse@example.org")).toEqual(["forward:abuse-desk@elsewhere.example"]);
    expect(await targets("postmaster@elsewhere.example")).toEqual(["forward:postmaster@elsewhere.example"]);
  });
});

describe("subaddresses", () => {
  it("finds alice for alice+news, keeps the detail, and prefers an alias of the full address", async () => {
    await open({ subaddressDelimiter: "+-", aliases: { map: { aliases: { "bob+sales@example.com": "alice" } } } });
    const result = await directory!.resolve("alice+news@example.com");
    expect(result).toMatchObject({ kind: "deliver", targets: [{ address: "alice@example.com", detail: "news" }] });
    expect(await targets("alice-x@example.com")).toEqual(["local:alice@example.com"]);
    expect(await targets("bob+sales@example.com")).toEqual(["local:alice@example.com"]);
    expect(await targets("bob+other@example.com")).toEqual(["local:bob@example.com"]);
    expect(await targets("+news@example.com")).toBe("unknown");
  });

  it("is off with an empty delimiter", async () => {
    await open({ subaddressDelimiter: "" });
    expect(await targets("alice+news@example.com")).toBe("unknown");
  });
});

describe("alias files", () => {
  it("reads /etc/aliases (bare names in every local domain) and YAML maps, refusing a name defined in both", async () => {
    await writeFile(join(dir, "aliases"), "# local\nteam: alice,\n  carol@example.org\n");
    await writeFile(
      join(dir, "virtual.yaml"),
      "aliases:\n  sales@example.org: bob@example.com\ncatchAll:\n  example.org: carol\n",
    );
    await open({ aliases: { files: ["aliases", "virtual.yaml"] } });
    expect(await targets("team@example.com")).toEqual(["local:alice@example.com", "local:carol@example.org"]);
    // alice@example.org does not exist: dropped from the list, carol still gets it.
    expect(await targets("team@example.org")).toEqual(["local:carol@example.org"]);
    expect(await targets("sales@example.org")).toEqual(["local:bob@example.com"]);
    expect(await targets("x@example.org")).toEqual(["local:carol@example.org"]);
    await directory!.close();
    directory = undefined;

    await writeFile(join(dir, "more.yaml"), "aliases:\n  team: bob\n");
    const twice = await openDirectory(
      { ...base, aliases: { files: ["aliases", "more.yaml"] } },
      { baseDir: dir },
    ).catch((caught: unknown) => caught as ConfigError);
    expect((twice as ConfigError).message).toBe(
      `${join(dir, "more.yaml")}: aliases.team: "team" is also defined in ${join(dir, "aliases")} line 2; keep one`,
    );
    await writeFile(join(dir, "bad.yaml"), "aliases:\n  x@example.com: []\n");
    const bad = await openDirectory({ ...base, aliases: { files: ["bad.yaml"] } }, { baseDir: dir }).catch(
      (caught: unknown) => caught as ConfigError,
    );
    expect((bad as ConfigError).message).toMatch(/bad\.yaml: aliases\.x@example\.com: expected an address or a list/);
  });
});

describe("SRS bounces", () => {
  it("sends a bounce to our SRS address back to the original sender; a forged one is unknown, catch-all or not", async () => {
    await writeFile(join(dir, "srs.secret"), "new-secret-123\nold-secret-456\n");
    await open({
      domains: ["example.com", "example.org"],
      srs: { domain: "example.org", secretsFile: "srs.secret" },
      aliases: { map: { catchAll: { "example.org": "carol@example.org" } } },
    });
    const srs = directory!.srs!;
    const rewritten = srs.forward("Sender@Origin.example");
    expect(rewritten).toMatch(/^SRS0=.{4}=..=Origin\.example=Sender@example\.org$/);
    expect(await targets(rewritten)).toEqual(["forward:Sender@origin.example"]);
    const forged = rewritten.replace(/^SRS0=.{4}=/, "SRS0=AAAA=");
    expect(await targets(forged)).toBe("unknown");
    // Not SRS-shaped: the catch-all of the SRS domain still applies.
    expect(await targets("someone@example.org")).toEqual(["local:carol@example.org"]);
    expect(directory!.resolvers).toEqual(["srs", "aliases", "mailboxes", "catch-all"]);
  });
});
