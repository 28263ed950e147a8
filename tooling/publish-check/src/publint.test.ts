// What npm users get must pass publint (strict: warnings count) and are-the-types-wrong for
// ESM-only packages: types resolve for node16/nodenext and bundlers, the exports point at files
// that are in the tarball, and nothing is left out of or wrongly put into `files`.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { describe, expect, it } from "vitest";
import { packedList, tarballOf } from "./packed.ts";
import { repoRoot, run } from "./workspace.ts";

// The attw command, run with this Node: its bin is not among the package's exports.
const attwManifest = createRequire(join(repoRoot, "package.json")).resolve("@arethetypeswrong/cli/package.json");
const attw = join(dirname(attwManifest), "dist/index.js");

/** publint's findings for a tarball, one readable line each. */
async function lint(tarballPath: string): Promise<string[]> {
  const bytes = await readFile(tarballPath);
  const tarball = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const { messages, pkg } = await publint({ strict: true, pack: { tarball } });
  return messages.map((message) => `${message.type}: ${formatMessage(message, pkg, { color: false })}`);
}

describe.each(packedList.map((pkg) => [pkg.name, pkg] as const))("%s", (name, pkg) => {
  it("passes publint --strict", async () => {
    expect(await lint(tarballOf(name))).toEqual([]);
  });

  it("passes are-the-types-wrong (esm-only profile)", async () => {
    const result = await run(
      process.execPath,
      [attw, tarballOf(name), "--profile", "esm-only", "--format", "ascii", "--no-color", "--no-emoji"],
      { cwd: pkg.dir },
    );
    expect(result.code, result.output).toBe(0);
  });
});

describe("the checks themselves", () => {
  it("publint reports exports that point at files missing from the tarball", async () => {
    const manifest = {
      name: "broken",
      version: "1.0.0",
      type: "module",
      files: ["dist"],
      exports: { ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } },
    };
    const { messages } = await publint({
      pkgDir: "package",
      strict: true,
      pack: { files: [{ name: "package/package.json", data: JSON.stringify(manifest) }] },
    });
    expect(messages.map((message) => message.code)).toContain("FILE_DOES_NOT_EXIST");
  });
});
