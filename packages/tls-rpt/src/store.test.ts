// One suite for every store: the file store and PostgreSQL (the real server at DATABASE_URL).
import { rm } from "node:fs/promises";
import { makeTempDir } from "@postern/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileTlsRptStore } from "./file-store.ts";
import { PgTlsRptStore } from "./pg-store.ts";
import type { TlsResultRow, TlsRptStore } from "./store.ts";

const row = (fields: Partial<TlsResultRow>): TlsResultRow => ({
  day: "2025-03-01",
  policyDomain: "a.test",
  policyType: "sts",
  policyStrings: ["version: STSv1", "mode: enforce", "mx: mx.a.test", "max_age: 86400"],
  policyMxHost: "mx.a.test",
  result: "success",
  sendingIp: "",
  receivingIp: "",
  receivingMx: "",
  reasonCode: "",
  detail: "",
  count: 1,
  ...fields,
});

function describeStore(name: string, make: () => Promise<{ store: TlsRptStore; cleanup(): Promise<void> }>) {
  describe(name, () => {
    let store: TlsRptStore;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ store, cleanup } = await make());
      await store.open();
    });
    afterAll(async () => {
      await store.close();
      await cleanup();
    });

    it("adds counts to the same counter and keeps different ones apart", async () => {
      await store.add([row({ count: 2 }), row({ result: "starttls-not-supported", receivingMx: "mx.a.test" })]);
      await store.add([row({ count: 3 }), row({ policyDomain: "b.test" }), row({ day: "2025-03-02" })]);
      const rows = await store.rows("2025-03-01", "a.test");
      expect(rows.map((entry) => [entry.result, entry.count]).sort()).toEqual([
        ["starttls-not-supported", 1],
        ["success", 5],
      ]);
      expect(rows.find((entry) => entry.result === "success")?.policyStrings).toEqual(row({}).policyStrings);
    });

    it("lists finished days not reported yet, and claims each report once", async () => {
      expect(await store.pending("2025-03-02")).toEqual([
        { day: "2025-03-01", policyDomain: "a.test" },
        { day: "2025-03-01", policyDomain: "b.test" },
      ]);
      expect(await store.claim("2025-03-01", "a.test", "r1")).toBe(true);
      expect(await store.claim("2025-03-01", "a.test", "r2")).toBe(false);
      expect(await store.pending("2025-03-03")).toEqual([
        { day: "2025-03-01", policyDomain: "b.test" },
        { day: "2025-03-02", policyDomain: "a.test" },
      ]);
      await store.release("2025-03-01", "a.test");
      expect(await store.claim("2025-03-01", "a.test", "r3")).toBe(true);
    });

    it("prunes days before a day", async () => {
      await store.prune("2025-03-02");
      expect(await store.rows("2025-03-01", "a.test")).toEqual([]);
      expect(await store.pending("2025-03-03")).toEqual([{ day: "2025-03-02", policyDomain: "a.test" }]);
    });
  });
}

describeStore("FileTlsRptStore", async () => {
  const dir = await makeTempDir("tls-rpt-store");
  return { store: new FileTlsRptStore({ dir }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describeStore("PgTlsRptStore", async () => {
  const connectionString = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const schema = `tls_rpt_test_${process.pid}`;
  return {
    store: new PgTlsRptStore({ connectionString, schema }),
    async cleanup() {
      const client = new pg.Client({ connectionString });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
});
