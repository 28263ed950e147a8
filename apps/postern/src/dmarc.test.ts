// `postern dmarc report --dry-run` through the real CLI in a child process: a YAML config with
// @postern/dmarc-reports on a file store holding yesterday's counters, DNS from the test kit's
// fake zone. It prints the report and its destinations and claims nothing.
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type FakeDns, startFakeDns } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
// The store modules directly: the package entries also load pg, which vitest's resolve
// conditions break inside pg's own require() of pg-pool (see queue.test.ts).
import type { DmarcResultRow } from "../../../packages/dmarc-reports/src/store.ts";
import { rowKey } from "../../../packages/dmarc-reports/src/store.ts";
import { FileCounterStore } from "../../../packages/tls-rpt/src/reporting/file-counter-store.ts";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../../packages");
const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

let dns: FakeDns;
beforeAll(async () => {
  dns = await startFakeDns({
    "_dmarc.brand.test": { TXT: ["v=DMARC1; p=reject; rua=mailto:dmarc@brand.test,mailto:agg@reports.test!1"] },
    "brand.test._report._dmarc.reports.test": { TXT: ["v=DMARC1"] },
    "_dmarc.quiet.test": { TXT: ["v=DMARC1; p=none"] },
  });
});
afterAll(() => dns?.close());
afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

const row = (fields: Partial<DmarcResultRow>): DmarcResultRow => ({
  day: yesterday,
  policyDomain: "brand.test",
  sourceIp: "192.0.2.1",
  headerFrom: "brand.test",
  envelopeFrom: "brand.test",
  disposition: "none",
  dkim: "pass",
  spf: "pass",
  reasons: [],
  dkimResults: [{ domain: "brand.test", selector: "s1", result: "pass", humanResult: "" }],
  spfResult: { domain: "brand.test", scope: "mfrom", result: "pass" },
  count: 3,
  ...fields,
});

async function site(): Promise<string> {
  const dir = await makeTempDir("dmarc-cli");
  await writeFile(
    join(dir, "postern.yaml"),
    `hostname: mx.receiver.test
listeners:
  - port: 2527
dns:
  servers: ["${dns.servers[0]}"]
plugins:
  - package: "@postern/dmarc-reports"
    options:
      store: { type: file, dir: ./dmarc }
`,
  );
  await mkdir(join(dir, "node_modules/@postern"), { recursive: true });
  await symlink(join(packagesDir, "dmarc-reports"), join(dir, "node_modules/@postern/dmarc-reports"), "dir");
  const store = new FileCounterStore<DmarcResultRow>({ dir: join(dir, "dmarc"), key: rowKey });
  await store.open();
  await store.add([
    row({}),
    row({ sourceIp: "198.51.100.9", disposition: "reject", dkim: "fail", spf: "fail", count: 1 }),
    row({ policyDomain: "quiet.test", headerFrom: "quiet.test" }),
  ]);
  await store.close();
  return dir;
}

describe("postern dmarc report --dry-run", () => {
  it("prints each report with its destinations and sends or claims nothing", { timeout: 60_000 }, async () => {
    const dir = await site();
    const shown = await runCli(["dmarc", "report", "--dry-run"], dir);
    expect(shown.stderr).toBe("");
    expect(shown.code).toBe(0);
    const lines = shown.stdout.split("\n");
    expect(lines[0]).toBe(`brand.test  ${yesterday}  2 records, 4 messages`);
    expect(lines[1]).toMatch(
      /^ {2}mx\.receiver\.test!brand\.test!\d+!\d+!\w+\.xml\.gz {2}XML \d+ B, gzip \d+ B, \d+ B as mailed$/,
    );
    expect(lines[2]).toBe("    would send     mailto:dmarc@brand.test");
    expect(lines[3]).toMatch(
      /^ {4}too large {6}mailto:agg@reports\.test \(limit 1 B\): the report is \d+ bytes as mailed/,
    );
    expect(lines[4]).toBe(
      `quiet.test  ${yesterday}  1 record, 3 messages  no report: no rua destination may receive it`,
    );
    expect(lines[5]).toBe("-- 1 report would be sent; dry run: nothing was claimed or sent");

    const json = await runCli(["dmarc", "report", "--dry-run", "--json"], dir);
    const outcomes = JSON.parse(json.stdout) as { policyDomain: string; status: string; gzipBytes?: number }[];
    expect(outcomes.map((outcome) => [outcome.policyDomain, outcome.status])).toEqual([
      ["brand.test", "dry-run"],
      ["quiet.test", "no-destination"],
    ]);
    expect(outcomes[0]!.gzipBytes).toBeGreaterThan(0);
    // Nothing claimed: the day's file has no report marks.
    const day = JSON.parse(await readFile(join(dir, "dmarc", `${yesterday}.json`), "utf8")) as { claimed: object };
    expect(day.claimed).toEqual({});

    const today = await runCli(["dmarc", "report", "--dry-run", "--include-today"], dir);
    expect(today.stdout).toContain(`brand.test  ${yesterday}  2 records, 4 messages`);

    const send = await runCli(["dmarc", "report"], dir);
    expect(send.code).toBe(2);
    expect(send.stderr).toMatch(/needs --dry-run: the running server sends reports on its daily schedule/);
  });

  it("says so when the config has no DMARC reports", { timeout: 30_000 }, async () => {
    const dir = await makeTempDir("dmarc-cli-none");
    await writeFile(join(dir, "postern.yaml"), "hostname: mx.example.org\nlisteners:\n  - port: 2528\n");
    const result = await runCli(["dmarc", "report", "--dry-run"], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/has no @postern\/dmarc-reports plugin/);
  });
});
