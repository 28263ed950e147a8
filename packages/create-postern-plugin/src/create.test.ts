import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPlugin, factoryName, PluginNameError, TargetNotEmptyError } from "./index.ts";
import { templateDir } from "./template.ts";

const execFileAsync = promisify(execFile);
const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "create-postern-plugin-"));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** Runs the command as `npm create` would, and never throws: exit code and output. */
async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [cli, ...args], { cwd: workDir });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("names", () => {
  it("derives the factory from the package name", () => {
    expect(factoryName("my-plugin")).toBe("myPlugin");
    expect(factoryName("@acme/postern-plugin-greylist")).toBe("greylist");
    expect(factoryName("postern-dnsbl-extra")).toBe("dnsblExtra");
    expect(factoryName("@acme/delete")).toBe("deletePlugin");
    expect(factoryName("3d-check")).toBe("plugin3dCheck");
    expect(factoryName("postern")).toBe("postern");
  });

  it("refuses names npm would refuse, saying why", async () => {
    await expect(createPlugin({ directory: join(workDir, "x"), name: "My Plugin" })).rejects.toThrow(PluginNameError);
    await expect(createPlugin({ directory: join(workDir, "x"), name: "Upper" })).rejects.toThrow(
      /"Upper" is not a valid npm package name: name can no longer contain capital letters/,
    );
  });
});

describe("createPlugin", () => {
  it("writes the whole package with every placeholder replaced", async () => {
    const created = await createPlugin({ directory: join(workDir, "greylist"), name: "@acme/postern-greylist" });
    expect([...created.files].sort()).toEqual([
      ".gitignore",
      "README.md",
      "package.json",
      "src/index.test.ts",
      "src/index.ts",
      "tsconfig.build.json",
      "tsconfig.json",
      "vitest.config.ts",
    ]);
    for (const file of created.files) {
      const text = await readFile(join(created.directory, file), "utf8");
      expect(text, file).not.toMatch(/postern-plugin-template|templatePlugin|TemplatePlugin/);
    }
    const source = await readFile(join(created.directory, "src/index.ts"), "utf8");
    expect(source).toContain('const pluginName = "@acme/postern-greylist";');
    expect(source).toContain("export default function greylist(options: GreylistOptions): Plugin {");
    expect(source).toContain("export const greylistResult: ResultKey<GreylistResult>");
  });

  it("writes a package.json that publishes an ESM plugin", async () => {
    const created = await createPlugin({ directory: join(workDir, "manifest-check") });
    const manifest = JSON.parse(await readFile(join(created.directory, "package.json"), "utf8"));
    expect(manifest).toMatchObject({
      name: "manifest-check",
      type: "module",
      keywords: expect.arrayContaining(["postern-plugin"]),
      files: ["dist"],
      exports: { ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } },
      scripts: { build: "tsc -p tsconfig.build.json", test: "vitest run", prepack: "npm run build" },
      peerDependencies: { "@postern/core": expect.stringMatching(/^\^/) },
    });
    expect(Object.keys(manifest.exports["."])).toEqual(["types", "default"]);
  });

  it("never writes into a folder that has files", async () => {
    const directory = join(workDir, "occupied");
    await mkdir(directory);
    await writeFile(join(directory, "notes.txt"), "mine");
    await expect(createPlugin({ directory })).rejects.toThrow(TargetNotEmptyError);
    expect(await readFile(join(directory, "notes.txt"), "utf8")).toBe("mine");
  });
});

describe("the command", () => {
  it("creates a package and says what to run next", async () => {
    const result = await runCli(["from-cli", "--name", "postern-from-cli"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("Created postern-from-cli in from-cli:");
    expect(result.stdout).toContain("  cd from-cli\n  npm install\n  npm test\n");
    expect(await readFile(join(workDir, "from-cli/src/index.ts"), "utf8")).toContain(
      "export default function fromCli(",
    );
  });

  it("exits 1 with one line for a bad name, 2 with the usage for bad arguments", async () => {
    const badName = await runCli(["Bad Name"]);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(/^create-postern-plugin: "Bad Name" is not a valid npm package name/);
    const noFolder = await runCli([]);
    expect(noFolder.code).toBe(2);
    expect(noFolder.stderr).toContain("Usage: create-postern-plugin <folder>");
    expect((await runCli(["--help"])).stdout).toContain("Usage: create-postern-plugin <folder>");
  });
});

describe("the template", () => {
  it("is published next to dist/ (the package's files)", async () => {
    const manifest = JSON.parse(await readFile(join(templateDir, "../package.json"), "utf8"));
    expect(manifest.files).toEqual(["bin", "dist", "template"]);
    expect(manifest.bin).toEqual({ "create-postern-plugin": "./bin/create-postern-plugin.js" });
  });
});
