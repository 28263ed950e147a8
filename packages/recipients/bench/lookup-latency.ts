// Lookup latency per backend, uncached (every lookup asks the server) and cached (answered by
// cachedResolver), against the same real servers the tests start. Prints a table; asserts nothing.
//   node --conditions=dev-source packages/recipients/bench/lookup-latency.ts [lookups per row]
import { performance } from "node:perf_hooks";
import { dovecotLookup } from "../src/dovecot-userdb.ts";
import { ldapLookup } from "../src/ldap-lookup.ts";
import { cachedResolver } from "../src/lookup-cache.ts";
import { postgresLookup } from "../src/postgres-lookup.ts";
import type { Resolver } from "../src/resolution.ts";
import { lookupAddress } from "../src/resolution.ts";
import { startDovecotUserdb } from "../src/test-dovecot-userdb.ts";
import { admin, databaseUrl, dropSchema, uniqueSchema } from "../src/test-postgres.ts";
import { readerDn, readerPassword, startSlapd, suffix } from "../src/test-slapd.ts";

const lookups = Number(process.argv[2] ?? 2000);
const alice = lookupAddress("alice@example.com")!;
const ghost = lookupAddress("ghost@example.com")!;

async function measure(resolver: Resolver): Promise<{ median: number; p95: number }> {
  for (let index = 0; index < 50; index++) await resolver.resolve(index % 2 ? alice : ghost); // warm-up
  const times: number[] = [];
  for (let index = 0; index < lookups; index++) {
    const started = performance.now();
    const answer = await resolver.resolve(index % 2 ? alice : ghost);
    times.push(performance.now() - started);
    if (answer.kind === "tempfail") throw answer.cause;
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, p95: times[Math.floor(times.length * 0.95)]! };
}

const rows: string[] = [];
async function row(name: string, make: () => Resolver) {
  const uncached = make();
  const cached = cachedResolver(make(), { ttlMs: 3_600_000, negativeTtlMs: 3_600_000 });
  const plain = await measure(uncached);
  const hit = await measure(cached);
  const us = (ms: number) => `${(ms * 1000).toFixed(ms < 0.01 ? 1 : 0)} µs`;
  rows.push(`| ${name} | ${us(plain.median)} | ${us(plain.p95)} | ${us(hit.median)} | ${us(hit.p95)} |`);
  await uncached.close?.();
  await cached.close?.();
}

const schema = uniqueSchema("recipients_bench");
await admin(`CREATE SCHEMA "${schema}"`);
await admin(`CREATE TABLE "${schema}".users (address text PRIMARY KEY)`);
await admin(`INSERT INTO "${schema}".users VALUES ('alice@example.com')`);
const slapd = await startSlapd();
await slapd.add([
  {
    dn: `uid=alice,ou=people,${suffix}`,
    attributes: { objectClass: "inetOrgPerson", uid: "alice", cn: "Alice", sn: "A", mail: "alice@example.com" },
  },
]);
const userdb = await startDovecotUserdb(["alice@example.com"]);
try {
  await row("PostgreSQL", () =>
    postgresLookup({
      connectionString: databaseUrl,
      query: `SELECT address FROM "${schema}".users WHERE address = $1`,
    }),
  );
  await row("LDAP (slapd)", () =>
    ldapLookup({
      url: slapd.url,
      bindDn: readerDn,
      bindPassword: readerPassword,
      base: `ou=people,${suffix}`,
      filter: "(mail=%s)",
    }),
  );
  await row("Dovecot auth-userdb", () => dovecotLookup({ socket: userdb.socket }));
} finally {
  await userdb.remove();
  await slapd.remove();
  await dropSchema(schema);
}
console.log(`${lookups} sequential lookups per column (half found, half unknown), one connection each`);
console.log("| backend | uncached median | uncached p95 | cached median | cached p95 |");
console.log("| --- | --- | --- | --- | --- |");
for (const line of rows) console.log(line);
