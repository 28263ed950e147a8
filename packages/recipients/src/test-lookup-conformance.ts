// Test support (not exported): one suite every lookup backend runs (PostgreSQL, LDAP, Dovecot),
// against the real server, with the same users. A backend passes when it finds who exists, says
// "unknown" for who does not (and for addresses built to break a query), answers concurrent
// lookups, and — when its server goes down mid-session — answers "tempfail" for everyone
// (never "unknown" for a known user), then answers again once the server is back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedResolver } from "./lookup-cache.ts";
import { type LookupAddress, lookupAddress, type Resolver } from "./resolution.ts";

/** Mailboxes every harness loads. */
export const conformanceMailboxes = [
  "alice@example.com",
  "bob@example.com",
  "o'hara@example.com",
  "carol@xn--bcher-kva.example",
];
/** An alias every harness with alias support loads: team@example.com → these. */
export const conformanceTeam = ["alice@example.com", "dave@elsewhere.example"];

export interface LookupHarness {
  /** Starts the server and loads the users. */
  start(): Promise<void>;
  /** A new mailbox resolver connected to the server. */
  mailboxes(): Resolver;
  /** A new alias resolver (for backends that hold aliases). */
  aliases?(): Resolver;
  /** The server stops answering (stopped, or the network to it cut). */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

function address(text: string): LookupAddress {
  const parsed = lookupAddress(text);
  if (!parsed) throw new Error(`test address ${text} does not parse`);
  return parsed;
}

export function describeLookupConformance(name: string, harness: LookupHarness): void {
  describe(`lookup conformance: ${name}`, () => {
    let resolver: Resolver;
    beforeAll(async () => {
      await harness.start();
      resolver = harness.mailboxes();
    });
    afterAll(async () => {
      await resolver?.close?.();
      await harness.stop();
    });

    it("finds each mailbox, whatever the case of the address", async () => {
      for (const mailbox of conformanceMailboxes) {
        expect(await resolver.resolve(address(mailbox))).toEqual({ kind: "mailbox", mailbox });
      }
      expect(await resolver.resolve(address("ALICE@Example.COM"))).toEqual({
        kind: "mailbox",
        mailbox: "alice@example.com",
      });
      expect(await resolver.resolve(address("carol@bücher.example"))).toEqual({
        kind: "mailbox",
        mailbox: "carol@xn--bcher-kva.example",
      });
    });

    it("says unknown for who is not there, including addresses built to break a query", async () => {
      for (const text of [
        "nobody@example.com",
        "alice@example.org",
        "*@example.com",
        '"*)(|(mail=*"@example.com',
        `"x' OR '1'='1"@example.com`,
        '"alice\\\\"@example.com',
      ]) {
        expect(await resolver.resolve(address(text)), text).toEqual({ kind: "unknown" });
      }
    });

    it("answers concurrent lookups, each with its own answer", async () => {
      const texts = Array.from({ length: 24 }, (_, index) =>
        index % 3 === 0 ? "alice@example.com" : index % 3 === 1 ? "bob@example.com" : `ghost${index}@example.com`,
      );
      const answers = await Promise.all(texts.map((text) => resolver.resolve(address(text))));
      expect(answers.map((answer) => answer.kind)).toEqual(
        texts.map((text) => (text.startsWith("ghost") ? "unknown" : "mailbox")),
      );
    });

    if (harness.aliases) {
      it("expands an alias held in the directory", async () => {
        const aliases = harness.aliases!();
        try {
          const answer = await aliases.resolve(address("team@example.com"));
          expect(answer.kind).toBe("expand");
          expect(answer.kind === "expand" && [...answer.addresses].sort()).toEqual([...conformanceTeam].sort());
          expect(await aliases.resolve(address("nobody@example.com"))).toEqual({ kind: "unknown" });
        } finally {
          await aliases.close?.();
        }
      });
    }

    it("answers tempfail for everyone while its server is down mid-session, and recovers", async () => {
      expect((await resolver.resolve(address("alice@example.com"))).kind).toBe("mailbox");
      await harness.down();
      try {
        for (const text of ["alice@example.com", "nobody@example.com"]) {
          const answer = await resolver.resolve(address(text));
          expect(answer.kind, text).toBe("tempfail");
          expect(answer.kind === "tempfail" && answer.cause.code).toMatch(/^RECIPIENTS_LOOKUP_(FAILED|TIMEOUT)$/);
        }
      } finally {
        await harness.up();
      }
      expect(await resolver.resolve(address("bob@example.com"))).toEqual({
        kind: "mailbox",
        mailbox: "bob@example.com",
      });
      expect(await resolver.resolve(address("nobody@example.com"))).toEqual({ kind: "unknown" });
    });

    it("behind the cache: keeps found and missing answers for their TTLs, never a failure", async () => {
      let now = 1_000_000;
      const cached = cachedResolver(harness.mailboxes(), { ttlMs: 60_000, negativeTtlMs: 10_000, now: () => now });
      try {
        expect((await cached.resolve(address("alice@example.com"))).kind).toBe("mailbox");
        expect((await cached.resolve(address("ghost@example.com"))).kind).toBe("unknown");
        await harness.down();
        try {
          // Cached: answered without the server. Not cached: tempfail, and the failure is not kept.
          expect((await cached.resolve(address("alice@example.com"))).kind).toBe("mailbox");
          expect((await cached.resolve(address("ghost@example.com"))).kind).toBe("unknown");
          expect((await cached.resolve(address("bob@example.com"))).kind).toBe("tempfail");
          now += 10_001; // the miss expired, the mailbox not yet
          expect((await cached.resolve(address("ghost@example.com"))).kind).toBe("tempfail");
          expect((await cached.resolve(address("alice@example.com"))).kind).toBe("mailbox");
          now += 50_000;
          expect((await cached.resolve(address("alice@example.com"))).kind).toBe("tempfail");
        } finally {
          await harness.up();
        }
        expect((await cached.resolve(address("bob@example.com"))).kind).toBe("mailbox");
        expect(cached.stats()).toMatchObject({ hits: 3 });
      } finally {
        await cached.close?.();
      }
    });
  });
}
