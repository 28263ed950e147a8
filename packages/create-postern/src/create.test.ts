// create-postern: the files it writes, the one-line errors of its command, and — the point of it —
// that the site it writes passes `postern check --strict` and delivers mail as generated, with its
// own test run by Node's test runner against the workspace's postern.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSite, SiteOptionError, TargetNotEmptyError } from "./index.ts";
import { nodeEngines, siteVersions } from "./versions.ts";

const run = promisify(execFile);
const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));
// cli.ts imports create-postern-plugin/scaffold, whose export points at its source under this condition.
const onSource = "--conditions=dev-source";
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const posternCli = join(repoRoot, "apps/postern/src/cli.ts");

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "create-postern-"));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** Runs a command and never throws: exit code and output. */
async function runCommand(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(file, args, { ...options, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("createSite", () => {
  it("writes the site with the names filled in", async () => {
    const created = await createSite({ directory: join(workDir, "relay-one"), domain: "Example.ORG" });
    expect([...created.files].sort()).toEqual([
      ".dockerignore",
      ".gitignore",
      "README.md",
      "deploy/postern.service",
      "package.json",
      "postern.config.ts",
      "test/delivery.test.ts",
      "tsconfig.json",
    ]);
    expect(created.names).toEqual({ name: "relay-one", domain: "example.org", hostname: "mx.example.org" });
    const config = await readFile(join(created.directory, "postern.config.ts"), "utf8");
    expect(config).toContain('hostname: "mx.example.org"');
    expect(config).toContain('recipients({ domains: ["example.org"] })');
    const unit = await readFile(join(created.directory, "deploy/postern.service"), "utf8");
    expect(unit).toContain("WorkingDirectory=/srv/relay-one\n");
    for (const file of created.files) {
      const text = await readFile(join(created.directory, file), "utf8");
      expect([file, /example\.com|my-mx/.test(text)]).toEqual([file, false]);
    }
  });

  it("writes a package.json that is an ES module with engines and the three scripts", async () => {
    const created = await createSite({ directory: join(workDir, "manifest-check") });
    const manifest = JSON.parse(await readFile(join(created.directory, "package.json"), "utf8"));
    expect(manifest).toMatchObject({
      name: "manifest-check",
      private: true,
      type: "module",
      engines: { node: nodeEngines },
      scripts: { start: "exec postern start", check: "postern check --strict" },
      dependencies: { postern: siteVersions.postern, "@postern/core": siteVersions["@postern/core"] },
    });
    expect(manifest.scripts.test).toMatch(/^postern check --strict && node --test /);
  });

  it("replaces each name once, even when one contains another's placeholder", async () => {
    const created = await createSite({ directory: join(workDir, "my-mx"), domain: "my-mx.example" });
    expect(created.names.hostname).toBe("mx.my-mx.example");
    const config = await readFile(join(created.directory, "postern.config.ts"), "utf8");
    expect(config).toContain('hostname: "mx.my-mx.example"');
  });

  it("refuses a folder with files, a bad package name and a bad domain", async () => {
    const taken = join(workDir, "taken");
    await mkdir(taken);
    await writeFile(join(taken, "notes.txt"), "mine\n");
    await expect(createSite({ directory: taken })).rejects.toThrow(TargetNotEmptyError);
    await expect(createSite({ directory: join(workDir, "x"), name: "Big Name" })).rejects.toThrow(SiteOptionError);
    await expect(createSite({ directory: join(workDir, "y"), domain: "localhost" })).rejects.toThrow(
      '--domain: expected a domain name such as example.com (got "localhost")',
    );
  });
});

describe("the create-postern command", () => {
  it("says what it wrote and what to run next", async () => {
    const result = await runCommand(process.execPath, [onSource, cli, "mx-site", "--domain", "example.net"], {
      cwd: workDir,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Created mx-site in mx-site: mail for example\.net, served as mx\.example\.net\n/);
    expect(result.stdout).toContain("\n  cd mx-site\n  npm install\n  npm test");
  });

  it("answers a bad option with one line and exit 1, an unknown one with usage and exit 2", async () => {
    const bad = await runCommand(process.execPath, [onSource, cli, "bad-site", "--hostname", "no spaces"], {
      cwd: workDir,
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      'create-postern: --hostname: expected a domain name such as example.com (got "no spaces")\n',
    );
    const unknown = await runCommand(process.execPath, [onSource, cli, "x", "--domian", "example.org"], {
      cwd: workDir,
    });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^create-postern: Unknown option '--domian'\n\nUsage: create-postern /);
  });
});

describe("the site as generated", () => {
  let site: string;
  beforeAll(async () => {
    site = (await createSite({ directory: join(workDir, "live-site"), domain: "example.test" })).directory;
    // What `npm install` would put there, from the workspace.
    await mkdir(join(site, "node_modules/@postern"), { recursive: true });
    await symlink(join(repoRoot, "apps/postern"), join(site, "node_modules/postern"), "dir");
    for (const name of ["core", "recipients", "store-maildir", "testing"]) {
      await symlink(join(repoRoot, "packages", name), join(site, "node_modules/@postern", name), "dir");
    }
  });

  it("passes postern check --strict", async () => {
    const result = await runCommand(process.execPath, ["--conditions=dev-source", posternCli, "check", "--strict"], {
      cwd: site,
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^postern\.config\.ts: valid\nhostname mx\.example\.test\n/);
  });

  it("delivers mail: its own test passes under Node's test runner", async () => {
    const result = await runCommand(
      process.execPath,
      ["--conditions=dev-source", "--test", "--test-reporter=tap", "test/delivery.test.ts"],
      {
        cwd: site,
        // The test starts node_modules/postern's bin, which must run on the workspace's sources too.
        env: { ...process.env, NODE_OPTIONS: "--conditions=dev-source" },
      },
    );
    expect(result.stdout).toMatch(/^# pass 1$/m);
    expect(result.stdout).toMatch(/^# fail 0$/m);
    expect(result.code).toBe(0);
  });
});

describe("the versions and the systemd unit of a site", () => {
  const manifest = async (path: string) =>
    JSON.parse(await readFile(join(repoRoot, path), "utf8")) as {
      version: string;
      engines?: { node: string };
      devDependencies?: Record<string, string>;
    };

  it("follow the workspace: current releases and the repo's toolchain", async () => {
    const root = await manifest("package.json");
    expect(siteVersions.postern).toBe(`^${(await manifest("apps/postern/package.json")).version}`);
    for (const name of ["core", "recipients", "store-maildir", "testing"] as const) {
      expect(siteVersions[`@postern/${name}`]).toBe(`^${(await manifest(`packages/${name}/package.json`)).version}`);
    }
    expect(siteVersions.typescript).toBe(root.devDependencies?.typescript);
    expect(siteVersions["@types/node"]).toBe(root.devDependencies?.["@types/node"]);
    expect(nodeEngines).toBe(root.engines?.node);
  });

  it("is postern's deploy/postern.service with the site's folder and data directory", async () => {
    const generic = await readFile(join(repoRoot, "apps/postern/deploy/postern.service"), "utf8");
    const expected = generic
      .replaceAll("/srv/postern", "/srv/my-mx")
      .replace("Description=Postern mail transfer agent", "Description=my-mx (Postern mail transfer agent)")
      .replace(
        "Environment=NODE_ENV=production\n",
        "Environment=NODE_ENV=production\n# Mail, queue and spool in the state directory (postern.config.ts reads POSTERN_DATA).\nEnvironment=POSTERN_DATA=/var/lib/postern\n",
      );
    const template = await readFile(new URL("../template/deploy/postern.service", import.meta.url), "utf8");
    expect(template).toBe(expected);
  });
});
