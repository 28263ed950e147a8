// One contract for both stores, run on the file store and on PostgreSQL (the real server at
// DATABASE_URL): counts add up per counter, reports are claimed once, old days go.
import { rm } from "node:fs/promises";
import { makeTempDir } from "@postern/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileDmarcReportStore } from "./file-store.ts";
import { PgDmarcReportStore } from "./pg-store.ts";
import type { DmarcReportStore, DmarcResultRow } from "./store.ts";

const evaluation = (fields: Partial<DmarcResultRow>): DmarcResultRow => ({
  day: "2025-06-10",
  policyDomain: "brand.example",
  sourceIp: "203.0.113.5",
  headerFrom: "brand.example",
  envelopeFrom: "bounces.brand.example",
  disposition: "none",
  dkim: "pass",
  spf: "fail",
  reasons: [],
  dkimResults: [{ domain: "brand.example", selector: "2025", result: "pass", humanResult: "" }],
  spfResult: { domain: "bounces.brand.example", scope: "mfrom", result: "softfail" },
  count: 1,
  ...fields,
});

interface StoreUnderTest {
  store: DmarcReportStore;
  cleanup(): Promise<void>;
}

function storeContract(name: string, make: () => Promise<StoreUnderTest>) {
  describe(`${name} (DMARC report store contract)`, () => {
    let subject: StoreUnderTest;
    beforeAll(async () => {
      subject = await make();
      await subject.store.open();
    });
    afterAll(async () => {
      await subject.store.close();
      await subject.cleanup();
    });

    it("sums the counts of one counter and keeps every reported field of the others", async () => {
      const { store } = subject;
      const rejected = evaluation({
        sourceIp: "198.51.100.66",
        disposition: "reject",
        dkim: "fail",
        dkimResults: [],
        spfResult: null,
        reasons: [{ type: "local_policy", comment: "" }],
      });
      await store.add([evaluation({ count: 4 }), rejected]);
      await store.add([
        evaluation({ count: 6 }),
        evaluation({ policyDomain: "other.example" }),
        evaluation({ day: "2025-06-11" }),
      ]);
      const rows = await store.rows("2025-06-10", "brand.example");
      expect(rows).toHaveLength(2);
      expect(rows.find((entry) => entry.disposition === "none")).toEqual(evaluation({ count: 10 }));
      expect(rows.find((entry) => entry.disposition === "reject")).toEqual(rejected);
    });

    it("lists the reports of finished days and lets one claim take each", async () => {
      const { store } = subject;
      expect(await store.pending("2025-06-11")).toEqual([
        { day: "2025-06-10", policyDomain: "brand.example" },
        { day: "2025-06-10", policyDomain: "other.example" },
      ]);
      const claims = await Promise.all([
        store.claim("2025-06-10", "brand.example", "first"),
        store.claim("2025-06-10", "brand.example", "second"),
      ]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.pending("2025-06-12")).toEqual([
        { day: "2025-06-10", policyDomain: "other.example" },
        { day: "2025-06-11", policyDomain: "brand.example" },
      ]);
      await store.release("2025-06-10", "brand.example");
      expect(await store.claim("2025-06-10", "brand.example", "again")).toBe(true);
    });

    it("forgets days before the retention limit", async () => {
      const { store } = subject;
      await store.prune("2025-06-11");
      expect(await store.rows("2025-06-10", "brand.example")).toEqual([]);
      expect(await store.pending("2025-06-12")).toEqual([{ day: "2025-06-11", policyDomain: "brand.example" }]);
    });
  });
}

storeContract("FileDmarcReportStore", async () => {
  const dir = await makeTempDir("dmarc-report-store");
  return { store: new FileDmarcReportStore({ dir }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

storeContract("PgDmarcReportStore", async () => {
  const connectionString = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const schema = `dmarc_reports_test_${process.pid}`;
  return {
    store: new PgDmarcReportStore({ connectionString, schema }),
    async cleanup() {
      const client = new pg.Client({ connectionString });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
});
