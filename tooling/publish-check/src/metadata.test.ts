// Release readiness of every public package: the metadata npm provenance and users rely on
// (repository pointing at this repo and the package's folder, license, engines, keywords so
// plugins can be found), the manifest npm actually receives (no workspace: ranges), and the
// changesets setup that versions packages independently with changelogs.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { packedList, tarballOf } from "./packed.ts";
import { type Manifest, notPlugins, readManifest, repoRoot, scaffolders } from "./workspace.ts";

const rootManifest = readManifest(repoRoot) as Manifest & { scripts: Record<string, string> };
const repositoryUrl = "git+https://github.com/postern-mta/postern.git";

/** The package.json inside a tarball, as the registry will store it. */
function packedManifest(tarball: string): Manifest {
  return JSON.parse(execFileSync("tar", ["-xzOf", tarball, "package/package.json"], { encoding: "utf8" })) as Manifest;
}

describe.each(packedList.map((pkg) => [pkg.name, pkg] as const))("%s", (name, pkg) => {
  const manifest = readManifest(pkg.dir);
  const folder = pkg.dir.split("/").at(-1)!;
  const isPlugin = !notPlugins.has(name);

  it("is named after its folder", () => {
    expect(name).toBe(name.startsWith("@") ? `@postern/${folder}` : folder);
  });

  it("has provenance-ready metadata: repository with directory, license, engines, description", () => {
    // npm provenance checks the repository URL against the repository the build ran in.
    expect(manifest.repository).toEqual({ type: "git", url: repositoryUrl, directory: `packages/${folder}` });
    expect(manifest.license).toBe("MIT");
    expect(manifest.engines).toEqual({ node: rootManifest.engines?.node });
    expect(manifest.description?.length ?? 0).toBeGreaterThan(10);
  });

  it("has a README (npm shows it as the package page)", () => {
    expect(existsSync(join(pkg.dir, "README.md")), `${pkg.dir}/README.md`).toBe(true);
  });

  it(`has the keywords users search for${isPlugin ? ', including "postern-plugin"' : ""}`, () => {
    expect(manifest.keywords).toContain("postern");
    if (isPlugin) expect(manifest.keywords).toContain("postern-plugin");
  });

  it("publishes an ESM entry with types first, and only dist (plus declared extras)", () => {
    expect(manifest.type).toBe("module");
    expect(manifest.sideEffects).toBe(false);
    expect(manifest.files).toContain("dist");
    const root = (manifest.exports as Record<string, Record<string, string>>)["."];
    expect(root).toBeDefined();
    const conditions = Object.keys(root!).filter((condition) => condition !== "dev-source");
    expect(conditions).toEqual(["types", "default"]);
    expect(root!.types).toMatch(/^\.\/dist\/.+\.d\.ts$/);
    expect(root!.default).toMatch(/^\.\/dist\/.+\.js$/);
    if (name.startsWith("@")) expect(manifest.publishConfig?.access).toBe("public");
  });

  it("takes @postern/core as a peer, so a server holds one core", () => {
    if (name === "@postern/core" || scaffolders.has(name)) {
      expect(manifest.peerDependencies?.["@postern/core"]).toBeUndefined();
      return;
    }
    expect(manifest.peerDependencies?.["@postern/core"]).toBe("workspace:^");
    expect(manifest.dependencies?.["@postern/core"]).toBeUndefined();
  });

  it("reaches npm with real version ranges, not workspace: ones", () => {
    const published = packedManifest(tarballOf(name));
    const ranges = { ...published.dependencies, ...published.peerDependencies };
    expect(Object.entries(ranges).filter(([, range]) => range.startsWith("workspace:"))).toEqual([]);
    if (published.peerDependencies?.["@postern/core"]) {
      const core = readManifest(join(repoRoot, "packages/core"));
      expect(published.peerDependencies["@postern/core"]).toBe(`^${core.version}`);
    }
  });
});

describe("release flow", () => {
  const changesets = JSON.parse(readFileSync(join(repoRoot, ".changeset/config.json"), "utf8")) as {
    changelog: unknown;
    fixed: unknown[];
    linked: unknown[];
    access: string;
    ignore: string[];
  };

  it("versions packages independently, with changelogs, the postern app among them (it is published)", () => {
    expect(changesets.fixed).toEqual([]);
    expect(changesets.linked).toEqual([]);
    expect(changesets.changelog).toBeTruthy();
    expect(changesets.access).toBe("public");
    expect(changesets.ignore).toEqual([]);
  });

  // `changeset version` stops at the first file it cannot parse, so a release would fail late.
  it("has only changesets that parse: front matter naming published packages with a bump", () => {
    const published = new Set([...packedList.map((pkg) => pkg.name), "postern"]);
    const files = readdirSync(join(repoRoot, ".changeset")).filter(
      (file) => file.endsWith(".md") && file !== "README.md",
    );
    const problems: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(repoRoot, ".changeset", file), "utf8");
      const front = /^---\n([\s\S]*?)\n---\n\s*\S/.exec(text);
      if (!front) {
        problems.push(`${file}: no front matter followed by a summary`);
        continue;
      }
      for (const line of front[1]!.split("\n")) {
        const entry = /^"([^"]+)": (patch|minor|major)$/.exec(line);
        if (!entry) problems.push(`${file}: "${line}" is not "<package>": patch|minor|major`);
        else if (!published.has(entry[1]!)) problems.push(`${file}: ${entry[1]} is not a published package`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("has one release command: build everything, then publish what changesets versioned", () => {
    expect(rootManifest.scripts.release).toBe("turbo run build && changeset publish");
  });

  it("builds every public package before this check runs (turbo ^build over the devDependencies)", () => {
    const declared = Object.keys(readManifest(join(repoRoot, "tooling/publish-check")).devDependencies ?? {});
    const missing = packedList.map((pkg) => pkg.name).filter((name) => !declared.includes(name));
    expect(missing, 'add these to tooling/publish-check/package.json devDependencies as "workspace:*"').toEqual([]);
  });
});
