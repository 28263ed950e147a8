// RCPT TO round trips through the plugin over real SMTP on loopback, one session per row, against
// a server that claims every recipient without a directory (core's own cost): a static mailbox,
// a subaddress, a 100-member list (each RCPT adds 100 recipients), a forward with its SRS sender,
// and an LDAP lookup uncached and cached (slapd started as in the tests). Prints a table.
//   node --conditions=dev-source packages/recipients/bench/rcpt-latency.ts [RCPTs per row]
import { performance } from "node:perf_hooks";
import type { Plugin } from "@postern/core";
import { claimRecipients, startTestServer } from "@postern/testing";
import recipients from "../src/index.ts";
import { readerDn, readerPassword, startSlapd, suffix } from "../src/test-slapd.ts";

const count = Number(process.argv[2] ?? 2000);
const members = Array.from({ length: 100 }, (_, index) => `member${index}@example.com`);
const mailboxes = ["alice@example.com", ...members];

async function measure(plugins: Plugin[], address: string): Promise<{ median: number; p95: number }> {
  const server = await startTestServer({ plugins, config: { limits: { maxRecipients: 100_000 } } });
  const client = await server.connect();
  try {
    await client.read();
    await client.command("EHLO bench.test");
    const times: number[] = [];
    for (let index = 0; index < count + 50; index++) {
      // A new transaction every 200 RCPTs keeps the recipient list (and core's duplicate check) small.
      if (index % 200 === 0) {
        if (index > 0) await client.command("RSET");
        await client.command("MAIL FROM:<sender@origin.example>");
      }
      const started = performance.now();
      const reply = await client.command(`RCPT TO:<${address}>`);
      if (index >= 50) times.push(performance.now() - started); // the first 50 warm up
      if (reply.code !== 250) throw new Error(`RCPT TO:<${address}>: ${reply.code} ${reply.lines.join(" ")}`);
    }
    times.sort((a, b) => a - b);
    return { median: times[Math.floor(times.length / 2)]!, p95: times[Math.floor(times.length * 0.95)]! };
  } finally {
    client.close();
    await server.stop();
  }
}

const slapd = await startSlapd();
await slapd.add([
  {
    dn: `uid=alice,ou=people,${suffix}`,
    attributes: { objectClass: "inetOrgPerson", uid: "alice", cn: "Alice", sn: "A", mail: "alice@example.com" },
  },
]);
const ldap = (cache: boolean) =>
  recipients({
    domains: ["example.com"],
    lookups: [
      {
        type: "ldap",
        url: slapd.url,
        bindDn: readerDn,
        bindPassword: readerPassword,
        base: `ou=people,${suffix}`,
        filter: "(mail=%s)",
        ...(cache ? {} : { cache: false as const }),
      },
    ],
  });
const directory = () =>
  recipients({
    domains: ["example.com"],
    mailboxes,
    aliases: { map: { aliases: { "all@example.com": members, "fwd@example.com": "friend@elsewhere.example" } } },
    srs: { domain: "fwd.example.com", secrets: ["benchmark-secret"] },
  });

const rows: [string, Plugin[], string][] = [
  ["no directory (claimRecipients)", [claimRecipients()], "alice@example.com"],
  ["static mailbox", [directory()], "alice@example.com"],
  ["subaddress", [directory()], "alice+news@example.com"],
  ["list of 100 mailboxes", [directory()], "all@example.com"],
  ["forward with SRS", [directory()], "fwd@example.com"],
  ["LDAP, uncached", [ldap(false)], "alice@example.com"],
  ["LDAP, cached", [ldap(true)], "alice@example.com"],
];
const lines = ["| RCPT TO | median | p95 |", "| --- | --- | --- |"];
try {
  // Every row twice, the first pass only warming up the JIT (and slapd), so rows compare fairly.
  for (const pass of [1, 2]) {
    for (const [name, plugins, address] of rows) {
      const { median, p95 } = await measure(plugins, address);
      if (pass === 2) lines.push(`| ${name} | ${(median * 1000).toFixed(0)} µs | ${(p95 * 1000).toFixed(0)} µs |`);
    }
  }
} finally {
  await slapd.remove();
}
console.log(`${count} RCPT TO per row, one session each, loopback:\n${lines.join("\n")}`);
