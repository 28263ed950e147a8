#!/usr/bin/env node
// The whole check behind `npm test`: lint, typecheck and every package's tests through turbo, then
// one closing line with the totals across packages, read from each package's vitest JSON report.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const reportName = "test-results.json";
const packageDirs = ["packages", "apps", "tooling"].flatMap((group) => {
  const groupDir = join(repoRoot, group);
  if (!existsSync(groupDir)) return [];
  return readdirSync(groupDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(groupDir, entry.name));
});

// A report left by an earlier run must not count towards this one.
for (const dir of packageDirs) rmSync(join(dir, reportName), { force: true });

// `pnpm exec` put node_modules/.bin (turbo) on PATH.
const turbo = spawnSync(
  "turbo",
  // Four tasks at a time: enough to overlap I/O-bound suites on 2 cores without starving servers under test.
  [
    "run",
    "lint",
    "typecheck",
    "test",
    "--continue",
    "--concurrency=4",
    "--output-logs=errors-only",
    ...process.argv.slice(2),
  ],
  { cwd: repoRoot, stdio: "inherit", env: process.env },
);
if (turbo.error) console.error(`could not run turbo: ${turbo.error.message}`);

let passed = 0;
let failed = 0;
let skipped = 0;
for (const dir of packageDirs) {
  const reportPath = join(dir, reportName);
  if (!existsSync(reportPath)) continue;
  const report = JSON.parse(readFileSync(reportPath, "utf8"));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(turbo.status === 0 && failed === 0 && passed > 0 ? 0 : 1);
