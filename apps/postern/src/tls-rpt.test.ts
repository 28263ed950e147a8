// `postern tls-rpt report --dry-run` through the real CLI in a child process: a YAML config with
// @postern/tls-rpt on a file store holding yesterday's counters, DNS from the test kit's fake
// zone. It prints each report, its sessions, sizes and destinations (one over its size limit),
// and claims nothing.
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type FakeDns, startFakeDns } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
// The store module directly: the package entry also loads pg, which vitest's resolve conditions
// break inside pg's own require() of pg-pool (see queue.test.ts).
import { FileTlsRptStore } from "../../../packages/tls-rpt/src/file-store.ts";
import type { TlsResultRow } from "../../../packages/tls-rpt/src/store.ts";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../../packages");
const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

let dns: FakeDns;
beforeAll(async () => {
  dns = await startFakeDns({
    "_smtp._tls.good.test": {
      TXT: ["v=TLSRPTv1; rua=mailto:tlsrpt@good.test,mailto:tiny@reports.test!1,https://reports.good.test/v1"],
    },
  });
});
afterAll(() => dns?.close());
afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

const policy = ["version: STSv1", "mode: enforce", "mx: mx.good.test", "max_age: 86400"];
const row = (fields: Partial<TlsResultRow>): TlsResultRow => ({
  day: yesterday,
  policyDomain: "good.test",
  policyType: "sts",
  policyStrings: policy,
  policyMxHost: "mx.good.test",
  result: "success",
  sendingIp: "",
  receivingIp: "",
  receivingMx: "",
  reasonCode: "",
  detail: "",
  count: 5,
  ...fields,
});

async function site(): Promise<string> {
  const dir = await makeTempDir("tls-rpt-cli");
  await writeFile(
    join(dir, "postern.yaml"),
    `hostname: mta.sender.test
listeners:
  - port: 2529
dns:
  servers: ["${dns.servers[0]}"]
plugins:
  - package: "@postern/tls-rpt"
    options:
      store: { type: file, dir: ./tls-rpt }
`,
  );
  await mkdir(join(dir, "node_modules/@postern"), { recursive: true });
  await symlink(join(packagesDir, "tls-rpt"), join(dir, "node_modules/@postern/tls-rpt"), "dir");
  const store = new FileTlsRptStore({ dir: join(dir, "tls-rpt") });
  await store.open();
  await store.add([
    row({}),
    row({
      policyMxHost: "",
      result: "validation-failure",
      receivingMx: "backup.good.test",
      reasonCode: "mx-not-in-policy",
      count: 2,
    }),
    row({
      policyDomain: "quiet.test",
      policyType: "no-policy-found",
      policyStrings: [],
      policyMxHost: "mx.quiet.test",
    }),
  ]);
  await store.close();
  return dir;
}

describe("postern tls-rpt report --dry-run", () => {
  it("prints each report with its sessions, sizes and destinations and sends or claims nothing", {
    timeout: 60_000,
  }, async () => {
    const dir = await site();
    const shown = await runCli(["tls-rpt", "report", "--dry-run"], dir);
    expect(shown.stderr).toBe("");
    expect(shown.code).toBe(0);
    const lines = shown.stdout.split("\n");
    expect(lines[0]).toBe(`good.test  ${yesterday}  7 sessions, 2 failures`);
    expect(lines[1]).toMatch(
      /^ {2}mta\.sender\.test!good\.test!\d+!\d+!\S+\.json\.gz {2}JSON \d+ B, gzip \d+ B, \d+ B as mailed$/,
    );
    expect(lines[2]).toBe("    would send     mailto:tlsrpt@good.test");
    expect(lines[3]).toBe("    would send     https://reports.good.test/v1");
    expect(lines[4]).toMatch(
      /^ {4}too large {6}mailto:tiny@reports\.test \(limit 1 B\): the report is \d+ bytes as mailed; the destination takes at most 1$/,
    );
    expect(lines[5]).toBe(
      `quiet.test  ${yesterday}  5 sessions, 0 failures  no report: no TLSRPTv1 record with a rua at _smtp._tls.quiet.test`,
    );
    expect(lines[6]).toBe("-- 1 report would be sent; dry run: nothing was claimed or sent");

    const json = await runCli(["tls-rpt", "report", "--dry-run", "--json"], dir);
    expect(json.code).toBe(0);
    const reports = JSON.parse(json.stdout) as {
      policyDomain: string;
      status: string;
      successfulSessions: number;
      failedSessions: number;
      gzipBytes?: number;
      report?: unknown;
      destinations: { outcome: string; maxBytes?: number }[];
    }[];
    expect(
      reports.map((report) => [report.policyDomain, report.status, report.successfulSessions, report.failedSessions]),
    ).toEqual([
      ["good.test", "dry-run", 5, 2],
      ["quiet.test", "no-destination", 5, 0],
    ]);
    expect(reports[0]!.gzipBytes).toBeGreaterThan(0);
    expect(reports[0]!.report).toBeUndefined();
    expect(reports[0]!.destinations.map((entry) => [entry.outcome, entry.maxBytes])).toEqual([
      ["would-send", undefined],
      ["would-send", undefined],
      ["too-large", 1],
    ]);
    // Nothing claimed: the day's file has no report marks, and the domain with no record is still due.
    const day = JSON.parse(await readFile(join(dir, "tls-rpt", `${yesterday}.json`), "utf8")) as { claimed: object };
    expect(day.claimed).toEqual({});

    const today = await runCli(["tls-rpt", "report", "--dry-run", "--include-today"], dir);
    expect(today.stdout).toContain(`good.test  ${yesterday}  7 sessions, 2 failures`);

    const send = await runCli(["tls-rpt", "report"], dir);
    expect(send.code).toBe(2);
    expect(send.stderr).toMatch(/needs --dry-run: the running server sends reports on its daily schedule/);
  });

  it("says so when the config has no TLS reports", { timeout: 30_000 }, async () => {
    const dir = await makeTempDir("tls-rpt-cli-none");
    await writeFile(join(dir, "postern.yaml"), "hostname: mx.example.org\nlisteners:\n  - port: 2530\n");
    const result = await runCli(["tls-rpt", "report", "--dry-run"], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/has no @postern\/tls-rpt plugin/);
  });
});
