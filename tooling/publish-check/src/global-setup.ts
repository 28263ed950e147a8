// Runs once before the test files: makes sure every public package has a fresh dist/, then packs
// each with `pnpm pack` (which rewrites workspace:^ to real version ranges, as publishing does)
// into one temp folder that the test files install from. A package that fails to build or pack is
// recorded, not fatal: its own tests report the failure and the other packages are still checked.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import {
  pnpmCommand,
  publicApps,
  publicPackages,
  readManifest,
  repoRoot,
  runOk,
  type WorkspacePackage,
} from "./workspace.ts";

export interface PackedPackage {
  readonly name: string;
  readonly dir: string;
  /** The tarball, when the package built and packed. */
  readonly tarball?: string;
  /** Why there is no tarball. */
  readonly problem?: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Every public package found when the run started, by name. */
    packed: Record<string, PackedPackage>;
    /** The published applications (the `postern` command), by name: packed like the packages. */
    packedApps: Record<string, PackedPackage>;
  }
}

/** pnpm pack names a tarball @scope/name@1.2.3 → scope-name-1.2.3.tgz. */
function tarballName(name: string, version: string): string {
  return `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // turbo builds the packages this one depends on ("^build"); a package that appeared since (and
  // that metadata.test.ts reports as undeclared), or one never built (vitest run by hand), is
  // built here so it is still packed from fresh code.
  const declared = new Set(Object.keys(readManifest(join(repoRoot, "tooling/publish-check")).devDependencies ?? {}));
  const tsc = createRequire(join(repoRoot, "package.json")).resolve("typescript/bin/tsc");
  const packDir = await mkdtemp(join(tmpdir(), "postern-packs-"));
  const [pnpm, pnpmArgs] = pnpmCommand();
  const pack = async (packages: WorkspacePackage[]): Promise<Record<string, PackedPackage>> => {
    const packed: Record<string, PackedPackage> = {};
    for (const pkg of packages) {
      const { name, version } = pkg.manifest;
      try {
        const built = existsSync(join(pkg.dir, "dist/index.js")) || existsSync(join(pkg.dir, "dist/cli.js"));
        if (!declared.has(name) || !built)
          await runOk(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: pkg.dir });
        await runOk(pnpm, [...pnpmArgs, "pack", "--pack-destination", packDir], { cwd: pkg.dir });
        const tarball = join(packDir, tarballName(name, version));
        if (!existsSync(tarball)) throw new Error(`pnpm pack did not write ${tarball}`);
        packed[name] = { name, dir: pkg.dir, tarball };
      } catch (error) {
        packed[name] = { name, dir: pkg.dir, problem: (error as Error).message };
      }
    }
    return packed;
  };
  const packed = await pack(publicPackages());
  project.provide("packedApps", await pack(publicApps()));
  project.provide("packed", packed);
  return async () => {
    await rm(packDir, { recursive: true, force: true });
  };
}
