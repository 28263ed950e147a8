import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { nodeEngines, templateVersions } from "./versions.ts";

const manifest = (path: string) =>
  JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as {
    version: string;
    engines?: { node: string };
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };

describe("the versions a generated plugin depends on", () => {
  it("follow the workspace: current @postern releases, the repo's toolchain and zod", () => {
    const root = manifest("../../../package.json");
    expect(templateVersions["@postern/core"]).toBe(`^${manifest("../../core/package.json").version}`);
    expect(templateVersions["@postern/testing"]).toBe(`^${manifest("../../testing/package.json").version}`);
    expect(templateVersions.zod).toBe(manifest("../../core/package.json").dependencies?.zod);
    expect(templateVersions.vitest).toBe(root.devDependencies?.vitest);
    expect(templateVersions.typescript).toBe(root.devDependencies?.typescript);
    expect(templateVersions["@types/node"]).toBe(root.devDependencies?.["@types/node"]);
    expect(nodeEngines).toBe(root.engines?.node);
  });
});
